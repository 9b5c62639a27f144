"""Gather every figure of a run into one JSON-ready dict; each figure says whether it is modelled or measured.

A figure is ``{"value": v, "basis": "modelled"|"measured", "source": where it comes from}``; a figure
whose input is missing has the value ``"n/a"`` (or ``"not run"`` for a verification view).
"measured" means counted from an artifact (the IR's packed tiles, a simulator's hardware counters,
Yosys' netlist, the golden model's test-set accuracy); "modelled" means predicted by a model
(the cycle model of the RTL, the analytical resource model, the BRAM estimate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pyflow.boards import Board, load_board
from pyflow.errors import PyflowError
from pyflow.folding import FoldingPlan, check_folding, compare_folding, network_geometries
from pyflow.ir.model import FlattenLayer, Layer, MatrixLayer, Network
from pyflow.ir.packing import layer_codes, tile_mask
from pyflow.report import resources
from pyflow.report.inputs import SIMULATORS, RunInputs, read_inputs

REPORT_SCHEMA = 1
DEFAULT_BOARD = "pynq-z2"
NA, NOT_RUN = "n/a", "not run"
MODELLED, MEASURED = "modelled", "measured"
SRC_IR = "IR (packed tiles)"
SRC_CYCLES = "pyflow.sim.cycles"
SRC_RESOURCES = "analytical resource model (pyflow.report.resources)"
VIEWS = ("csim", *SIMULATORS)
HEATMAP_LEGEND = "'.' skipped tile; digit d: kept tile with lane fill ~ d/9 (measured, IR)"
TOOLS = ("python", "numpy", "g++", "iverilog", "verilator", "yosys")


def fig(value: Any, basis: str, source: str) -> dict[str, Any]:
    if isinstance(value, float | np.floating):
        value = round(float(value), 6)
    elif isinstance(value, np.integer):
        value = int(value)
    return {"basis": basis, "source": source, "value": value}


def ratio(num: float, den: float) -> float | str:
    return num / den if den else NA


def cycle_model():
    """The RTL's cycle model (pyflow.sim.cycles), or None when that module is absent: figures become n/a."""
    try:
        from pyflow.sim import cycles
    except ImportError:
        return None
    return cycles


def resolve_board(inputs: RunInputs, board: str | None) -> tuple[Board, str]:
    if board is not None:
        return load_board(board), "--board"
    if inputs.run and inputs.run.get("board"):
        try:
            return load_board(inputs.run["board"]), "run.json"
        except PyflowError as exc:
            raise PyflowError(f"{inputs.run_dir / 'run.json'}: board: {exc}") from None
    return load_board(DEFAULT_BOARD), f"default ({DEFAULT_BOARD}: no --board and no board in run.json)"


# --- per layer ------------------------------------------------------------------------------------------

def _eval_layer(inputs: RunInputs, name: str) -> dict[str, Any] | None:
    if inputs.eval is None:
        return None
    return next((item for item in inputs.eval.get("layers", []) if item.get("name") == name), None)


def _requested_keep(inputs: RunInputs, network: Network, name: str) -> dict[str, Any]:
    item = _eval_layer(inputs, name)
    if item is not None and item.get("requested_keep") is not None:
        return fig(item["requested_keep"], MEASURED, "eval.json (requested)")
    exported = network.meta.get("compression", {}).get("layers", {}).get(name, {}).get("requested_keep")
    if exported is not None:
        return fig(exported, MEASURED, "IR meta compression (requested)")
    if network.meta.get("keep") is not None:
        return fig(network.meta["keep"], MEASURED, "IR meta (requested)")
    return fig(NA, MEASURED, "no eval.json and no keep in the IR meta")


def tile_figures(inputs: RunInputs, layer: MatrixLayer) -> dict[str, Any]:
    item = _eval_layer(inputs, layer.name)
    if item is not None:
        src = inputs.paths["eval"]
    else:
        src = f"{inputs.paths['eval']}: no entry for this layer" if inputs.eval is not None else "eval.json not found"
    return {
        "total": fig(layer.tiles_total, MEASURED, SRC_IR),
        "kept": fig(layer.n_kept, MEASURED, SRC_IR),
        "masked": fig(item["tiles_masked"] if item else NA, MEASURED, src),
        "all_zero": fig(item["tiles_all_zero"] if item else NA, MEASURED, src),
        "requested_keep": _requested_keep(inputs, inputs.network, layer.name),
        "achieved_keep": fig(layer.n_kept / layer.tiles_total, MEASURED, SRC_IR),
    }


