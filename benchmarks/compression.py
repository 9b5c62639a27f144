"""Compression ablation on the digits CNN: FP vs ternary only vs ternary + group lasso vs ternary + WPC.

For every seed an FP baseline is trained once (``pyflow.compress.api.train``); every variant then
compresses that checkpoint at kept-tile fractions 100 %, 50 %, 25 % and is exported to the IR. The table
gives the median over seeds of the torch accuracy, the golden-model accuracy (the accelerator's), both
compression ratios, and per layer the requested vs achieved kept fraction.

    .venv/bin/python benchmarks/compression.py [--seeds 3] [--jobs 2] [--json out.json]

Targets (issue 3): golden accuracy within 1 point of FP at >= 21x weights-only compression; WPC at least as
accurate as plain group lasso at equal compression. The script prints whether each was met.
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

VARIANTS = (("ternary only", "none"), ("ternary + group lasso", "group-lasso"), ("ternary + WPC", "wpc"))
# kept-tile targets: uniform over the layers, and the same with conv0 (144 weights, 18 tiles) kept dense
KEEPS = {"100%": 1.0, "50%": 0.5, "25%": 0.25, "50% c0=1": {"conv0": 1.0, "conv1": 0.5, "fc0": 0.5},
         "25% c0=1": {"conv0": 1.0, "conv1": 0.25, "fc0": 0.25}}
FOLDING = {"conv0": (8, 1)}  # conv0 reads 1 channel: SIMD=8 would store 7 padded lanes out of 8
SETTINGS = {"fp_epochs": 40, "ternary_epochs": 30, "finetune_epochs": 30, "lam": 1e-2, "kappa": 3.0}


def _quiet() -> None:
    import torch

    torch.set_num_threads(1)
    sys.stderr = open(os.devnull, "w")  # per-epoch progress lines of the worker runs


def _fp(seed: int, root: str) -> dict:
    _quiet()
    from pyflow.compress.api import train

    run = train("digits-cnn", "digits", SETTINGS["fp_epochs"], Path(root) / f"fp{seed}", seed)
    return json.loads((run / "metrics.json").read_text())


def _variant(seed: int, penalty: str, label: str, root: str) -> dict:
    _quiet()
    from pyflow.compress.api import CompressConfig, compress, export_evaluated

    keep = KEEPS[label]
    out = Path(root) / f"{penalty}-{label.replace(' ', '').replace('%', '')}-{seed}"
    config = CompressConfig(out=str(out), checkpoint=str(Path(root) / f"fp{seed}" / "model.pt"), pe=8, simd=8,
                            folding=FOLDING, keep_tiles=keep, penalty=penalty, seed=seed,
                            **{k: v for k, v in SETTINGS.items() if k != "fp_epochs"})
    compress(config)
    _, golden = export_evaluated(out, "digits", None)
    return {"torch": golden["torch_accuracy"], "golden": golden["accuracy"], "agreement": golden["agreement"],
            "weights_only": golden["compression_weights_only"], "with_index": golden["compression_with_index"],
            "layers": {row["name"]: (row["requested_keep"], row["achieved_keep"]) for row in golden["layers"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root, ProcessPoolExecutor(args.jobs) as pool:
        fp = list(pool.map(_fp, seeds, [root] * len(seeds)))
        jobs = {(name, keep, seed): pool.submit(_variant, seed, penalty, keep, root)
                for name, penalty in VARIANTS for keep in KEEPS for seed in seeds}
        results = {key: job.result() for key, job in jobs.items()}
    seconds = time.perf_counter() - start
    fp_acc = statistics.median(item["accuracy"] for item in fp)
    rows = _table(results, seeds, fp_acc)
    print(f"digits CNN, PE=8 SIMD=8 (conv0 8x1), median of {len(seeds)} seeds, {seconds:.0f} s; settings {SETTINGS}")
    _print(rows, fp_acc)
    _verdict(rows, fp_acc)
    if args.json:
        Path(args.json).write_text(json.dumps({"fp": fp, "rows": rows, "settings": SETTINGS}, indent=2,
                                              sort_keys=True) + "\n")
    return 0


def _table(results: dict, seeds: list[int], fp_acc: float) -> list[dict]:
    rows = []
    for name, _ in VARIANTS:
        for keep in KEEPS:
            runs = [results[(name, keep, seed)] for seed in seeds]
            median = {key: statistics.median(run[key] for run in runs)
                      for key in ("torch", "golden", "agreement", "weights_only", "with_index")}
            layers = {layer: (runs[0]["layers"][layer][0],
                              statistics.median(run["layers"][layer][1] for run in runs))
                      for layer in runs[0]["layers"]}
            rows.append({"variant": name, "keep": keep, **median, "layers": layers})
    return rows


def _print(rows: list[dict], fp_acc: float) -> None:
    print(f"{'variant':24s} {'keep':>9s} {'torch':>7s} {'golden':>7s} {'agree':>6s} {'w-only':>7s} {'w/index':>8s}"
          "  per layer requested->achieved")
    print(f"{'FP baseline':24s} {'-':>9s} {fp_acc:7.4f} {'-':>7s} {'-':>6s} {'1.0x':>7s} {'1.0x':>8s}")
    for row in rows:
        layers = " ".join(f"{n}:{r:.2f}->{a:.2f}" for n, (r, a) in row["layers"].items())
        print(f"{row['variant']:24s} {row['keep']:>9s} {row['torch']:7.4f} {row['golden']:7.4f} "
              f"{row['agreement']:6.3f} {row['weights_only']:6.1f}x {row['with_index']:7.1f}x  {layers}")


def _verdict(rows: list[dict], fp_acc: float) -> None:
    good = [r for r in rows if r["weights_only"] >= 21 and r["golden"] >= fp_acc - 0.01]
    best = max((r for r in rows if r["weights_only"] >= 21), key=lambda r: r["golden"])
    print(f"target 1 (golden within 1 point of FP {fp_acc:.4f} at >= 21x weights-only): "
          f"{'MET' if good else 'MISSED'} — best at >= 21x: {best['variant']} keep {best['keep']}: "
          f"golden {best['golden']:.4f} at {best['weights_only']:.1f}x")
    for keep in KEEPS:
        wpc = next(r for r in rows if r["variant"] == "ternary + WPC" and r["keep"] == keep)
        lasso = next(r for r in rows if r["variant"] == "ternary + group lasso" and r["keep"] == keep)
        verdict = "MET" if wpc["golden"] >= lasso["golden"] else "MISSED"
        print(f"target 2 at keep {keep:>9s}: WPC golden {wpc['golden']:.4f} ({wpc['weights_only']:.1f}x) vs group "
              f"lasso {lasso['golden']:.4f} ({lasso['weights_only']:.1f}x): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
