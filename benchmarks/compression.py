"""Compression ablation: float vs ternary only vs ternary + group lasso vs ternary + WPC, at kept-tile fractions.

For every seed a float baseline is trained once (``pyflow.compress.api.train``); every variant compresses that
checkpoint at each kept fraction and is exported to the IR, whose golden-model accuracy is what the
accelerator computes. Every figure is the mean ± sample standard deviation over the seeds.

    .venv/bin/python benchmarks/compression.py --data digits [--seeds 3] [--jobs 2] [--json out.json]
    .venv/bin/python benchmarks/compression.py --data fashion-mnist [--model fashion-cnn3] [--seeds 3] \\
        [--variants wpc,group-lasso] [--keeps 0.5] [--svg kept.svg]

Targets (issue 13): digits — uniform 50 % WPC within 1 point of float at >= 21x weights-only; Fashion-MNIST —
golden >= 91.6 % (the table's "2 Conv+pooling") at >= 21x and within 1 point of our float model; WPC vs group
lasso at equal compression, won only if by more than one standard deviation. The script prints each verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VARIANTS = {"none": "ternary only", "group-lasso": "ternary + group lasso", "wpc": "ternary + WPC"}
KEEPS = (1.0, 0.5, 0.25)
PRESETS = {  # per dataset: the network, its folding and the epochs of every phase
    "digits": {"model": "digits-cnn", "folding": {"conv0": (8, 1)}, "fp_epochs": 40, "ternary_epochs": 30,
               "finetune_epochs": 30, "floor": None},
    "fashion-mnist": {"model": "fashion-cnn3", "folding": {"conv0": (8, 1)}, "fp_epochs": 10, "ternary_epochs": 6,
                      "finetune_epochs": 3, "floor": 0.916},
}


def _quiet(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    sys.stderr = open(os.devnull, "w")  # per-epoch progress lines of the worker runs


def _fp(spec: dict, seed: int, root: str) -> dict:
    _quiet(spec["threads"])
    from pyflow.compress.api import train

    run = train(spec["model"], spec["data"], spec["fp_epochs"], Path(root) / f"fp{seed}", seed)
    return json.loads((run / "metrics.json").read_text())


def _variant(spec: dict, seed: int, penalty: str, keep: float, root: str) -> dict:
    _quiet(spec["threads"])
    from pyflow.compress.api import CompressConfig, compress, export_evaluated

    out = Path(root) / f"{penalty}-{keep:g}-{seed}"
    started = time.perf_counter()
    config = CompressConfig(out=str(out), model=spec["model"], data=spec["data"],
                            checkpoint=str(Path(root) / f"fp{seed}" / "model.pt"), pe=8, simd=8,
                            folding=spec["folding"], keep_tiles=keep, penalty=penalty, seed=seed,
                            ternary_epochs=spec["ternary_epochs"], finetune_epochs=spec["finetune_epochs"])
    compress(config)
    _, golden = export_evaluated(out, spec["data"], None)
    metrics = json.loads((out / "metrics.json").read_text())
    trajectory = [r["kept_tiles"] / r["tiles_total"] for r in metrics["history"] if r["phase"].startswith("ternary")]
    return {"torch": golden["torch_accuracy"], "golden": golden["accuracy"], "agreement": golden["agreement"],
            "weights_only": golden["compression_weights_only"], "with_index": golden["compression_with_index"],
            "before_freeze": metrics["freeze"]["accuracy_before"], "after_freeze": metrics["freeze"]["accuracy_after"],
            "removed_nonzero": metrics["freeze"]["removed_nonzero_tiles"], "trajectory": trajectory,
            "seconds": time.perf_counter() - started}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(PRESETS), default="digits")
    parser.add_argument("--model", help="override the preset's network")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--keeps", default=",".join(f"{k:g}" for k in KEEPS), help="kept-tile fractions")
    for phase in ("fp", "ternary", "finetune"):
        parser.add_argument(f"--{phase}-epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--svg", help="also draw the kept-tile trajectories (mean over seeds) here")
    args = parser.parse_args()
    spec = {**PRESETS[args.data], "data": args.data, "threads": 1}
    if args.model and args.model != spec["model"]:
        spec["folding"] = {}  # the preset's folding names the preset network's layers
    spec.update({key: value for key, value in (("model", args.model), ("fp_epochs", args.fp_epochs),
                 ("ternary_epochs", args.ternary_epochs), ("finetune_epochs", args.finetune_epochs)) if value})
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown[0]!r} (expected {', '.join(VARIANTS)})")
    keeps = [float(k) for k in args.keeps.split(",")]
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root, ProcessPoolExecutor(args.jobs) as pool:
        fp = list(pool.map(_fp, [spec] * len(seeds), seeds, [root] * len(seeds)))
        jobs = {(penalty, keep, seed): pool.submit(_variant, spec, seed, penalty, keep, root)
                for penalty in variants for keep in keeps for seed in seeds}
        results = {key: job.result() for key, job in jobs.items()}
    seconds = time.perf_counter() - start
    fp_mean, fp_std = _stats([item["accuracy"] for item in fp])
    rows = [_row(penalty, keep, [results[(penalty, keep, seed)] for seed in seeds])
            for penalty in variants for keep in keeps]
    print(f"{args.data}: {spec['model']}, PE=8 SIMD=8 {spec['folding']}, {len(seeds)} seeds (mean ± std), "
          f"epochs fp/ternary/finetune {spec['fp_epochs']}/{spec['ternary_epochs']}/{spec['finetune_epochs']}, "
          f"{seconds:.0f} s")
    _print(rows, fp_mean, fp_std)
    _verdict(rows, fp_mean, spec["floor"])
    if args.json:
        Path(args.json).write_text(json.dumps({"spec": spec, "fp": fp, "rows": rows, "seconds": seconds}, indent=2,
                                              sort_keys=True) + "\n")
    if args.svg:
        Path(args.svg).write_text(_svg(rows, spec))
    return 0


def _row(penalty: str, keep: float, runs: list[dict]) -> dict:
    row = {"variant": VARIANTS[penalty], "penalty": penalty, "keep": keep, "seeds": len(runs)}
    for key in ("torch", "golden", "agreement", "weights_only", "with_index", "before_freeze", "after_freeze",
                "removed_nonzero", "seconds"):
        row[key] = _stats([run[key] for run in runs])
    epochs = min(len(run["trajectory"]) for run in runs)
    row["trajectory"] = [statistics.fmean(run["trajectory"][e] for run in runs) for e in range(epochs)]
    return row


def _pm(pair: tuple[float, float], scale: float = 100.0, digits: int = 2) -> str:
    return f"{pair[0] * scale:.{digits}f}±{pair[1] * scale:.{digits}f}"


def _print(rows: list[dict], fp_mean: float, fp_std: float) -> None:
    print(f"{'variant':22s} {'keep':>5s} {'golden %':>12s} {'torch %':>12s} {'w-only':>11s} {'w/index':>11s} "
          f"{'freeze before->after %':>25s} {'cut non-zero':>12s}  kept-tile trajectory (penalty epochs)")
    print(f"{'float baseline':22s} {'-':>5s} {'-':>12s} {_pm((fp_mean, fp_std)):>12s}")
    for r in rows:
        freeze = f"{_pm(r['before_freeze'])}->{_pm(r['after_freeze'])}"
        trajectory = " ".join(f"{100 * v:.0f}" for v in r["trajectory"])
        print(f"{r['variant']:22s} {r['keep']:5.2f} {_pm(r['golden']):>12s} {_pm(r['torch']):>12s} "
              f"{_pm(r['weights_only'], 1, 1):>10s}x {_pm(r['with_index'], 1, 1):>10s}x {freeze:>25s} "
              f"{r['removed_nonzero'][0]:12.1f}  {trajectory}")


def _verdict(rows: list[dict], fp_mean: float, floor: float | None) -> None:
    at21 = [r for r in rows if r["weights_only"][0] >= 21]
    if not at21:
        print("target (>= 21x weights-only): no variant reached 21x")
        return
    best = max(at21, key=lambda r: r["golden"][0])
    within = best["golden"][0] >= fp_mean - 0.01
    floor_ok = floor is None or best["golden"][0] >= floor
    floor_text = "" if floor is None else f", >= {100 * floor:.1f} %: {'yes' if floor_ok else 'no'}"
    print(f"target: best at >= 21x is {best['variant']} keep {best['keep']:g}: golden {_pm(best['golden'])} % at "
          f"{best['weights_only'][0]:.1f}x; within 1 point of float {100 * fp_mean:.2f} %: "
          f"{'yes' if within else 'no'}{floor_text} -> {'MET' if within and floor_ok else 'MISSED'}")
    for keep in sorted({r["keep"] for r in rows}, reverse=True):
        pair = {r["penalty"]: r for r in rows if r["keep"] == keep}
        if "wpc" not in pair or "group-lasso" not in pair:
            continue
        wpc, lasso = pair["wpc"]["golden"], pair["group-lasso"]["golden"]
        margin = wpc[0] - lasso[0]
        spread = max(wpc[1], lasso[1])
        verdict = "WPC wins beyond one std" if margin > spread else \
            "group lasso wins beyond one std" if -margin > spread else "no winner beyond one std"
        print(f"WPC vs group lasso at keep {keep:g} ({pair['wpc']['weights_only'][0]:.1f}x): "
              f"{_pm(wpc)} vs {_pm(lasso)} %, difference {100 * margin:+.2f} points, std {100 * spread:.2f}: {verdict}")


def _svg(rows: list[dict], spec: dict) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pyflow.report.svg import line_chart

    epochs = max(len(r["trajectory"]) for r in rows)
    points = [float(e + 1) for e in range(epochs)]
    series = [(f"{r['variant']}, keep {r['keep']:g}",
               [r["trajectory"][e] if e < len(r["trajectory"]) else None for e in range(epochs)]) for r in rows]
    return line_chart("benchmark", f"{spec['data']} {spec['model']}: kept tiles per penalty epoch (mean over seeds)",
                      points, series, [("penalty phase", 0.5, epochs + 0.5)], lambda v: f"{100 * v:.0f} %",
                      x_range=(0.5, epochs + 0.5), height=260 + 16 * len(series))


if __name__ == "__main__":
    sys.exit(main())