def lane_fill(layer: MatrixLayer) -> tuple[int, int]:
    """(non-zero codes, lanes) over the kept tiles."""
    return int(np.count_nonzero(layer_codes(layer))), layer.n_kept * layer.pe * layer.simd


def _sim_layer(sim: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in sim["layers"] if item["name"] == name)


def modelled_figures(layer: Layer) -> dict[str, dict[str, Any]]:
    """Dense, sparse, sparse-ideal (tile walk, no fill) and busy cycles from pyflow.sim.cycles."""
    model = cycle_model()
    if model is None:
        return {key: fig(NA, MODELLED, "pyflow.sim.cycles not available") for key in ("dense", "modelled", "ideal")}
    matrix = isinstance(layer, MatrixLayer)
    return {"dense": fig(int(model.dense_cycles(layer)), MODELLED, SRC_CYCLES + ".dense_cycles"),
            "modelled": fig(int(model.modelled_cycles(layer)), MODELLED, SRC_CYCLES + ".modelled_cycles"),
            "ideal": fig(int(model.walk_cycles(layer)) if matrix else NA, MODELLED,
                         SRC_CYCLES + ".walk_cycles (no pipeline fill)"),
            "busy_modelled": fig(int(model.busy_cycles(layer)), MODELLED, SRC_CYCLES + ".busy_cycles")}


def layer_cycles(inputs: RunInputs, layer: Layer) -> dict[str, Any]:
    cycles: dict[str, Any] = modelled_figures(layer)
    cycles["measured"], cycles["busy"] = {}, {}
    for sim in SIMULATORS:
        doc = inputs.sims.get(sim)
        src = inputs.paths.get(sim, f"sim_{sim}.json not found")
        item = _sim_layer(doc, layer.name) if doc else None
        cycles["measured"][sim] = fig(item["cycles"] if item else NOT_RUN, MEASURED, src)
        cycles["busy"][sim] = fig(item["busy_cycles"] if item else NOT_RUN, MEASURED, src)
    return cycles


def layer_memory(layer: MatrixLayer, rq_w: int) -> dict[str, Any]:
    idx = resources.rtl_index_bits(layer)
    roms = ((layer.n_kept + 1, layer.word_bits), (layer.n_kept + 1, resources.IDX_ENTRY_BITS),
            (layer.out_folds + 1, layer.pe * (resources.M_BITS + rq_w)))
    bram = sum(resources.rom_estimate(depth, width).bram36 for depth, width in roms)
    return {
        "weight_bits": fig(resources.weight_bits(layer), MEASURED, SRC_IR + ": kept tiles x 2·PE·SIMD"),
        "index_bits": fig(idx, MODELLED, "RTL index ROMs: 48-bit decoded entries + row pointers"),
        "requant_bits": fig(resources.requant_bits(layer, rq_w), MODELLED, "RTL requant ROM: {b, m} per lane"),
        "bram36": fig(bram, MODELLED, "BRAM36 estimate of the weight, index and requant ROMs"),
    }


def layer_entry(inputs: RunInputs, layer: Layer, estimate: resources.Estimate, rq_w: dict[str, int]
                ) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind, "out_shape": list(layer.out_shape),
                             "cycles": layer_cycles(inputs, layer)}
    entry["resources"] = {key: fig(getattr(estimate, key), MODELLED, SRC_RESOURCES)
                          for key in ("lut", "ff", "bram36", "dsp")}
    if isinstance(layer, MatrixLayer):
        nonzero, lanes = lane_fill(layer)
        entry.update(pe=layer.pe, simd=layer.simd, tiles=tile_figures(inputs, layer),
                     memory=layer_memory(layer, rq_w[layer.name]))
        entry["lane_fill"] = fig(ratio(nonzero, lanes), MEASURED, "IR: non-zero codes / lanes in kept tiles")
    return entry


def _num(figure: dict[str, Any]) -> float | None:
    value = figure["value"]
    return None if isinstance(value, str) else value


