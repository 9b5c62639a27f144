"""Sweep of the penalty phase's settings: λ, its growth per epoch, and WPC's clip (the target's cut, or κ·Δ·√|g|).

One float model per seed, then every setting compresses it to the same kept fraction; the table gives the
golden-model accuracy (mean ± std over seeds), the accuracy just before and after the freeze, how many
removed tiles still held non-zero codes, and the penalty epoch at which the target was first reached.

    .venv/bin/python benchmarks/penalty_sweep.py [--data digits] [--seeds 3] [--keep 0.5] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression import PRESETS, _fp, _pm, _quiet, _stats  # noqa: E402  (the sibling benchmark)

# (label, CompressConfig fields); the first is the default of pyflow.compress.config
SETTINGS = (
    ("WPC target, lam 1, x4/epoch (default)", {"penalty": "wpc", "tau": "target", "lam": 1.0, "lam_growth": 4.0}),
    ("WPC target, lam 0.1, x4/epoch", {"penalty": "wpc", "tau": "target", "lam": 0.1, "lam_growth": 4.0}),
    ("WPC target, lam 10, x4/epoch", {"penalty": "wpc", "tau": "target", "lam": 10.0, "lam_growth": 4.0}),
    ("WPC target, lam 1, x2/epoch", {"penalty": "wpc", "tau": "target", "lam": 1.0, "lam_growth": 2.0}),
    ("WPC target, lam 1, x10/epoch", {"penalty": "wpc", "tau": "target", "lam": 1.0, "lam_growth": 10.0}),
    ("WPC target, lam 1, fixed", {"penalty": "wpc", "tau": "target", "lam": 1.0, "lam_growth": 1.0}),
    ("WPC kappa 1, lam 1, x4/epoch", {"penalty": "wpc", "tau": "threshold", "kappa": 1.0, "lam": 1.0,
                                      "lam_growth": 4.0}),
    ("WPC kappa 3, lam 1, x4/epoch", {"penalty": "wpc", "tau": "threshold", "kappa": 3.0, "lam": 1.0,
                                      "lam_growth": 4.0}),
    ("WPC kappa 3, lam 0.01, fixed (old)", {"penalty": "wpc", "tau": "threshold", "kappa": 3.0, "lam": 0.01,
                                            "lam_growth": 1.0}),
    ("group lasso, lam 1, x4/epoch", {"penalty": "group-lasso", "lam": 1.0, "lam_growth": 4.0}),
)


def _run(spec: dict, seed: int, index: int, keep: float, root: str) -> dict:
    _quiet(spec["threads"])
    from pyflow.compress.api import CompressConfig, compress, export_evaluated

    out = Path(root) / f"s{index}-{seed}"
    config = CompressConfig(out=str(out), model=spec["model"], data=spec["data"],
                            checkpoint=str(Path(root) / f"fp{seed}" / "model.pt"), pe=8, simd=8,
                            folding=spec["folding"], keep_tiles=keep, seed=seed, ternary_epochs=spec["ternary_epochs"],
                            finetune_epochs=spec["finetune_epochs"], **SETTINGS[index][1])
    compress(config)
    _, golden = export_evaluated(out, spec["data"], None)
    metrics = json.loads((out / "metrics.json").read_text())
    penalty = [r for r in metrics["history"] if r["phase"].startswith("ternary")]
    target = sum(max(1, round(keep * layer["tiles_total"])) for layer in metrics["layers"])
    reached = next((r["epoch"] for r in penalty if r["kept_tiles"] <= target), None)
    return {"golden": golden["accuracy"], "weights_only": golden["compression_weights_only"],
            "before": metrics["freeze"]["accuracy_before"], "after": metrics["freeze"]["accuracy_after"],
            "cut_nonzero": metrics["freeze"]["removed_nonzero_tiles"], "reached": reached}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(PRESETS), default="digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    spec = {**PRESETS[args.data], "data": args.data, "threads": 1}
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root, ProcessPoolExecutor(args.jobs) as pool:
        fp = list(pool.map(_fp, [spec] * len(seeds), seeds, [root] * len(seeds)))
        jobs = {(i, s): pool.submit(_run, spec, s, i, args.keep, root) for i in range(len(SETTINGS)) for s in seeds}
        results = {key: job.result() for key, job in jobs.items()}
    fp_stats = _stats([f["accuracy"] for f in fp])
    print(f"{args.data}: {spec['model']}, keep {args.keep:g} in every layer, {len(seeds)} seeds (mean ± std), epochs "
          f"fp/penalty/finetune {spec['fp_epochs']}/{spec['ternary_epochs']}/{spec['finetune_epochs']}, "
          f"{time.perf_counter() - start:.0f} s; float {_pm(fp_stats)} %")
    print(f"{'setting':40s} {'golden %':>12s} {'w-only':>7s} {'before->after freeze %':>26s} {'cut non-zero':>12s} "
          "target reached at penalty epoch")
    rows = []
    for index, (label, _) in enumerate(SETTINGS):
        runs = [results[(index, s)] for s in seeds]
        row = {"setting": label, **{k: _stats([r[k] for r in runs]) for k in ("golden", "weights_only", "before",
                                                                              "after", "cut_nonzero")},
               "reached": [r["reached"] for r in runs]}
        rows.append(row)
        print(f"{label:40s} {_pm(row['golden']):>12s} {row['weights_only'][0]:6.1f}x "
              f"{_pm(row['before']) + '->' + _pm(row['after']):>26s} {row['cut_nonzero'][0]:12.1f} "
              f"{', '.join('never' if r is None else str(r) for r in row['reached'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"spec": spec, "fp": fp, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
