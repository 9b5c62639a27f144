"""The stages of the flow: what each runs, what decides its output, which artifacts it leaves."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflow.artifacts import (
    CSIM_FILE,
    EVAL_FILE,
    FOLDING_FILE,
    PNR_DIR,
    PNR_FILE,
    YOSYS_FILE,
    project_root,
    sim_file,
    write_json,
)
from pyflow.errors import PyflowError
from pyflow.flow.config import FlowConfig
from pyflow.util import MARKER


@dataclass(frozen=True)
class Stage:
    name: str
    settings: Callable[[FlowConfig], Any]  # what, besides its inputs, decides the stage's output
    run: Callable[[FlowConfig, Path], None]
    artifacts: Callable[[FlowConfig, Path], list[Path]]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _trained(config: FlowConfig, run_dir: Path) -> str:
    return config.checkpoint or str(run_dir / "train" / "model.pt")


def _train(config: FlowConfig, run_dir: Path) -> None:
    if config.checkpoint:
        if not Path(config.checkpoint).is_file():
            raise PyflowError(f"checkpoint: {config.checkpoint}: file not found")
        progress(f"  using the trained checkpoint {config.checkpoint}")
        return
    from pyflow.compress.api import train

    train(config.model, config.data, config.train_epochs, run_dir / "train", seed=config.seed)


def _fold(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.boards import load_board
    from pyflow.compress.api import layer_shapes
    from pyflow.folding import comparison_text, plan_folding, plan_table, uniform_folding
    from pyflow.util import atomic_folder

    shapes, board = layer_shapes(config.model, config.data), load_board(config.board)
    keep = config.keep_tiles
    if config.folding == "uniform":
        plan = uniform_folding(shapes, board, keep)
    else:
        overrides = {} if config.folding == "auto" else {k: tuple(v) for k, v in config.folding.items()}
        plan = plan_folding(shapes, board, keep, overrides=overrides)
    uniform = uniform_folding(shapes, board, keep)
    doc = {"folding": {name: list(pair) for name, pair in plan.folding().items()}, "mode": str(config.folding),
           "board": board.name, "plan": plan.to_json(), "uniform": uniform.to_json(),
           "text": comparison_text(plan, uniform, board, keep)}
    with atomic_folder(run_dir / "fold", kind="fold") as tmp:
        write_json(tmp / FOLDING_FILE, doc)
    progress(plan_table(plan))
    progress(f"  pipeline balance {plan.mean_balance:.1%} (uniform {board.default_folding.pe}x"
             f"{board.default_folding.simd} folding: {uniform.mean_balance:.1%})")


def _compress(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.compress.api import compress

    folding = json.loads((run_dir / "fold" / FOLDING_FILE).read_text())["folding"]
    compress(config.compress_config(str(run_dir / "checkpoint"), _trained(config, run_dir),
                                    {name: tuple(pair) for name, pair in folding.items()}))


def _export(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.compress.api import export_evaluated

    _, metrics = export_evaluated(run_dir / "checkpoint", config.data, run_dir / "ir")  # writes ir/eval.json
    progress(f"  golden-model accuracy {metrics['accuracy']:.4f}, kept tiles {metrics['kept_tiles']:.3f}, "
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
    progress(f"  C-simulation: {'bit-exact' if result['bit_exact'] else 'MISMATCH'} on "
             f"{result['outputs_compared']} outputs")
    if not result["bit_exact"]:
        raise PyflowError(f"C-simulation differs from the golden model on {result['mismatches']} outputs "
                          f"(see {run_dir / 'hls'})")


def _simulators(config: FlowConfig, run_dir: Path) -> tuple[tuple[str, ...], str]:
    """The simulators of the sim stage and why (``auto`` decides from the exported IR)."""
    if config.verify.simulators != "auto":
        return config.verify.simulators, "verify.simulators"
    if not (run_dir / "ir").is_dir():
        from pyflow.artifacts import SIMULATORS

        return SIMULATORS, "no IR exported yet"  # (asked for artifacts only: none is fresh)
    from pyflow.ir import load
    from pyflow.sim.rtl import choose_simulators

    return choose_simulators(load(run_dir / "ir"), config.verify.sim_vectors)


def _sim(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.sim.rtl import run_sim

    simulators, why = _simulators(config, run_dir)
    progress(f"  simulators: {', '.join(simulators)} ({why})")
    for simulator in simulators:
        result = run_sim(run_dir / "rtl", simulator, vectors=config.verify.sim_vectors, seed=config.seed)
        progress(f"  {simulator}: {'bit-exact' if result['bit_exact'] else 'MISMATCH'} on "
                 f"{result['outputs_compared']} outputs, {result['interval_cycles']} cycles per image")
        if not result["bit_exact"]:
            raise PyflowError(f"{simulator}: RTL differs from the golden model on {result['mismatches']} outputs")


def _synth(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.sim.yosys import SynthesisMemoryLimit, SynthesisTimeout, synthesize

    try:  # per engine, out of context (pyflow.sim.yosys); the limit is each Yosys process's
        summary = synthesize(run_dir / "rtl", timeout=config.verify.synth_seconds or None)
    except SynthesisTimeout as exc:
        raise PyflowError(f"{exc}: raise verify.synth_seconds (0: no limit), or run --to sim and then "
                          f"`pyflow report {run_dir}` for modelled resources only") from None
    except SynthesisMemoryLimit as exc:
        raise PyflowError(f"{exc}: run --to sim and then `pyflow report {run_dir}` for modelled resources "
                          f"only") from None
    progress("  yosys: " + ", ".join(f"{key} {value}" for key, value in sorted(summary["cells"].items())) +
             f" ({summary.get('units', 1)} units, {summary.get('seconds', 0):.0f} s, "
             f"peak {summary.get('peak_rss_mb', 0):.0f} MB)")


def _has_open_flow(config: FlowConfig) -> bool:
    from pyflow.boards import load_board

    return load_board(config.board).open_flow is not None


def _pnr(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.boards import load_board, open_flow_boards

    board = load_board(config.board)
    if board.open_flow is None:
        progress(f"  pnr: skipped: board {board.name} ({board.part}) has no open place and route flow (boards "
                 f"with one: {', '.join(open_flow_boards())}); its throughput stays at the nominal clock")
        return
    from pyflow.sim.pnr import place_and_route
    from pyflow.sim.yosys_run import SynthesisMemoryLimit, SynthesisTimeout

    try:  # each tool under the synthesis time limit
        doc = place_and_route(run_dir / "rtl", board, seed=config.seed + 1, seconds=config.verify.synth_seconds or None)
    except (SynthesisTimeout, SynthesisMemoryLimit) as exc:
        raise PyflowError(f"{exc}: raise verify.synth_seconds (0: no limit), or run --to synth") from None
    progress(f"  pnr: Fmax {doc['fmax_mhz']:.2f} MHz on {board.part} "
             f"({'meets' if doc['meets_clock'] else 'FAILS'} {doc['constraint_mhz']:g} MHz), bitstream "
             f"{run_dir / 'rtl' / PNR_DIR / doc['bitstream']['file']}")


def _report(config: FlowConfig, run_dir: Path) -> None:
    from pyflow.report import write_report

    write_report(run_dir, board=config.board)


STAGE_TABLE = {
    "train": Stage("train", lambda c: [c.model, c.data, c.seed, c.train_epochs, c.checkpoint and _digest(c.checkpoint)],
                   _train, lambda c, r: [] if c.checkpoint else [r / "train" / "model.pt"]),
    "fold": Stage("fold", lambda c: [c.model, c.data, c.board, c.folding, c.compress.keep_tiles],
                  _fold, lambda c, r: [r / "fold" / FOLDING_FILE]),
    "compress": Stage("compress", lambda c: [c.compress.to_json(), c.seed], _compress,
                      lambda c, r: [r / "checkpoint" / "model.pt"]),
    "export": Stage("export", lambda c: [c.data], _export, lambda c, r: [r / "ir" / EVAL_FILE]),
    "generate": Stage("generate", lambda c: [c.board, _templates_digest()], _generate,
                      lambda c, r: [r / "hls" / MARKER, r / "rtl" / MARKER]),
    "csim": Stage("csim", lambda c: [c.verify.csim_vectors, c.seed], _csim, lambda c, r: [r / "hls" / CSIM_FILE]),
    "sim": Stage("sim", lambda c: [c.verify.sim_vectors, c.verify.simulators, c.seed], _sim,
                 lambda c, r: [r / "rtl" / sim_file(s) for s in _simulators(c, r)[0]]),
    "synth": Stage("synth", lambda c: [], _synth, lambda c, r: [r / "rtl" / YOSYS_FILE]),
    "pnr": Stage("pnr", lambda c: [c.board, c.seed], _pnr,
                 lambda c, r: [r / "rtl" / PNR_DIR / PNR_FILE] if _has_open_flow(c) else []),
    "report": Stage("report", lambda c: [c.board], _report, lambda c, r: [r / "report" / "report.json"]),
}


def _digest(path: str) -> str:
    target = Path(path)
    return hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else "missing"


def _templates_digest() -> str:
    """The HLS and RTL templates and libraries: a changed template regenerates (and re-verifies) the projects."""
    digest = hashlib.sha256()
    for folder in ("hls_templates", "rtl_templates"):
        for path in sorted((project_root() / folder).rglob("*")):
            if path.is_file():
                digest.update(f"{path.relative_to(project_root())}\n".encode() + path.read_bytes())
    return digest.hexdigest()


