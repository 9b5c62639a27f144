"""Find and read the artifacts of a run folder (formats: notes/contracts.md), each problem one line.

A run folder holds ``ir/`` (network.json, weights.npz, maybe eval.json), ``fold/folding.json``,
``hls/csim.json``, ``rtl/sizing.json``, ``rtl/sim_<simulator>.json``, maybe ``rtl/sim_netlist.json``,
``rtl/yosys.json`` and maybe
``run.json`` and ``checkpoint/metrics.json`` (the compression run's per-epoch history).
An output of ``pyflow generate --backend both`` is accepted too: its IR copy sits in ``rtl/ir`` or ``hls/ir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflow.artifacts import (
    CSIM_FILE,
    EVAL_FILE,
    FOLDING_FILE,
    PNR_DIR,
    PNR_FILE,
    SIMULATORS,
    SIZING_FILE,
    YOSYS_FILE,
    sim_file,
)
from pyflow.errors import PyflowError
from pyflow.hw.sizing import NetworkSizing
from pyflow.ir import load
from pyflow.ir.model import FlattenLayer, Network

IR_PLACES = ("ir", "rtl/ir", "hls/ir")
SIM_FIELDS = ("simulator", "vectors", "outputs_compared", "mismatches", "bit_exact", "cycles_per_image",
              "interval_cycles", "total_cycles", "layers")
SIM_LAYER_FIELDS = ("name", "cycles", "busy_cycles")
EVAL_LAYER_FIELDS = ("name", "tiles_total", "tiles_masked", "tiles_all_zero", "tiles_kept")
CSIM_FIELDS = ("bit_exact", "vectors", "outputs_compared", "mismatches")
YOSYS_CELLS = ("LUT", "FF", "BRAM36", "DSP")


@dataclass(frozen=True)
class RunInputs:
    """Everything the report reads; ``paths`` maps each artifact found to its path relative to the run."""

    run_dir: Path
    network: Network
    paths: dict[str, str]
    run: dict[str, Any] | None
    eval: dict[str, Any] | None
    csim: dict[str, Any] | None
    sims: dict[str, dict[str, Any]]  # simulator -> sim_<simulator>.json
    netlist: dict[str, Any] | None  # rtl/sim_netlist.json: the Yosys netlist of the top, simulated
    yosys: dict[str, Any] | None
    sizing: NetworkSizing | None  # rtl/sizing.json: what the RTL was built with
    cycles: dict[str, Any] | None  # rtl/sizing.json's "cycles": the cycle model at generate time
    folding: dict[str, Any] | None  # fold/folding.json: the plan chosen before compression
    training: dict[str, Any] | None = None  # checkpoint/metrics.json: the compression run's figures and history
    pnr: dict[str, Any] | None = None  # rtl/pnr/pnr.json: the board wrapper placed and routed (ECP5)


def read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise PyflowError(f"{path}: unreadable: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PyflowError(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict):
        raise PyflowError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _require(doc: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    for key in fields:
        if key not in doc:
            raise PyflowError(f"{where}: missing field {key!r}")


def find_ir(run_dir: Path) -> Path:
    if not run_dir.is_dir():
        raise PyflowError(f"{run_dir}: no such folder (expected a pyflow run folder or a `pyflow generate` output)")
    for place in IR_PLACES:
        if (run_dir / place / "network.json").is_file():
            return run_dir / place
    raise PyflowError(f"{run_dir}: not a pyflow run folder (no IR in {', '.join(p + '/' for p in IR_PLACES)}; "
                      "pass the folder `pyflow run` or `pyflow generate --backend both` wrote)")


def _optional(run_dir: Path, relatives: tuple[str, ...], paths: dict[str, str], key: str) -> dict[str, Any] | None:
    for relative in relatives:
        if (run_dir / relative).is_file():
            paths[key] = relative
            return read_json(run_dir / relative)
    return None


def check_sim(doc: dict[str, Any], network: Network, where: str) -> dict[str, Any]:
    """Validate a sim_<simulator>.json against the contract and the IR's layer list."""
    _require(doc, SIM_FIELDS, where)
    expected = [layer.name for layer in network.layers if not isinstance(layer, FlattenLayer)]
    if not isinstance(doc["layers"], list):
        raise PyflowError(f"{where}: layers: expected a list")
    for index, item in enumerate(doc["layers"]):
        if not isinstance(item, dict):
            raise PyflowError(f"{where}: layers[{index}]: expected an object")
        _require(item, SIM_LAYER_FIELDS, f"{where}: layers[{index}]")
    names = [item["name"] for item in doc["layers"]]
    if names != expected:
        raise PyflowError(f"{where}: layers {names} do not match the IR's layers {expected}")
    return doc


def check_eval(doc: dict[str, Any], network: Network, where: str) -> dict[str, Any]:
    """Validate eval.json's per-layer tile counts against the IR (names and totals must agree)."""
    _require(doc, ("accuracy", "layers"), where)
    totals = {layer.name: layer.tiles_total for layer in network.matrix_layers}
    for index, item in enumerate(doc["layers"] if isinstance(doc["layers"], list) else [None]):
        if not isinstance(item, dict):
            raise PyflowError(f"{where}: layers[{index}]: expected an object")
        _require(item, EVAL_LAYER_FIELDS, f"{where}: layers[{index}]")
        if totals.get(item["name"]) != item["tiles_total"]:
            raise PyflowError(f"{where}: layer {item['name']!r}: tiles_total {item['tiles_total']} does not match "
                              f"the IR ({totals.get(item['name'], 'no such layer')})")
    return doc


