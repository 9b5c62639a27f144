"""HLS backend speed: generate time, g++ build time and C-simulation throughput against the C simulation
before issue 15, all measured in one run.

    .venv/bin/python benchmarks/hls_speed.py [--repeats 5] [--jobs N] [--seed 0]

Two networks at 25 % kept tiles, PE 8 x SIMD 8: digits-sized (1x8x8) and VGG-small (3x32x32). Each generated
project is built twice and run three ways on the same seeded random images, every logit checked ``==``
against the golden model on every run:

    before   the library of commit BEFORE (an ap_int per PE lane) built with -O2, one testbench process:
             pyflow's C simulation as it was;
    now x1   the current library and ``csim.CXXFLAGS``, one process;
    now xN   the same binary on ``--jobs`` processes (``pyflow csim``'s default: one per core).

In each repeat the three run one after the other, so that load from other processes falls on all of them.
Throughput is images / median wall seconds of the testbench run (process start and reading the vector files
included); ratios are against ``before`` of the same run; ``sd`` is the standard deviation of the run
seconds. The NumPy golden model's throughput on the same images is printed beside them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyflow import golden
from pyflow.boards import load_board
from pyflow.codegen import hls
from pyflow.random_ir import random_network
from pyflow.sim import csim
from pyflow.tools import ap_types_dir

NETWORKS = {  # spec, input shape, images per run
    "digits": ("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (1, 8, 8), 500),
    "vgg-small": ("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 conv256k3p1 conv256k3p1 "
                  "maxpool2 linear10", (3, 32, 32), 8),
}
KEEP, PE, SIMD = 0.25, 8, 8
BEFORE = "669c4b8"  # the last commit whose PE array used an ap_int per lane, built with -O2
BEFORE_FLAGS = ("-O2", "-std=c++17", "-Wall", "-Werror", "-Wno-unknown-pragmas")
REPO = Path(__file__).resolve().parents[1]


def _timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def before_project(project: Path, folder: Path) -> tuple[Path, float]:
    """A copy of ``project`` with the library of commit BEFORE, built with that commit's flags; the binary
    and its build seconds."""
    old = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:hls_templates/pyflow_hls.h"],
                         capture_output=True, text=True, check=True).stdout
    shutil.copytree(project, folder)
    (folder / "src" / "pyflow_hls.h").write_text(old)
    (folder / csim.BUILD_DIR).mkdir(exist_ok=True)
    command = ["g++", *BEFORE_FLAGS, "-I", "src", "-isystem", str(ap_types_dir()), *csim.SOURCES,
               "-o", f"{csim.BUILD_DIR}/tb"]
    seconds, _ = _timed(lambda: subprocess.run(command, cwd=folder, check=True))
    return folder / csim.BUILD_DIR / "tb", seconds


def fresh_build(project: Path) -> tuple[Path, float]:
    (project / csim.BUILD_DIR / "build.json").unlink(missing_ok=True)  # force a compile
    return csim.build(project)


def measure(name: str, folder: Path, repeats: int, jobs: int, seed: int) -> dict:
    spec, shape, images = NETWORKS[name]
    network = random_network(spec, shape, pe=PE, simd=SIMD, keep=KEEP, seed=seed)
    board, project = load_board("pynq-z2"), folder / name
    generate = [_timed(lambda: hls.generate(network, board, project))[0] for _ in range(repeats)]
    builds = [fresh_build(project) for _ in range(repeats)]
    binary = builds[-1][0]
    old_binary, old_build = before_project(project, folder / f"{name}-before")
    (folder / f"{name}-vectors").mkdir()
    inputs, golden_file = hls.write_vectors(network, folder / f"{name}-vectors", images, seed)
    outputs = images * network.num_classes
    ways = {"before": lambda: csim.run_testbench(old_binary, inputs, golden_file),
            "now x1": lambda: csim.run_parallel(binary, inputs, golden_file, images, 1),
            "now xN": lambda: csim.run_parallel(binary, inputs, golden_file, images, jobs)}
    seconds = {way: [] for way in ways}
    for _ in range(repeats):
        for way, run in ways.items():
            elapsed, outcome = _timed(run)
            assert outcome.passed and outcome.outputs_compared == outputs, f"{name} {way}: not bit-exact"
            seconds[way].append(elapsed)
    batch = hls.random_images(network, images, seed)
    reference = [_timed(lambda: golden.run(network, batch))[0] for _ in range(repeats)]
    return {"network": network, "images": images, "generate_s": statistics.median(generate),
            "build_s": statistics.median(s for _, s in builds), "before_build_s": old_build,
            "seconds": seconds, "golden_s": reference}


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def report(name: str, r: dict, jobs: int, repeats: int) -> None:
    network, images = r["network"], r["images"]
    kept = sum(layer.n_kept for layer in network.matrix_layers)
    tiles = sum(layer.tiles_total for layer in network.matrix_layers)
    print(f"\n{name}: kept {kept}/{tiles} tiles, {images} images per run, median of {repeats}")
    print(f"  generate {r['generate_s']:.3f} s; g++ build: before ({BEFORE_FLAGS[0]}) {r['before_build_s']:.2f} s, "
          f"now ({' '.join(csim.CXXFLAGS[:1])}) {r['build_s']:.2f} s")
    before = statistics.median(r["seconds"]["before"])
    labels = {"before": f"before ({BEFORE}, {BEFORE_FLAGS[0]}), 1 process",
              "now x1": f"now ({csim.CXXFLAGS[0]}), 1 process", "now xN": f"now ({csim.CXXFLAGS[0]}), {jobs} processes"}
    for way, times in r["seconds"].items():
        median = statistics.median(times)
        print(f"  csim {labels[way]:34s} {images / median:9.1f} images/s  run {median:7.3f} s sd {_sd(times):.3f}  "
              f"{before / median:6.1f}x before   == on {images * network.num_classes} logits every run")
    reference = statistics.median(r["golden_s"])
    print(f"  golden model (NumPy)                    {images / reference:9.1f} images/s  run {reference:7.3f} s "
          f"sd {_sd(r['golden_s']):.3f}  csim now x{jobs} / golden "
          f"{reference / statistics.median(r['seconds']['now xN']):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=csim.default_jobs(),
                        help="testbench processes of the `now xN` runs (default: one per core)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random networks and images")
    args = parser.parse_args()
    if args.repeats < 1 or args.jobs < 1:
        parser.error("--repeats and --jobs must be at least 1")
    print(f"command: benchmarks/hls_speed.py --repeats {args.repeats} --jobs {args.jobs} --seed {args.seed}; "
          f"{csim.compiler_version()}; flags now {' '.join(csim.CXXFLAGS)}")
    with tempfile.TemporaryDirectory(prefix="pyflow-hls-speed-") as folder:
        for name in NETWORKS:
            report(name, measure(name, Path(folder), args.repeats, args.jobs, args.seed), args.jobs, args.repeats)


if __name__ == "__main__":
    main()