def add_utilization(entries: list[dict[str, Any]], network: Network) -> None:
    """Tile skipping and pipeline balance, modelled and per simulator measured (needs every layer's cycles)."""
    matrices = {layer.name for layer in network.matrix_layers}
    modelled = [_num(e["cycles"]["modelled"]) for e in entries]
    slowest = None if None in modelled else max(modelled)
    src = entries[0]["cycles"]["modelled"]["source"]
    for entry, own in zip(entries, modelled, strict=True):
        entry["balance"] = {"modelled": fig(ratio(own, slowest) if slowest else NA, MODELLED,
                                            f"layer / slowest layer, {src}"), "measured": {}}
        if entry["name"] in matrices:
            busy = _num(entry["cycles"].get("busy_modelled", {"value": NA}))
            entry["tile_skipping"] = {"modelled": fig(ratio(busy, own) if busy is not None and own else NA,
                                                      MODELLED, "pyflow.sim.cycles: busy_cycles / modelled_cycles"),
                                      "measured": {}}
        for sim in SIMULATORS:
            _measured_utilization(entry, entries, sim, entry["name"] in matrices)


def _measured_utilization(entry: dict[str, Any], entries: list[dict[str, Any]], sim: str, matrix: bool) -> None:
    cycles = entry["cycles"]["measured"][sim]
    if cycles["value"] == NOT_RUN:
        entry["balance"]["measured"][sim] = fig(NOT_RUN, MEASURED, cycles["source"])
        if matrix:
            entry["tile_skipping"]["measured"][sim] = fig(NOT_RUN, MEASURED, cycles["source"])
        return
    slowest = max(e["cycles"]["measured"][sim]["value"] for e in entries)
    entry["balance"]["measured"][sim] = fig(ratio(cycles["value"], slowest), MEASURED, cycles["source"])
    if matrix:
        busy = entry["cycles"]["busy"][sim]["value"]
        entry["tile_skipping"]["measured"][sim] = fig(ratio(busy, cycles["value"]), MEASURED,
                                                      f"{cycles['source']}: busy_cycles / cycles")


# --- network --------------------------------------------------------------------------------------------

def _sum_fig(entries: list[dict[str, Any]], path: tuple[str, ...], basis: str, source: str) -> dict[str, Any]:
    values = []
    for entry in entries:
        value: Any = entry
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        values.append(value["value"])
    if not values or any(isinstance(v, str) for v in values):
        return fig(NA, basis, source)
    return fig(sum(values), basis, source)


def network_tiles(entries: list[dict[str, Any]], inputs: RunInputs) -> dict[str, Any]:
    matrix = [e for e in entries if "tiles" in e]
    src_eval = inputs.paths.get("eval", "eval.json not found")
    total = _sum_fig(matrix, ("tiles", "total"), MEASURED, SRC_IR)
    kept = _sum_fig(matrix, ("tiles", "kept"), MEASURED, SRC_IR)
    asked = {e["tiles"]["requested_keep"]["value"] for e in matrix}
    sources = {e["tiles"]["requested_keep"]["source"] for e in matrix}
    if len(asked) == 1:
        requested = fig(asked.pop(), MEASURED, sources.pop())
    else:
        requested = fig("per layer", MEASURED, ", ".join(sorted(sources)))
    return {"total": total, "kept": kept,
            "masked": _sum_fig(matrix, ("tiles", "masked"), MEASURED, src_eval),
            "all_zero": _sum_fig(matrix, ("tiles", "all_zero"), MEASURED, src_eval),
            "requested_keep": requested,
            "achieved_keep": fig(ratio(kept["value"], total["value"]), MEASURED, SRC_IR)}


