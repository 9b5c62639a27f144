"""`pyflow csim OUT`: build the generated HLS project with g++ and check it bit-exact against the golden model.

The project's C testbench reads seeded random uint8 images and their golden logits (computed from the
IR copy in ``OUT/ir``) from files, compares every logit with ``==`` and exits non-zero on any mismatch.
The build (``OUT/csim/tb``) is reused while the sources and flags are unchanged: one compile per design.
The vectors are split into contiguous slices over ``--jobs`` testbench processes (default: one per core);
their counts are summed, so the verdict is the same for any number of workers. Writes ``OUT/csim.json``
(notes/contracts.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflow.artifacts import CSIM_FILE, write_json
from pyflow.errors import PyflowError

CXXFLAGS = ("-O3", "-std=c++17", "-Wall", "-Werror", "-Wno-unknown-pragmas")
QUICK_OPT = "-O0"  # the fuzz tier's many small designs: compile time dominates (6 s at -O3 per design)
SOURCES = ("src/top.cpp", "tb/tb.cpp")
BUILD_DIR = "csim"
RESULT_FILE = CSIM_FILE
_SUMMARY = re.compile(r"pyflow csim: (\d+) vectors, (\d+) outputs compared, (\d+) mismatches: (PASS|FAIL)")


@dataclass(frozen=True)
class TestbenchResult:
    returncode: int
    vectors: int
    outputs_compared: int
    mismatches: int
    output: str  # the testbench's stdout and stderr

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.mismatches == 0 and self.outputs_compared > 0


def find_project(folder: str | Path) -> Path:
    """The HLS project in ``folder``: the folder itself, or its ``hls/`` (the ``--backend both`` layout)."""
    folder = Path(folder)
    for candidate in (folder, folder / "hls"):
        if (candidate / "src" / "top.cpp").is_file() and (candidate / "ir").is_dir():
            return candidate
    raise PyflowError(f"{folder}: not an HLS project (no src/top.cpp and ir/; write one with "
                      "`pyflow generate IR --backend hls --out {folder}`)")


def compiler_version() -> str:
    from pyflow.tools import require, version_of

    require("g++")
    return version_of("g++") or ""


def build(project: Path, quick: bool = False) -> tuple[Path, float]:
    """Compile the testbench once per design (``quick``: unoptimized, for many tiny designs); returns the
    binary and the seconds its build took."""
    from pyflow.tools import ap_types_dir, require

    require("g++")
    require("ap_types")
    flags = (QUICK_OPT, *CXXFLAGS[1:]) if quick else CXXFLAGS
    command = ["g++", *flags, "-I", "src", "-isystem", str(ap_types_dir()), *SOURCES, "-o", f"{BUILD_DIR}/tb"]
    digest = _digest(project, command)
    binary, stamp = project / BUILD_DIR / "tb", project / BUILD_DIR / "build.json"
    if binary.is_file() and stamp.is_file():
        recorded = json.loads(stamp.read_text())
        if recorded.get("digest") == digest:
            return binary, float(recorded["build_seconds"])
    (project / BUILD_DIR).mkdir(exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        first = " | ".join(result.stderr.strip().splitlines()[:3])
        raise PyflowError(f"{project}: g++ failed to build the C simulation: {first}")
    write_json(stamp, {"digest": digest, "build_seconds": seconds})
    return binary, seconds


def _digest(project: Path, command: list[str]) -> str:
    sha = hashlib.sha256(" ".join(command).encode())
    for path in sorted((project / "src").iterdir()) + [project / "tb" / "tb.cpp"]:
        sha.update(path.name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def run_testbench(binary: Path, inputs: Path, golden_file: Path, first: int = 0,
                  count: int | None = None) -> TestbenchResult:
    """Run the compiled testbench on one input and one golden file (images ``first`` .. ``first+count-1``
    only, when ``count`` is given)."""
    return _result(subprocess.run(_tb_command(binary, inputs, golden_file, first, count), capture_output=True,
                                  text=True, check=False))


def run_parallel(binary: Path, inputs: Path, golden_file: Path, vectors: int, jobs: int) -> TestbenchResult:
    """The testbench on ``vectors`` images split into ``jobs`` contiguous slices, one process each, run at
    once; the counts are summed and the outputs joined in slice order, so the result does not depend on
    which process finishes first."""
    slices = _slices(vectors, jobs)
    if len(slices) == 1:
        return run_testbench(binary, inputs, golden_file)
    workers = [subprocess.Popen(_tb_command(binary, inputs, golden_file, first, count), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for first, count in slices]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate()
        results.append(_result(subprocess.CompletedProcess(worker.args, worker.returncode, stdout, stderr)))
    return _merge(results)


def _slices(vectors: int, jobs: int) -> list[tuple[int, int]]:
    """``(first, count)`` of at most ``jobs`` contiguous slices of ``vectors`` images, sizes differing by at
    most one."""
    if jobs < 1:
        raise PyflowError(f"csim: --jobs must be at least 1, got {jobs}")
    parts = min(jobs, vectors)
    bounds = [vectors * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(parts)]


def _tb_command(binary: Path, inputs: Path, golden_file: Path, first: int, count: int | None) -> list[str]:
    command = [str(binary), str(inputs), str(golden_file)]
    return command if count is None else [*command, str(first), str(count)]


def _result(process: subprocess.CompletedProcess) -> TestbenchResult:
    match = _SUMMARY.search(process.stdout)
    counts = [int(match.group(i)) for i in (1, 2, 3)] if match else [0, 0, 0]
    return TestbenchResult(process.returncode, *counts, process.stdout + process.stderr)


def _merge(results: list[TestbenchResult]) -> TestbenchResult:
    """One result for the slices: passed only when every slice passed; an error code (not 0 or 1) wins."""
    codes = {r.returncode for r in results}
    errors = sorted(codes - {0, 1})
    returncode = errors[0] if errors else max(codes)
    return TestbenchResult(returncode, sum(r.vectors for r in results), sum(r.outputs_compared for r in results),
                           sum(r.mismatches for r in results), "".join(r.output for r in results))


def default_jobs() -> int:
    """Testbench processes by default: one per core."""
    return os.cpu_count() or 1


def run_csim(project_dir: str | Path, vectors: int = 16, seed: int = 0, quick: bool = False,
             jobs: int | None = None) -> dict[str, Any]:
    """Build, run on ``vectors`` seeded random images over ``jobs`` processes (default: one per core), write
    and return the ``csim.json`` content."""
    return simulate(project_dir, vectors, seed, quick, jobs)[0]


def simulate(project_dir: str | Path, vectors: int, seed: int, quick: bool = False,
             jobs: int | None = None) -> tuple[dict[str, Any], TestbenchResult]:
    """:func:`run_csim`, also returning the testbench's own result (its printed mismatches)."""
    from pyflow.codegen.hls import load_ir, write_vectors

    if vectors < 1:
        raise PyflowError(f"csim: --vectors must be at least 1, got {vectors}")
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:  # before the build, not after it
        raise PyflowError(f"csim: --jobs must be at least 1, got {jobs}")
    project = find_project(project_dir)
    network = load_ir(project)
    binary, build_seconds = build(project, quick)
    inputs, golden_file = write_vectors(network, project / BUILD_DIR, vectors, seed)
    start = time.perf_counter()
    outcome = run_parallel(binary, inputs, golden_file, vectors, jobs)
    run_seconds = time.perf_counter() - start
    if outcome.returncode not in (0, 1) or outcome.vectors != vectors:
        raise PyflowError(f"{project}: the C testbench failed to run: {outcome.output.strip()[:300]}")
    outputs = vectors * math.prod(network.layers[-1].out_shape)  # logits per image: C (x H x W for a conv)
    report = {"bit_exact": outcome.passed and outcome.outputs_compared == outputs,
              "vectors": outcome.vectors, "outputs_compared": outcome.outputs_compared,
              "mismatches": outcome.mismatches, "compiler": compiler_version(),
              "build_seconds": round(build_seconds, 3), "run_seconds": round(run_seconds, 3),
              "jobs": min(jobs, vectors)}  # the processes _slices starts
    write_json(project / RESULT_FILE, report)
    return report, outcome


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("csim", help="g++ C-simulation of a generated HLS project against the golden model")
    parser.add_argument("project", help="HLS project folder (or a `--backend both` folder holding hls/)")
    parser.add_argument("--vectors", type=int, default=16, help="random images to simulate (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random images (default 0)")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help=f"testbench processes sharing the vectors (default: one per core, {default_jobs()})")
    parser.set_defaults(func=_csim)


def _csim(args: argparse.Namespace) -> int:
    report, outcome = simulate(args.project, args.vectors, args.seed, jobs=args.jobs)
    for line in outcome.output.splitlines():
        if line.startswith("mismatch:"):
            print(line)
    verdict = "PASS" if report["bit_exact"] else "FAIL"
    print(f"csim {verdict}: {report['outputs_compared']} outputs compared over {report['vectors']} vectors, "
          f"{report['mismatches']} mismatches (build {report['build_seconds']:.1f} s, "
          f"run {report['run_seconds']:.2f} s on {report['jobs']} processes)")
    return 0 if report["bit_exact"] else 1
