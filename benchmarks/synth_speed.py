"""Yosys wall time and peak memory: the whole top in one process (time-limited baseline) vs out of context.

Usage: .venv/bin/python benchmarks/synth_speed.py [--work DIR] [--designs vgg-small digits] [--top-limit S]

Both runs synthesize from scratch (``reuse=False``) the same generated project, one after the other in this
run, and the script prints their ratio. Peak memory is each Yosys process's own ``ru_maxrss``; for the
out-of-context run also the sum of the ``jobs`` largest (an upper bound on the processes running together).
A whole-top run stopped at ``--top-limit`` prints its time as a lower bound (">").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.resource_fit import DESIGNS  # noqa: E402
from pyflow.boards import load_board  # noqa: E402
from pyflow.codegen.rtl import generate  # noqa: E402
from pyflow.random_ir import random_network  # noqa: E402
from pyflow.sim.yosys import SynthesisTimeout, synthesize  # noqa: E402


def run(project: Path, method: str, limit: float | None) -> tuple[float, float, dict | None, bool]:
    start = time.perf_counter()
    try:
        summary = synthesize(project, timeout=limit, method=method, reuse=False, progress=method == "ooc")
    except SynthesisTimeout:
        return time.perf_counter() - start, float("nan"), None, True
    return summary["seconds"], summary["peak_rss_mb"], summary, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/synth_speed")
    parser.add_argument("--designs", nargs="*", default=["vgg-small", "digits"])
    parser.add_argument("--top-limit", type=float, default=900.0, help="seconds for the whole-top baseline")
    args = parser.parse_args()
    print(f"{'design':10s} {'whole top s':>12s} {'MB':>6s} {'OOC s':>7s} {'MB':>6s} {'2 largest MB':>13s} "
          f"{'speed-up':>9s}  OOC cells")
    for name in args.designs:
        spec, shape, pe, simd, keep, board = DESIGNS[name]
        network = random_network(spec, shape, pe=pe, simd=simd, keep=keep, seed=0)
        project = generate(network, load_board(board), Path(args.work) / name)
        top_s, top_mb, _, stopped = run(project, "top", args.top_limit)
        ooc_s, ooc_mb, summary, _ = run(project, "ooc", None)
        bound = ">" if stopped else ""
        print(f"{name:10s} {bound + f'{top_s:.1f}':>12s} {top_mb:6.0f} {ooc_s:7.1f} {ooc_mb:6.0f} "
              f"{summary['peak_total_rss_mb']:13.0f} {bound + f'{top_s / ooc_s:.2f}x':>9s}  {summary['cells']}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