def network_cycles(entries: list[dict[str, Any]], inputs: RunInputs, board: Board) -> dict[str, Any]:
    modelled = [_num(e["cycles"]["modelled"]) for e in entries]
    have = None not in modelled
    src = SRC_CYCLES + ".modelled_cycles" if have else "pyflow.sim.cycles not available"
    clock = board.clock_mhz * 1e6
    out: dict[str, Any] = {
        "modelled_interval": fig(max(modelled) if have else NA, MODELLED, f"{src}: slowest layer"),
        "modelled_latency": fig(sum(modelled) if have else NA, MODELLED, f"{src}: sum of the layers"),
        "dense_latency": _sum_fig(entries, ("cycles", "dense"), MODELLED, SRC_CYCLES + ".dense_cycles: sum"),
        "modelled_images_per_s": fig(clock / max(modelled) if have else NA, MODELLED,
                                     f"{board.clock_mhz:g} MHz / slowest layer ({src})"),
        "measured": {},
    }
    for sim in SIMULATORS:
        doc = inputs.sims.get(sim)
        source = inputs.paths.get(sim, f"sim_{sim}.json not found")
        if doc is None:
            out["measured"][sim] = {key: fig(NOT_RUN, MEASURED, source)
                                    for key in ("cycles_per_image", "interval_cycles", "images_per_s")}
            continue
        out["measured"][sim] = {
            "cycles_per_image": fig(doc["cycles_per_image"], MEASURED, source),
            "interval_cycles": fig(doc["interval_cycles"], MEASURED, source),
            "images_per_s": fig(ratio(clock, doc["interval_cycles"]), MEASURED,
                                f"{board.clock_mhz:g} MHz / interval_cycles of {source}"),
        }
    return out


def network_utilization(entries: list[dict[str, Any]], network: Network) -> dict[str, Any]:
    matrix = [e for e in entries if "tile_skipping" in e]
    fills = [lane_fill(layer) for layer in network.matrix_layers]
    balances = [_num(e["balance"]["modelled"]) for e in matrix]  # PE arrays only: pools have none
    busy = [_num(e["cycles"].get("busy_modelled", {"value": NA})) for e in matrix]
    cycles = [_num(e["cycles"]["modelled"]) for e in matrix]
    have = None not in balances + busy + cycles
    out: dict[str, Any] = {
        "lane_fill": fig(ratio(sum(f[0] for f in fills), sum(f[1] for f in fills)), MEASURED,
                         "IR: non-zero codes / lanes in kept tiles"),
        "balance": {"modelled": fig(sum(balances) / len(balances) if have else NA, MODELLED,
                                    "mean over the matrix layers of layer / slowest layer, pyflow.sim.cycles"),
                    "measured": {}},
        "tile_skipping": {"modelled": fig(ratio(sum(busy), sum(cycles)) if have else NA, MODELLED,
                                          "pyflow.sim.cycles: Σ busy / Σ cycles of the matrix layers"),
                          "measured": {}},
    }
    for sim in SIMULATORS:
        measured = [e["cycles"]["measured"][sim]["value"] for e in entries]
        source = entries[0]["cycles"]["measured"][sim]["source"]
        if NOT_RUN in measured:
            out["balance"]["measured"][sim] = fig(NOT_RUN, MEASURED, source)
            out["tile_skipping"]["measured"][sim] = fig(NOT_RUN, MEASURED, source)
            continue
        own = [e["cycles"]["measured"][sim]["value"] for e in matrix]
        out["balance"]["measured"][sim] = fig(sum(c / max(measured) for c in own) / len(own), MEASURED,
                                              f"mean over the matrix layers of layer / slowest layer, {source}")
        busy_m = sum(e["cycles"]["busy"][sim]["value"] for e in matrix)
        total = sum(e["cycles"]["measured"][sim]["value"] for e in matrix)
        out["tile_skipping"]["measured"][sim] = fig(ratio(busy_m, total), MEASURED,
                                                    f"{source}: Σ busy_cycles / Σ cycles of the matrix layers")
    return out


def network_memory(entries: list[dict[str, Any]]) -> dict[str, Any]:
    matrix = [e for e in entries if "memory" in e]
    return {key: _sum_fig(matrix, ("memory", key), basis, matrix[0]["memory"][key]["source"])
            for key, basis in (("weight_bits", MEASURED), ("index_bits", MODELLED), ("requant_bits", MODELLED),
                               ("bram36", MODELLED))}


