"""`pyflow run flow.yaml`: every stage in order, each writing its artifact to its own subfolder.

    RUN/train/        model.pt, metrics.json       (FP training; absent when the YAML names a checkpoint)
    RUN/fold/         folding.json                 (PE x SIMD per layer, chosen before compression)
    RUN/checkpoint/   model.pt, meta.json, metrics.json
    RUN/ir/           network.json, weights.npz, eval.json
    RUN/hls/          the Vitis HLS project, csim.json
    RUN/rtl/          the Verilog project, sim_icarus.json, sim_verilator.json, yosys.json
    RUN/report/       report.json, report.md, report.html
    RUN/run.json      the fingerprint of each finished stage

A stage runs again only when its fingerprint — its own settings plus the fingerprints of the stages it
reads — differs from the one recorded for its finished artifact. csim, sim and synth only read the
generated projects, so they run side by side.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pyflow.config import check_keys, integer, read_yaml
from pyflow.errors import PyflowError
from pyflow.util import MARKER, check_output_folder

STAGES = ("train", "fold", "compress", "export", "generate", "csim", "sim", "synth", "report")
DEPENDS = {"train": (), "fold": (), "compress": ("train", "fold"), "export": ("compress",),
           "generate": ("export",), "csim": ("generate",), "sim": ("generate",), "synth": ("generate",),
           "report": ("export", "csim", "sim", "synth")}
SIMULATORS = ("icarus", "verilator")
# The verification stages only read the generated projects: they run side by side, one process each
# (Icarus and Yosys use one core each), so on 2 cores synth adds no wall time to the simulations.
CONCURRENT = ("csim", "sim", "synth")


@dataclass(frozen=True)
class Verify:
    csim_vectors: int = 100
    sim_vectors: int = 100
    simulators: tuple[str, ...] = SIMULATORS
    # Yosys is stopped after this many seconds (0: no limit). The digits top takes about 2 minutes; a
    # VGG-sized top ran past 20 minutes and 18 GB, so a large design needs a raised limit, or --to sim.
    synth_seconds: int = 1800


@dataclass(frozen=True)
class FlowConfig:
    name: str
    model: str = "digits-cnn"
    data: str = "digits"
    checkpoint: str | None = None  # a trained plain state_dict: replaces the train stage
    board: str = "pynq-z2"
    seed: int = 0
    train_epochs: int = 40
    folding: Any = "auto"  # "auto" (sparsity-aware), "uniform" (board default), or {layer: [pe, simd]} fixed
    compress: dict = field(default_factory=dict)  # CompressConfig fields: keep_tiles, penalty, epochs, …
    verify: Verify = Verify()


def load_flow(path: str | Path) -> FlowConfig:
    """Parse and check a flow YAML; every problem is one line naming the file and the field."""
    where = str(path)
    raw = check_keys(FlowConfig, read_yaml(path), where)
    verify = Verify(**check_keys(Verify, raw.get("verify", {}), f"{where}: verify"))
    for key in ("csim_vectors", "sim_vectors"):
        integer(getattr(verify, key), f"{where}: verify.{key}", 1)
    integer(verify.synth_seconds, f"{where}: verify.synth_seconds", 0)
    unknown = [s for s in verify.simulators if s not in SIMULATORS]
    if unknown or not verify.simulators:
        raise PyflowError(f"{where}: verify.simulators: expected a list of {', '.join(SIMULATORS)}, "
                          f"got {verify.simulators!r}")
    config = FlowConfig(**{**raw, "verify": replace(verify, simulators=tuple(verify.simulators))})
    integer(config.train_epochs, f"{where}: train_epochs", 0)
    integer(config.seed, f"{where}: seed", 0)
    if not isinstance(config.compress, dict):
        raise PyflowError(f"{where}: compress: expected a mapping of compression settings")
    if not (config.folding in ("auto", "uniform") or isinstance(config.folding, dict)):
        raise PyflowError(f"{where}: folding: expected auto, uniform or a mapping layer -> [pe, simd]")
    _check_compress(config, where)
    from pyflow.boards import load_board

    try:
        load_board(config.board)  # an unknown board fails now, not after training
    except PyflowError as exc:
        raise PyflowError(f"{where}: board: {exc}") from None
    return config


def _check_compress(config: FlowConfig, where: str) -> None:
    """Build the CompressConfig once with a dummy folder, so bad settings fail before any stage runs."""
    from pyflow.compress.config import CompressConfig

    banned = {"out", "model", "data", "checkpoint", "folding", "pe", "simd", "seed"} & set(config.compress)
    if banned:
        raise PyflowError(f"{where}: compress.{sorted(banned)[0]}: set at the top level of the flow, not here")
    try:
        CompressConfig(out="-", **config.compress)
    except TypeError as exc:
        raise PyflowError(f"{where}: compress: {exc}") from None
    except PyflowError as exc:
        raise PyflowError(f"{where}: compress: {exc}") from None


@dataclass(frozen=True)
class Stage:
    name: str
    settings: Callable[[FlowConfig], Any]  # what, besides its inputs, decides the stage's output
    run: Callable[[FlowConfig, Path], None]
    artifacts: Callable[[FlowConfig, Path], list[Path]]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _trained(config: FlowConfig, run_dir: Path) -> str:
    return config.checkpoint or str(run_dir / "train" / "model.pt")


def _train(config: FlowConfig, run_dir: Path) -> None:
    if config.checkpoint:
        if not Path(config.checkpoint).is_file():
            raise PyflowError(f"checkpoint: {config.checkpoint}: file not found")
        _progress(f"  using the trained checkpoint {config.checkpoint}")
        return
    from pyflow.compress.api import train

    train(config.model, config.data, config.train_epochs, run_dir / "train", seed=config.seed)


def _fold(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.boards import load_board
    from pyflow.compress.api import layer_shapes
    from pyflow.folding import plan_folding, plan_table, uniform_folding
    from pyflow.util import atomic_folder

    shapes, board = layer_shapes(config.model, config.data), load_board(config.board)
    keep = config.compress.get("keep_tiles") or 1.0
    if config.folding == "uniform":
        plan = uniform_folding(shapes, board, keep)
    else:
        overrides = {} if config.folding == "auto" else {k: tuple(v) for k, v in config.folding.items()}
        plan = plan_folding(shapes, board, keep, overrides=overrides)
    uniform = uniform_folding(shapes, board, keep)
    doc = {"folding": {name: list(pair) for name, pair in plan.folding().items()}, "mode": str(config.folding),
           "board": board.name, "mean_balance": plan.mean_balance, "slowest_cycles": plan.slowest_cycles,
           "uniform_mean_balance": uniform.mean_balance, "uniform_slowest_cycles": uniform.slowest_cycles}
    with atomic_folder(run_dir / "fold", kind="fold") as tmp:
        (tmp / "folding.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    _progress(plan_table(plan))
    _progress(f"  pipeline balance {plan.mean_balance:.1%} (uniform {board.default_folding.pe}x"
              f"{board.default_folding.simd} folding: {uniform.mean_balance:.1%})")


def _compress(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.compress.api import CompressConfig, compress

    folding = json.loads((run_dir / "fold" / "folding.json").read_text())["folding"]
    compress(CompressConfig(out=str(run_dir / "checkpoint"), model=config.model, data=config.data,
                            checkpoint=_trained(config, run_dir), seed=config.seed,
                            folding={name: tuple(pair) for name, pair in folding.items()}, **config.compress))


def _export(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.compress.api import evaluate, export

    network = export(run_dir / "checkpoint", config.data, run_dir / "ir")
    metrics = evaluate(network, config.data)
    (run_dir / "ir" / "eval.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    _progress(f"  golden-model accuracy {metrics['accuracy']:.4f}, kept tiles {metrics['kept_tiles']:.3f}, "
              f"{metrics['compression_weights_only']:.1f}x weights-only compression")


def _generate(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.boards import load_board
    from pyflow.codegen.cli import generate
    from pyflow.ir import load

    network, board = load(run_dir / "ir"), load_board(config.board)
    for backend in ("hls", "rtl"):
        generate(backend, network, board, run_dir / backend)


def _csim(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.sim.csim import run_csim

    result = run_csim(run_dir / "hls", vectors=config.verify.csim_vectors, seed=config.seed)
    _progress(f"  C-simulation: {'bit-exact' if result['bit_exact'] else 'MISMATCH'} on "
              f"{result['outputs_compared']} outputs")
    if not result["bit_exact"]:
        raise PyflowError(f"C-simulation differs from the golden model on {result['mismatches']} outputs "
                          f"(see {run_dir / 'hls'})")


def _sim(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.sim.rtl import run_sim

    for simulator in config.verify.simulators:
        result = run_sim(run_dir / "rtl", simulator, vectors=config.verify.sim_vectors, seed=config.seed)
        _progress(f"  {simulator}: {'bit-exact' if result['bit_exact'] else 'MISMATCH'} on "
                  f"{result['outputs_compared']} outputs, {result['interval_cycles']} cycles per image")
        if not result["bit_exact"]:
            raise PyflowError(f"{simulator}: RTL differs from the golden model on {result['mismatches']} outputs")


def _synth(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.sim.yosys import SynthesisTimeout, synthesize

    try:
        cells = synthesize(run_dir / "rtl", timeout=config.verify.synth_seconds or None)["cells"]
    except SynthesisTimeout as exc:
        raise PyflowError(f"{exc}: raise verify.synth_seconds (0: no limit), or run --to sim and then "
                          f"`pyflow report {run_dir}` for modelled resources only") from None
    _progress("  yosys: " + ", ".join(f"{key} {value}" for key, value in sorted(cells.items())))


def _report(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.report import write_report

    write_report(run_dir, board=config.board)


STAGE_TABLE = {
    "train": Stage("train", lambda c: [c.model, c.data, c.seed, c.train_epochs, c.checkpoint and _digest(c.checkpoint)],
                   _train, lambda c, r: [] if c.checkpoint else [r / "train" / "model.pt"]),
    "fold": Stage("fold", lambda c: [c.model, c.data, c.board, c.folding, c.compress.get("keep_tiles")],
                  _fold, lambda c, r: [r / "fold" / "folding.json"]),
    "compress": Stage("compress", lambda c: [c.compress, c.seed], _compress,
                      lambda c, r: [r / "checkpoint" / "model.pt"]),
    "export": Stage("export", lambda c: [c.data], _export, lambda c, r: [r / "ir" / "eval.json"]),
    "generate": Stage("generate", lambda c: [c.board, _templates_digest()], _generate,
                      lambda c, r: [r / "hls" / MARKER, r / "rtl" / MARKER]),
    "csim": Stage("csim", lambda c: [c.verify.csim_vectors, c.seed], _csim, lambda c, r: [r / "hls" / "csim.json"]),
    "sim": Stage("sim", lambda c: [c.verify.sim_vectors, c.verify.simulators, c.seed], _sim,
                 lambda c, r: [r / "rtl" / f"sim_{s}.json" for s in c.verify.simulators]),
    "synth": Stage("synth", lambda c: [], _synth, lambda c, r: [r / "rtl" / "yosys.json"]),
    "report": Stage("report", lambda c: [c.board], _report, lambda c, r: [r / "report" / "report.json"]),
}


def _digest(path: str) -> str:
    target = Path(path)
    return hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else "missing"


def _templates_digest() -> str:
    """The HLS and RTL templates and libraries: a changed template regenerates (and re-verifies) the projects."""
    from pyflow.codegen.context import project_root

    digest = hashlib.sha256()
    for folder in ("hls_templates", "rtl_templates"):
        for path in sorted((project_root() / folder).rglob("*")):
            if path.is_file():
                digest.update(f"{path.relative_to(project_root())}\n".encode() + path.read_bytes())
    return digest.hexdigest()


def _fingerprint(settings: Any, upstream: list[str]) -> str:
    from pyflow import __version__

    text = json.dumps({"settings": settings, "upstream": upstream, "pyflow": __version__}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _select(start: str | None, stop: str | None) -> tuple[str, ...]:
    for name, value in (("--from", start), ("--to", stop)):
        if value is not None and value not in STAGES:
            raise PyflowError(f"{name}: unknown stage {value!r} (stages: {', '.join(STAGES)})")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(stop) if stop else len(STAGES) - 1
    if first > last:
        raise PyflowError(f"--from {start} comes after --to {stop}")
    return STAGES[first:last + 1]


def _save_state(path: Path, config: FlowConfig, done: dict[str, str]) -> None:
    state = {"board": config.board, "name": config.name, "config": asdict(config), "stages": done}
    path.write_text(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")


def run_flow(config: FlowConfig, run_dir: str | Path, start: str | None = None, stop: str | None = None,
             force: bool = False) -> Path:
    """Run the stages from ``start`` to ``stop``; a stage whose fingerprint is unchanged is skipped."""
    run_dir = check_output_folder(run_dir)
    selected = _select(start, stop)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MARKER).write_text("run\n")
    state_file = run_dir / "run.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    done: dict[str, str] = state.get("stages", {})
    prints: dict[str, str] = {}
    pending: list[tuple[int, str, str]] = []  # verification stages waiting to run side by side
    for position, name in enumerate(STAGES, 1):
        if pending and name not in CONCURRENT:
            _run_stages(pending, config, run_dir, state_file, done)
            pending = []
        stage = STAGE_TABLE[name]
        prints[name] = _fingerprint(stage.settings(config), [prints[d] for d in DEPENDS[name]])
        fresh = done.get(name) == prints[name] and all(p.exists() for p in stage.artifacts(config, run_dir))
        if name not in selected:
            if not fresh and STAGES.index(name) < STAGES.index(selected[0]):
                raise PyflowError(f"stage {name!r} has no up-to-date result in {run_dir}: run without --from first")
            continue
        if fresh and not force:
            _progress(f"[{position}/{len(STAGES)}] {name}: up to date, skipped")
            continue
        pending.append((position, name, prints[name]))
        if name not in CONCURRENT:
            _run_stages(pending, config, run_dir, state_file, done)
            pending = []
    if pending:
        _run_stages(pending, config, run_dir, state_file, done)
    return run_dir


def _run_stages(batch: list[tuple[int, str, str]], config: FlowConfig, run_dir: Path, state_file: Path,
                done: dict[str, str]) -> None:
    """Run ``batch`` ((position, name, fingerprint) of each stage) and record each fingerprint as it finishes.

    When a stage fails, the others still run to the end; then the first failure (in stage order) is raised.
    """
    for _, name, _ in batch:
        done.pop(name, None)
    _save_state(state_file, config, done)  # a stage that fails leaves no fingerprint behind
    failures: dict[int, Exception] = {}
    for (position, name, fingerprint), future in _launch(batch, config, run_dir):
        try:
            seconds = future.result()
        except Exception as exc:  # raised below, once the other stages have finished
            failures[position] = exc
            continue
        done[name] = fingerprint
        _save_state(state_file, config, done)
        _progress(f"[{position}/{len(STAGES)}] {name}: done in {seconds:.1f} s")
    if failures:
        raise failures[min(failures)]


def _launch(batch: list[tuple[int, str, str]], config: FlowConfig,
            run_dir: Path) -> Iterator[tuple[tuple[int, str, str], Future]]:
    """Each stage of ``batch`` with its finished future, in the order they finish.

    With more than one stage and more than one core, the stages run side by side in spawned worker
    processes (the cocotb runner redirects file descriptors and sets environment variables process-wide).
    """
    workers = min(len(batch), _cpus())
    if workers == 1:
        for entry in batch:
            _progress(f"[{entry[0]}/{len(STAGES)}] {entry[1]} …")
            future: Future = Future()
            try:
                future.set_result(_timed_stage(entry[1], config, run_dir))
            except Exception as exc:  # handed to the caller like a worker's failure
                future.set_exception(exc)
            yield entry, future
        return
    for position, name, _ in batch:
        _progress(f"[{position}/{len(STAGES)}] {name} …")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_timed_stage, entry[1], config, run_dir): entry for entry in batch}
        for future in as_completed(futures):
            yield futures[future], future


def _timed_stage(name: str, config: FlowConfig, run_dir: Path) -> float:
    begin = time.perf_counter()
    STAGE_TABLE[name].run(config, run_dir)
    return time.perf_counter() - begin


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def headline(run_dir: Path) -> str:
    """The report's path and the few numbers a user looks at first, from the written report."""
    from pyflow.report.write import headline as report_headline

    report = json.loads((run_dir / "report" / "report.json").read_text())
    views = ", ".join(f"{view} {doc['status']}" for view, doc in report["verification"]["views"].items())
    return (f"report: {run_dir / 'report' / 'report.html'}\n  bit-exact vs golden: {views}\n"
            f"  {report_headline(report)}")


def register(commands: Any) -> None:
    parser = commands.add_parser("run", help="the whole flow from a YAML file: train → … → report")
    parser.add_argument("flow", help="flow YAML (configs/digits.yaml is the built-in default)")
    parser.add_argument("--out", help="run folder (default runs/<name>)")
    parser.add_argument("--from", dest="start", choices=STAGES, help="first stage to run")
    parser.add_argument("--to", dest="stop", choices=STAGES, help="last stage to run")
    parser.add_argument("--force", action="store_true", help="run the selected stages even if up to date")
    parser.set_defaults(func=_run)
    demo = commands.add_parser("demo", help="the built-in flow: configs/digits.yaml into runs/digits")
    demo.add_argument("--out", default="runs/digits")
    demo.set_defaults(func=_demo)


def _run(args: Any) -> int:
    config = load_flow(args.flow)
    run_dir = run_flow(config, args.out or Path("runs") / config.name, args.start, args.stop, args.force)
    if (run_dir / "report" / "report.json").is_file():
        print(headline(run_dir))
    return 0


def _demo(args: Any) -> int:
    from pyflow.codegen.context import project_root

    args.flow, args.start, args.stop, args.force = project_root() / "configs" / "digits.yaml", None, None, False
    return _run(args)
