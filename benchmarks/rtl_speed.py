"""RTL simulation speed on the digits-sized network: build time and simulated cycles per wall-second,
Verilator vs Icarus, median of 3 (fresh build each time). Prints the Verilator/Icarus ratios.

usage: .venv/bin/python benchmarks/rtl_speed.py [--vectors N] [--repeats R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from pyflow.artifacts import SIMULATORS
from pyflow.codegen.rtl import generate
from pyflow.random_ir import random_network
from pyflow.sim.rtl import run_sim

SPEC = "conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10"


def measure(project: Path, simulator: str, vectors: int, repeats: int) -> tuple[float, float, int]:
    builds, speeds, cycles = [], [], 0
    for repeat in range(repeats):
        shutil.rmtree(project / "sim_build" / simulator, ignore_errors=True)
        summary = run_sim(project, simulator, vectors=vectors, seed=repeat)
        assert summary["bit_exact"], f"{simulator}: RTL differs from the golden model"
        raw = summary["_raw"]
        builds.append(raw["build_seconds"])
        speeds.append(raw["total_cycles"] / raw["run_seconds"])
        cycles = raw["total_cycles"]
    return statistics.median(builds), statistics.median(speeds), cycles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    network = random_network(SPEC, (1, 8, 8), pe=8, simd=8, keep=0.25, seed=0, folding={"conv0": (8, 1)})
    with tempfile.TemporaryDirectory() as tmp:
        project = generate(network, None, Path(tmp) / "digits")
        results = {sim: measure(project, sim, args.vectors, args.repeats) for sim in SIMULATORS}
    print(f"digits network ({SPEC}), {args.vectors} vectors, median of {args.repeats}")
    for sim, (build, speed, cycles) in results.items():
        print(f"  {sim:9s}  build {build:6.1f} s   {speed:9.0f} simulated cycles / wall-second  ({cycles} cycles)")
    icarus, verilator = results["icarus"], results["verilator"]
    print(f"  verilator / icarus: build time x{verilator[0] / icarus[0]:.1f}, "
          f"simulation speed x{verilator[1] / icarus[1]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