def network_compression(inputs: RunInputs) -> dict[str, Any]:
    """DESIGN §1 ratios from the IR (pyflow.compress.metrics, torch-free), beside eval.json and metrics.json."""
    from pyflow.compress.metrics import compression

    figures = compression(inputs.network)
    src = "IR via pyflow.compress.metrics (DESIGN §1)"
    out = {
        "weights_only": fig(figures["compression_weights_only"] or NA, MEASURED, f"{src}: 32·N_total / (2·N_stored)"),
        "with_index": fig(figures["compression_with_index"], MEASURED,
                          f"{src}: 32·N_total / (2·N_stored + index_bits + 32·#scales)"),
        "n_total": fig(figures["weights_total"], MEASURED, src),
        "n_stored": fig(figures["weights_stored"], MEASURED, src),
    }
    for name, doc in (("eval", inputs.eval), ("metrics", inputs.metrics)):
        for key in ("compression_weights_only", "compression_with_index"):
            value = doc.get(key, NA) if doc is not None else NA
            source = inputs.paths.get(name, f"{name}.json not found")
            out[f"{name}_{key.removeprefix('compression_')}"] = fig(value, MEASURED, source)
    return out


def network_resources(inputs: RunInputs, board: Board, estimates: dict[str, resources.Estimate]
                      ) -> dict[str, Any]:
    estimate = sum(estimates.values(), resources.ZERO)
    budget = board.resources
    keys = (("lut", "LUT"), ("ff", "FF"), ("bram36", "BRAM36"), ("dsp", "DSP"))
    out: dict[str, Any] = {"budget": {key: fig(getattr(budget, key), MEASURED, f"boards/{board.name}.yaml")
                                      for key, _ in keys}}
    out["modelled"] = {key: fig(getattr(estimate, key), MODELLED, SRC_RESOURCES) for key, _ in keys}
    out["modelled_fits"] = all(getattr(estimate, key) <= getattr(budget, key) for key, _ in keys)
    if inputs.yosys is None:
        out["measured"] = {key: fig(NOT_RUN, MEASURED, "yosys.json not found") for key, _ in keys}
        out["measured_fits"] = NOT_RUN
    else:
        cells, source = inputs.yosys["cells"], inputs.paths["yosys"]
        out["measured"] = {key: fig(cells[cell], MEASURED, f"{source} ({inputs.yosys['yosys_version']})")
                           for key, cell in keys}
        out["measured_fits"] = all(cells[cell] <= getattr(budget, key) for key, cell in keys)
    return out


# --- verification, tools, folding -------------------------------------------------------------------------