def check_sizing(doc: dict[str, Any], network: Network, where: str) -> tuple[NetworkSizing, dict[str, Any]]:
    """Validate sizing.json against the IR's engines; returns the sizing and its modelled cycles."""
    _require(doc, ("engines", "cycles"), where)
    try:
        sizing = NetworkSizing.from_json(doc)
        cycles = doc["cycles"]
        _require(cycles, ("layers", "interval", "latency"), f"{where}: cycles")
    except (KeyError, TypeError) as exc:
        raise PyflowError(f"{where}: malformed sizing ({exc}); regenerate with `pyflow generate`") from None
    expected = [layer.name for layer in network.layers if not isinstance(layer, FlattenLayer)]
    names = [engine.name for engine in sizing.engines]
    if names != expected or sorted(cycles["layers"]) != sorted(expected):
        raise PyflowError(f"{where}: engines {names} do not match the IR's layers {expected}")
    return sizing, cycles


def check_training(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """A compressed checkpoint's metrics.json: its per-epoch ``history`` must be a list of records of numbers."""
    history = doc.get("history", [])
    if not isinstance(history, list):
        raise PyflowError(f"{where}: history: expected a list of epoch records")
    for index, record in enumerate(history):
        if not isinstance(record, dict) or not isinstance(record.get("phase"), str):
            raise PyflowError(f"{where}: history[{index}]: expected a record with a phase")
        for key in ("epoch", "accuracy", "loss", "kept_tiles", "tiles_total"):
            value = record.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise PyflowError(f"{where}: history[{index}].{key}: expected a number, got {value!r}")
    return doc


def read_inputs(run_dir: str | Path) -> RunInputs:
    run_dir = Path(run_dir)
    ir_dir = find_ir(run_dir)
    network = load(ir_dir)
    ir_rel = ir_dir.relative_to(run_dir).as_posix()
    paths: dict[str, str] = {"ir": ir_rel}
    run = _optional(run_dir, ("run.json",), paths, "run")
    evaluation = _optional(run_dir, (f"{ir_rel}/{EVAL_FILE}", EVAL_FILE), paths, "eval")
    if evaluation is not None:
        check_eval(evaluation, network, str(run_dir / paths["eval"]))
    csim = _optional(run_dir, (f"hls/{CSIM_FILE}", CSIM_FILE), paths, "csim")
    if csim is not None:
        _require(csim, CSIM_FIELDS, str(run_dir / paths["csim"]))
    sims = {}
    for simulator in SIMULATORS:
        doc = _optional(run_dir, (f"rtl/{sim_file(simulator)}", sim_file(simulator)), paths, simulator)
        if doc is not None:
            sims[simulator] = check_sim(doc, network, str(run_dir / paths[simulator]))
    netlist = _optional(run_dir, (f"rtl/{sim_file('netlist')}", sim_file("netlist")), paths, "netlist")
    if netlist is not None:
        check_sim(netlist, network, str(run_dir / paths["netlist"]))
    yosys = _optional(run_dir, (f"rtl/{YOSYS_FILE}", YOSYS_FILE), paths, "yosys")
    if yosys is not None:
        where = str(run_dir / paths["yosys"])
        _require(yosys, ("yosys_version", "cells"), where)
        _require(yosys["cells"], YOSYS_CELLS, f"{where}: cells")
    sizing = cycles = None
    doc = _optional(run_dir, (f"rtl/{SIZING_FILE}", SIZING_FILE), paths, "sizing")
    if doc is not None:
        sizing, cycles = check_sizing(doc, network, str(run_dir / paths["sizing"]))
    folding = _optional(run_dir, (f"fold/{FOLDING_FILE}",), paths, "folding")
    if folding is not None:
        _require(folding, ("plan", "uniform", "text"), str(run_dir / paths["folding"]))
    training = _optional(run_dir, ("checkpoint/metrics.json",), paths, "training")
    if training is not None:
        check_training(training, str(run_dir / paths["training"]))
    pnr = _optional(run_dir, (f"rtl/{PNR_DIR}/{PNR_FILE}",), paths, "pnr")
    if pnr is not None:
        check_pnr(pnr, str(run_dir / paths["pnr"]))
    return RunInputs(run_dir=run_dir, network=network, paths=paths, run=run, eval=evaluation,
                     csim=csim, sims=sims, netlist=netlist, yosys=yosys, sizing=sizing, cycles=cycles, folding=folding,
                     training=training, pnr=pnr)


def check_pnr(doc: dict[str, Any], where: str) -> None:
    """pnr.json (pyflow.sim.pnr): the fields the report reads, with their types."""
    _require(doc, ("board", "part", "fmax_mhz", "constraint_mhz", "meets_clock", "utilization", "seconds",
                   "peak_rss_mb", "tools", "bitstream", "seed"), where)
    for key in ("fmax_mhz", "constraint_mhz"):
        if isinstance(doc[key], bool) or not isinstance(doc[key], int | float) or not 0 < doc[key] < 10_000:
            raise PyflowError(f"{where}: {key}: expected a frequency in MHz, got {doc[key]!r}")
    if not isinstance(doc["meets_clock"], bool) or not isinstance(doc["board"], str):
        raise PyflowError(f"{where}: meets_clock must be true or false and board a name")
    if not isinstance(doc["utilization"], dict) or not all(
            isinstance(v, dict) and isinstance(v.get("used"), int) and isinstance(v.get("available"), int)
            for v in doc["utilization"].values()):
        raise PyflowError(f"{where}: utilization: expected {{cell type: {{used, available}}}}")