def view_status(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return NOT_RUN
    passed = doc["bit_exact"] is True and doc["mismatches"] == 0 and doc["outputs_compared"] > 0
    return "passed" if passed else "failed"


def verification(inputs: RunInputs) -> dict[str, Any]:
    docs = {"csim": inputs.csim, **{sim: inputs.sims.get(sim) for sim in SIMULATORS}}
    views = {}
    for view, doc in docs.items():
        source = inputs.paths.get(view, "artifact not found")
        views[view] = {"status": view_status(doc), "basis": MEASURED, "source": source,
                       **{key: (doc[key] if doc is not None else NOT_RUN)
                          for key in ("bit_exact", "vectors", "outputs_compared", "mismatches")}}
    statuses = [v["status"] for v in views.values()]
    summary = ("bit-exact in every view" if all(s == "passed" for s in statuses)
               else "NOT bit-exact: " + ", ".join(k for k, v in views.items() if v["status"] == "failed")
               if "failed" in statuses
               else "bit-exact where run; not run: " + ", ".join(k for k, v in views.items() if v["status"] == NOT_RUN))
    return {"views": views, "all_passed": all(s == "passed" for s in statuses), "summary": summary}


def tool_versions(inputs: RunInputs) -> dict[str, Any]:
    from pyflow.tools import version_of

    used = {"g++ (csim)": inputs.csim.get("compiler", NA) if inputs.csim else NOT_RUN,
            "yosys": inputs.yosys.get("yosys_version", NA) if inputs.yosys else NOT_RUN}
    for sim in SIMULATORS:
        used[sim] = inputs.sims[sim].get("simulator_version", NA) if sim in inputs.sims else NOT_RUN
    return {"used (from the artifacts)": used,
            "installed (this machine)": {name: version_of(name) or "missing" for name in TOOLS}}


def _plan_json(plan: FoldingPlan) -> dict[str, Any]:
    return {"source": plan.source, "cycle_basis": MODELLED, "cycle_model": plan.cycle_model,
            "slowest_cycles": plan.slowest_cycles, "mean_balance": round(plan.mean_balance, 6), "lanes": plan.lanes,
            "layers": [{"name": f.name, "pe": f.pe, "simd": f.simd, "cycles": f.cycles, "tiles_kept": f.tiles_kept,
                        "tiles_total": f.tiles_total, "requested_keep": f.requested_keep,
                        "achieved_keep": round(f.achieved_keep, 6), "balance": round(f.balance, 6)}
                       for f in plan.layers]}


def folding_check(inputs: RunInputs, board: Board) -> dict[str, Any]:
    """The IR's folding with its actual kept tiles (asked vs reached), and what the sparsity-aware planner and
    the board's uniform folding would give at the kept fractions the IR reached."""
    asked = {}
    for layer in inputs.network.matrix_layers:
        value = _requested_keep(inputs, inputs.network, layer.name)["value"]
        if value != NA:
            asked[layer.name] = value
    out = _plan_json(check_folding(inputs.network, asked or None))
    reached = {layer.name: max(layer.n_kept, 1) / layer.tiles_total for layer in inputs.network.matrix_layers}
    aware, uniform, text = compare_folding(network_geometries(inputs.network), board, reached)
    out["comparison"] = {"sparsity_aware": _plan_json(aware), "uniform": _plan_json(uniform), "text": text}
    return out


def heatmaps(network: Network) -> dict[str, Any]:
    """Per matrix layer, one string per output fold: ``.`` a skipped tile, a digit ``d`` a kept tile whose
    lane fill (non-zero codes / PE·SIMD) rounds to ``d/9`` — compact, and what the HTML heatmaps draw."""
    out = {}
    for layer in network.matrix_layers:
        mask = tile_mask(layer)
        fill = np.zeros(mask.shape)
        rows = np.repeat(np.arange(layer.out_folds), np.diff(layer.row_ptr))
        fill[rows, layer.col_idx] = np.count_nonzero(layer_codes(layer), axis=(1, 2)) / (layer.pe * layer.simd)
        digits = np.where(mask, np.rint(fill * 9).astype(int), -1)
        out[layer.name] = {"rows": int(mask.shape[0]), "cols": int(mask.shape[1]), "legend": HEATMAP_LEGEND,
                           "tiles": ["".join("." if d < 0 else str(d) for d in row) for row in digits]}
    return out


def build_from_inputs(inputs: RunInputs, board: str | None = None) -> dict[str, Any]:
    board_obj, board_source = resolve_board(inputs, board)
    network = inputs.network
    estimates, rq_w = resources.engine_estimates(network), resources.rq_width(network)
    entries = [layer_entry(inputs, layer, estimates[layer.name], rq_w) for layer in network.layers
               if not isinstance(layer, FlattenLayer)]
    add_utilization(entries, network)
    accuracy = inputs.eval.get("accuracy", NA) if inputs.eval else NA
    return {
        "schema": REPORT_SCHEMA,
        "inputs": dict(sorted(inputs.paths.items())),
        "board": {"name": board_obj.name, "part": board_obj.part, "clock_mhz": board_obj.clock_mhz,
                  "chosen_by": board_source},
        "network": {"name": network.name, "input_shape": list(network.input_shape), "a_bits": network.a_bits,
                    "accuracy": fig(accuracy, MEASURED, inputs.paths.get("eval", "eval.json not found")
                                    + " (golden model, test set)"),
                    "tiles": network_tiles(entries, inputs),
                    "cycles": network_cycles(entries, inputs, board_obj),
                    "utilization": network_utilization(entries, network),
                    "memory": network_memory(entries),
                    "compression": network_compression(inputs)},
        "layers": entries,
        "resources": network_resources(inputs, board_obj, estimates),
        "verification": verification(inputs),
        "folding": folding_check(inputs, board_obj),
        "tools": tool_versions(inputs),
        "heatmaps": heatmaps(network),
        "cycle_model": SRC_CYCLES if cycle_model() else "pyflow.sim.cycles not available: modelled cycles n/a",
    }


def build_report(run_dir: str | Path, board: str | None = None) -> dict[str, Any]:
    return build_from_inputs(read_inputs(run_dir), board)
