"""Gather every figure of a run into one JSON-ready dict; each figure says whether it is modelled or measured.

The report computes nothing an earlier stage owns: modelled cycles come from ``rtl/sizing.json`` (the
cycle model at generate time), the folding plan from ``fold/folding.json``, accuracy and compression from
``ir/eval.json`` (export), measured cycles from the simulators' summaries, cells from ``yosys.json``.
What it does compute are views of those: utilization ratios, the resource model over the sizing, the
heatmaps of the IR's tiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pyflow.artifacts import DEFAULT_BOARD, SIMULATORS
from pyflow.boards import Board, load_board
from pyflow.errors import PyflowError
from pyflow.hw import resources
from pyflow.hw.engines import engines
from pyflow.ir.metrics import compression
from pyflow.ir.model import Layer, MatrixLayer, Network
from pyflow.ir.packing import layer_codes, tile_mask
from pyflow.report.figures import MEASURED, MODELLED, NA, NOT_RUN, Figure, to_json, total
from pyflow.report.inputs import RunInputs, read_inputs

REPORT_SCHEMA = 1
SRC_IR = "IR (packed tiles)"
SRC_RESOURCES = "analytical resource model (pyflow.hw.resources) over rtl/sizing.json"
PNR_SOURCE = "rtl/pnr/pnr.json"
VIEWS = ("csim", *SIMULATORS)
HEATMAP_LEGEND = "'.' skipped tile; digit d: kept tile with lane fill ~ d/9 (measured, IR)"
TOOLS = ("python", "numpy", "g++", "iverilog", "verilator", "yosys")
RESOURCE_KEYS = (("lut", "LUT"), ("ff", "FF"), ("bram36", "BRAM36"), ("dsp", "DSP"))


def resolve_board(inputs: RunInputs, board: str | None) -> tuple[Board, str]:
    if board is not None:
        return load_board(board), "--board"
    if inputs.run and inputs.run.get("board"):
        try:
            return load_board(inputs.run["board"]), "run.json"
        except PyflowError as exc:
            raise PyflowError(f"{inputs.run_dir / 'run.json'}: board: {exc}") from None
    return load_board(DEFAULT_BOARD), f"default ({DEFAULT_BOARD}: no --board and no board in run.json)"


def _cycle_source(inputs: RunInputs, key: str) -> str:
    return f"{inputs.paths['sizing']} (pyflow.hw.cycles): {key}" if inputs.cycles else "rtl/sizing.json not found"


# --- per layer ------------------------------------------------------------------------------------------

def _eval_layer(inputs: RunInputs, name: str) -> dict[str, Any] | None:
    if inputs.eval is None:
        return None
    return next((item for item in inputs.eval.get("layers", []) if item.get("name") == name), None)


def _requested_keep(inputs: RunInputs, name: str) -> Figure:
    item = _eval_layer(inputs, name)
    if item is not None and item.get("requested_keep") is not None:
        return Figure(item["requested_keep"], MEASURED, "eval.json (requested)")
    meta = inputs.network.meta
    exported = meta.get("compression", {}).get("layers", {}).get(name, {}).get("requested_keep")
    if exported is not None:
        return Figure(exported, MEASURED, "IR meta compression (requested)")
    if meta.get("keep") is not None:
        return Figure(meta["keep"], MEASURED, "IR meta (requested)")
    return Figure.na(MEASURED, "no eval.json and no keep in the IR meta")


def tile_figures(inputs: RunInputs, layer: MatrixLayer) -> dict[str, Figure]:
    item = _eval_layer(inputs, layer.name)
    if item is not None:
        src = inputs.paths["eval"]
    else:
        src = f"{inputs.paths['eval']}: no entry for this layer" if inputs.eval is not None else "eval.json not found"

    def counted(key: str) -> Figure:
        return Figure(item[key], MEASURED, src) if item else Figure.na(MEASURED, src)

    return {
        "total": Figure(layer.tiles_total, MEASURED, SRC_IR),
        "kept": Figure(layer.n_kept, MEASURED, SRC_IR),
        "masked": counted("tiles_masked"),
        "all_zero": counted("tiles_all_zero"),
        "requested_keep": _requested_keep(inputs, layer.name),
        "achieved_keep": Figure(layer.n_kept / layer.tiles_total, MEASURED, SRC_IR),
    }


def lane_fill(layer: MatrixLayer) -> tuple[int, int]:
    """(non-zero codes, lanes) over the kept tiles."""
    return int(np.count_nonzero(layer_codes(layer))), layer.n_kept * layer.pe * layer.simd


def modelled_figures(inputs: RunInputs, layer: Layer) -> dict[str, Figure]:
    """Dense, sparse, sparse-ideal (tile walk, no fill) and busy cycles, as generate modelled them."""
    model = inputs.cycles["layers"][layer.name] if inputs.cycles else None

    def figure(key: str, label: str) -> Figure:
        source = _cycle_source(inputs, label)
        if model is None or model[key] is None:
            return Figure.na(MODELLED, source)
        return Figure(model[key], MODELLED, source)

    return {"dense": figure("dense", "dense_cycles"), "modelled": figure("modelled", "modelled_cycles"),
            "ideal": figure("walk", "walk_cycles (no pipeline fill)"), "busy_modelled": figure("busy", "busy_cycles")}


def layer_cycles(inputs: RunInputs, layer: Layer) -> dict[str, Any]:
    cycles: dict[str, Any] = modelled_figures(inputs, layer)
    cycles["measured"], cycles["busy"] = {}, {}
    for sim in SIMULATORS:
        doc = inputs.sims.get(sim)
        src = inputs.paths.get(sim, f"sim_{sim}.json not found")
        item = next(entry for entry in doc["layers"] if entry["name"] == layer.name) if doc else None
        cycles["measured"][sim] = Figure(item["cycles"], MEASURED, src) if item else Figure.not_run(src)
        cycles["busy"][sim] = Figure(item["busy_cycles"], MEASURED, src) if item else Figure.not_run(src)
    return cycles


def layer_memory(inputs: RunInputs, layer: MatrixLayer) -> dict[str, Figure]:
    sized = inputs.sizing.engine(layer.name) if inputs.sizing else None
    missing = "rtl/sizing.json not found"
    requant = resources.requant_rom_bits(layer, sized.rq_w) if sized else None
    return {
        "weight_bits": Figure(resources.weight_rom_bits(layer), MEASURED, SRC_IR + ": kept tiles x 2·PE·SIMD"),
        "index_bits": Figure(resources.index_rom_bits(layer), MODELLED,
                             "RTL index ROMs: 48-bit decoded entries + row pointers"),
        "requant_bits": Figure(requant, MODELLED, "RTL requant ROM: {b, m} per lane") if sized
        else Figure.na(MODELLED, missing),
        "bram36": Figure(resources.rom_bram36(layer, sized), MODELLED,
                         "BRAM36 estimate of the weight, index and requant ROMs") if sized
        else Figure.na(MODELLED, missing),
    }


def layer_entry(inputs: RunInputs, layer: Layer, estimate: resources.Estimate | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind, "out_shape": list(layer.out_shape),
                             "cycles": layer_cycles(inputs, layer)}
    entry["resources"] = {key: Figure(getattr(estimate, key), MODELLED, SRC_RESOURCES) if estimate
                          else Figure.na(MODELLED, "rtl/sizing.json not found") for key, _ in RESOURCE_KEYS}
    if isinstance(layer, MatrixLayer):
        nonzero, lanes = lane_fill(layer)
        entry.update(pe=layer.pe, simd=layer.simd, tiles=tile_figures(inputs, layer),
                     memory=layer_memory(inputs, layer))
        entry["lane_fill"] = Figure.ratio(nonzero, lanes, MEASURED, "IR: non-zero codes / lanes in kept tiles")
    return entry


def add_utilization(entries: list[dict[str, Any]], network: Network) -> None:
    """Tile skipping and pipeline balance, modelled and per simulator measured (needs every layer's cycles)."""
    matrices = {layer.name for layer in network.matrix_layers}
    modelled = [e["cycles"]["modelled"].number for e in entries]
    slowest = None if None in modelled else max(modelled)
    src = entries[0]["cycles"]["modelled"].source
    for entry, own in zip(entries, modelled, strict=True):
        entry["balance"] = {"modelled": Figure.ratio(own, slowest, MODELLED, f"layer / slowest layer, {src}"),
                            "measured": {}}
        if entry["name"] in matrices:
            busy = entry["cycles"]["busy_modelled"].number
            entry["tile_skipping"] = {"modelled": Figure.ratio(busy, own, MODELLED,
                                                               f"{src}: busy_cycles / modelled_cycles"),
                                      "measured": {}}
        for sim in SIMULATORS:
            _measured_utilization(entry, entries, sim, entry["name"] in matrices)


def _measured_utilization(entry: dict[str, Any], entries: list[dict[str, Any]], sim: str, matrix: bool) -> None:
    cycles = entry["cycles"]["measured"][sim]
    if not cycles.known:
        entry["balance"]["measured"][sim] = Figure.not_run(cycles.source)
        if matrix:
            entry["tile_skipping"]["measured"][sim] = Figure.not_run(cycles.source)
        return
    slowest = max(e["cycles"]["measured"][sim].value for e in entries)
    entry["balance"]["measured"][sim] = Figure.ratio(cycles.value, slowest, MEASURED, cycles.source)
    if matrix:
        busy = entry["cycles"]["busy"][sim].value
        entry["tile_skipping"]["measured"][sim] = Figure.ratio(busy, cycles.value, MEASURED,
                                                               f"{cycles.source}: busy_cycles / cycles")


# --- network --------------------------------------------------------------------------------------------

def network_tiles(entries: list[dict[str, Any]], inputs: RunInputs) -> dict[str, Figure]:
    matrix = [e for e in entries if "tiles" in e]
    src_eval = inputs.paths.get("eval", "eval.json not found")
    kept = total([e["tiles"]["kept"] for e in matrix], MEASURED, SRC_IR)
    tiles = total([e["tiles"]["total"] for e in matrix], MEASURED, SRC_IR)
    asked = [e["tiles"]["requested_keep"] for e in matrix]  # one figure per layer: the same, or "per layer"
    sources = sorted({figure.source for figure in asked})
    if len({figure.to_json()["value"] for figure in asked}) > 1:
        requested = Figure("per layer", MEASURED, ", ".join(sources))
    else:
        requested = Figure(asked[0].value, MEASURED, sources[0], asked[0].missing)
    return {"total": tiles, "kept": kept,
            "masked": total([e["tiles"]["masked"] for e in matrix], MEASURED, src_eval),
            "all_zero": total([e["tiles"]["all_zero"] for e in matrix], MEASURED, src_eval),
            "requested_keep": requested,
            "achieved_keep": Figure.ratio(kept.number, tiles.number, MEASURED, SRC_IR)}


def clock(inputs: RunInputs, board: Board) -> dict[str, Any]:
    """The clock the throughput is computed at: the placed-and-routed Fmax (nextpnr, measured) when the run was
    placed and routed for this board, else the board's nominal clock (its YAML: not a measurement)."""
    nominal = Figure(board.clock_mhz, MODELLED, f"boards/{board.name}.yaml clock_mhz (nominal, not placed and routed)")
    doc = inputs.pnr
    out: dict[str, Any] = {"nominal_mhz": nominal}
    if doc is None:
        why = (f"{PNR_SOURCE} not found: `pyflow pnr` places and routes boards with an open flow"
               if board.open_flow else f"{board.name} has no open place and route flow (ECP5 boards have one)")
        out.update(fmax_mhz=Figure.not_run(why), meets_clock=Figure.not_run(why), pnr_board=NA, used=nominal,
                   utilization={}, critical_path=NA, pnr_run=NA)
        return out
    source = (f"{inputs.paths['pnr']} ({doc['tools'].get('nextpnr', 'nextpnr')}, {doc['part']}, seed {doc['seed']})")
    fmax = Figure(doc["fmax_mhz"], MEASURED, source)
    same = doc["board"] == board.name
    crit = doc.get("critical_path") or {}
    out.update(
        fmax_mhz=fmax, meets_clock=Figure(doc["meets_clock"], MEASURED, f"{source}: Fmax >= {doc['constraint_mhz']:g}"
                                                                           f" MHz (the bitstream's PLL clock)"),
        pnr_board=doc["board"], used=fmax if same else nominal,
        utilization={kind: {"used": Figure(v["used"], MEASURED, source),
                            "available": Figure(v["available"], MEASURED, source)}
                     for kind, v in doc["utilization"].items()},
        critical_path=(f"{crit.get('delay_ns', 0):.2f} ns, {' -> '.join(crit.get('engines') or ['glue'])}"
                       if crit else NA),
        pnr_run={"seconds": doc["seconds"], "peak_rss_mb": doc["peak_rss_mb"], "bitstream": doc["bitstream"],
                 "seeds": [{"seed": item.get("seed"), "fmax_mhz": item.get("fmax_mhz")} for item in doc.get("seeds", [])
                           if isinstance(item, dict)]})
    if not same:
        out["note"] = (f"placed and routed for {doc['board']} ({doc['part']}), not for {board.name}: the throughput "
                       f"stays at {board.name}'s nominal clock")
    return out


def network_cycles(inputs: RunInputs, board: Board, clk: dict[str, Any]) -> dict[str, Any]:
    cycles, used = inputs.cycles, clk["used"]
    hz = used.number * 1e6
    where = (f"Fmax {used.number:g} MHz (measured)" if used.basis == MEASURED
             else f"{used.number:g} MHz (nominal)")

    def modelled(value: int | None, label: str) -> Figure:
        source = _cycle_source(inputs, label)
        return Figure(value, MODELLED, source) if cycles else Figure.na(MODELLED, source)

    interval = cycles["interval"] if cycles else None
    out: dict[str, Any] = {
        "modelled_interval": modelled(interval, "interval (slowest pipeline stage, its start cycle included)"),
        "modelled_latency": modelled(cycles and cycles["latency"], "latency (sum of the layers)"),
        "dense_latency": modelled(cycles and sum(item["dense"] for item in cycles["layers"].values()),
                                  "dense_cycles: sum"),
        "modelled_images_per_s": Figure.ratio(hz, interval, MODELLED,
                                              f"{where} / {_cycle_source(inputs, 'interval')}"),
        "measured": {},
    }
    for sim in SIMULATORS:
        doc = inputs.sims.get(sim)
        source = inputs.paths.get(sim, f"sim_{sim}.json not found")
        if doc is None:
            out["measured"][sim] = {key: Figure.not_run(source)
                                    for key in ("cycles_per_image", "interval_cycles", "images_per_s")}
            continue
        # measured only when both the cycles (a simulator's counters) and the clock (nextpnr) are
        out["measured"][sim] = {
            "cycles_per_image": Figure(doc["cycles_per_image"], MEASURED, source),
            "interval_cycles": Figure(doc["interval_cycles"], MEASURED, source),
            "images_per_s": Figure.ratio(hz, doc["interval_cycles"], used.basis,
                                         f"{where} / interval_cycles of {source} (measured)"),
        }
    return out


def network_utilization(entries: list[dict[str, Any]], network: Network) -> dict[str, Any]:
    matrix = [e for e in entries if "tile_skipping" in e]
    fills = [lane_fill(layer) for layer in network.matrix_layers]
    balances = [e["balance"]["modelled"].number for e in matrix]  # PE arrays only: pools have none
    busy = [e["cycles"]["busy_modelled"].number for e in matrix]
    cycles = [e["cycles"]["modelled"].number for e in matrix]
    have = None not in balances + busy + cycles
    src = entries[0]["cycles"]["modelled"].source
    out: dict[str, Any] = {
        "lane_fill": Figure.ratio(sum(f[0] for f in fills), sum(f[1] for f in fills), MEASURED,
                                  "IR: non-zero codes / lanes in kept tiles"),
        "balance": {"modelled": Figure(sum(balances) / len(balances), MODELLED,
                                       f"mean over the matrix layers of layer / slowest layer, {src}") if have
                    else Figure.na(MODELLED, src), "measured": {}},
        "tile_skipping": {"modelled": Figure.ratio(sum(busy) if have else None, sum(cycles) if have else None,
                                                   MODELLED, f"{src}: Σ busy / Σ cycles of the matrix layers"),
                          "measured": {}},
    }
    for sim in SIMULATORS:
        measured = [e["cycles"]["measured"][sim] for e in entries]
        source = measured[0].source
        if not all(figure.known for figure in measured):
            out["balance"]["measured"][sim] = Figure.not_run(source)
            out["tile_skipping"]["measured"][sim] = Figure.not_run(source)
            continue
        slowest = max(figure.value for figure in measured)
        own = [e["cycles"]["measured"][sim].value for e in matrix]
        out["balance"]["measured"][sim] = Figure(sum(c / slowest for c in own) / len(own), MEASURED,
                                                 f"mean over the matrix layers of layer / slowest layer, {source}")
        busy_m = sum(e["cycles"]["busy"][sim].value for e in matrix)
        out["tile_skipping"]["measured"][sim] = Figure.ratio(busy_m, sum(own), MEASURED,
                                                             f"{source}: Σ busy_cycles / Σ cycles of the matrix layers")
    return out


def network_memory(entries: list[dict[str, Any]]) -> dict[str, Figure]:
    matrix = [e for e in entries if "memory" in e]
    return {key: total([e["memory"][key] for e in matrix], basis, matrix[0]["memory"][key].source)
            for key, basis in (("weight_bits", MEASURED), ("index_bits", MODELLED), ("requant_bits", MODELLED),
                               ("bram36", MODELLED))}


def feature_buffers(inputs: RunInputs) -> list[dict[str, Any]]:
    """Every engine's input buffers as the RTL was built (rtl/sizing.json): image banks and their bits —
    a skip (an add's input on the branch that arrives first) holds more banks than the ping-pong pair."""
    if not inputs.sizing:
        return []
    source = inputs.paths.get("sizing", "rtl/sizing.json")
    rows = []
    for engine in inputs.sizing.engines:
        for slot, buffer in enumerate(engine.in_buffers):
            rows.append({"engine": engine.name, "input": slot, "from": buffer.source,
                         "banks": Figure(buffer.banks, MODELLED, buffer.banks_why or f"{source}: ping-pong"),
                         "bits": Figure(buffer.banks * buffer.depth * buffer.bits, MODELLED,
                                        f"{source}: banks x {buffer.depth} elements x {buffer.bits} bits")})
    return rows


def network_compression(inputs: RunInputs) -> dict[str, Figure]:
    """DESIGN §1 ratios, as export wrote them in eval.json (computed from the IR when there is none)."""
    if inputs.eval is not None and "compression_with_index" in inputs.eval:
        figures, src = inputs.eval, f"{inputs.paths['eval']} (export, pyflow.ir.metrics)"
    else:
        figures, src = compression(inputs.network), "IR via pyflow.ir.metrics (no eval.json)"

    def figure(key: str, formula: str) -> Figure:
        value = figures.get(key)
        return Figure(value, MEASURED, f"{src}{formula}") if value is not None else Figure.na(MEASURED, src)

    return {"weights_only": figure("compression_weights_only", ": 32·N_total / (2·N_stored)"),
            "with_index": figure("compression_with_index", ": 32·N_total / (2·N_stored + index_bits + 32·#scales)"),
            "n_total": figure("weights_total", ""), "n_stored": figure("weights_stored", "")}


def network_resources(inputs: RunInputs, board: Board, estimates: dict[str, resources.Estimate] | None
                      ) -> dict[str, Any]:
    budget = board.resources
    out: dict[str, Any] = {"budget": {key: Figure(getattr(budget, key), MEASURED, f"boards/{board.name}.yaml")
                                      for key, _ in RESOURCE_KEYS}}
    if estimates is None:
        out["modelled"] = {key: Figure.na(MODELLED, "rtl/sizing.json not found") for key, _ in RESOURCE_KEYS}
        out["modelled_fits"] = NA
    else:
        estimate = sum(estimates.values(), resources.ZERO)
        out["modelled"] = {key: Figure(getattr(estimate, key), MODELLED, SRC_RESOURCES) for key, _ in RESOURCE_KEYS}
        out["modelled_fits"] = all(getattr(estimate, key) <= getattr(budget, key) for key, _ in RESOURCE_KEYS)
    if inputs.yosys is None:
        out["measured"] = {key: Figure.not_run("yosys.json not found") for key, _ in RESOURCE_KEYS}
        out["measured_fits"] = NOT_RUN
    else:
        cells, source = inputs.yosys["cells"], inputs.paths["yosys"]
        out["measured"] = {key: Figure(cells[cell], MEASURED, f"{source} ({inputs.yosys['yosys_version']})")
                           for key, cell in RESOURCE_KEYS}
        out["measured_fits"] = all(cells[cell] <= getattr(budget, key) for key, cell in RESOURCE_KEYS)
    out["model_error"] = {key: _model_error(out["modelled"][key], out["measured"][key]) for key, _ in RESOURCE_KEYS}
    out["synthesis"] = _synthesis(inputs)
    return out


def _model_error(modelled: Figure, measured: Figure) -> Figure:
    """(modelled − measured) / measured: how far the analytical model is from Yosys."""
    source = "(analytical − Yosys) / Yosys"
    if modelled.value is None or measured.value is None or not measured.value:
        return Figure.na(MODELLED, source)
    return Figure((modelled.value - measured.value) / measured.value, MODELLED, source)


def _synthesis(inputs: RunInputs) -> dict[str, Any]:
    """How Yosys ran: method, units, wall seconds and peak memory (absent from older yosys.json files)."""
    doc = inputs.yosys or {}
    return {key: doc.get(key, NA) for key in ("method", "units", "instances", "jobs", "seconds", "peak_rss_mb")}


# --- verification, tools, folding -------------------------------------------------------------------------

def view_status(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return NOT_RUN
    passed = doc["bit_exact"] is True and doc["mismatches"] == 0 and doc["outputs_compared"] > 0
    return "passed" if passed else "failed"


def verification(inputs: RunInputs) -> dict[str, Any]:
    """The views against the golden model. C-sim and the RTL simulators make "every view"; the netlist view
    (the Yosys netlist of the top on Icarus) has its own row and, when run, must pass too."""
    docs = {"csim": inputs.csim, **{sim: inputs.sims.get(sim) for sim in SIMULATORS}, "netlist": inputs.netlist}
    views = {}
    for view, doc in docs.items():
        source = inputs.paths.get(view, "artifact not found")
        views[view] = {"status": view_status(doc), "basis": MEASURED, "source": source,
                       **{key: (doc[key] if doc is not None else NOT_RUN)
                          for key in ("bit_exact", "vectors", "outputs_compared", "mismatches")}}
    required = [views[view]["status"] for view in VIEWS]
    failed = [view for view, item in views.items() if item["status"] == "failed"]
    if failed:
        summary = "NOT bit-exact: " + ", ".join(failed)
    elif all(s == "passed" for s in required):
        summary = "bit-exact in every view" + ("" if views["netlist"]["status"] == "passed" else
                                               " (netlist view not run)")
    else:
        summary = "bit-exact where run; not run: " + ", ".join(k for k, v in views.items() if v["status"] == NOT_RUN)
    return {"views": views, "all_passed": not failed and all(s == "passed" for s in required), "summary": summary}


def tool_versions(inputs: RunInputs) -> dict[str, Any]:
    from pyflow.tools import version_of

    used = {"g++ (csim)": inputs.csim.get("compiler", NA) if inputs.csim else NOT_RUN,
            "yosys": inputs.yosys.get("yosys_version", NA) if inputs.yosys else NOT_RUN}
    for sim in SIMULATORS:
        used[sim] = inputs.sims[sim].get("simulator_version", NA) if sim in inputs.sims else NOT_RUN
    return {"used (from the artifacts)": used,
            "installed (this machine)": {name: version_of(name) or "missing" for name in TOOLS}}


def folding_check(inputs: RunInputs) -> dict[str, Any]:
    """The IR's folding with its actual kept tiles and modelled cycles (asked vs reached), beside the plans
    the fold stage chose from (fold/folding.json)."""
    cycles = inputs.cycles["layers"] if inputs.cycles else None
    layers = []
    for layer in inputs.network.matrix_layers:
        asked = _requested_keep(inputs, layer.name)
        layers.append({"name": layer.name, "pe": layer.pe, "simd": layer.simd,
                       "cycles": cycles[layer.name]["modelled"] if cycles else NA,
                       "tiles_kept": layer.n_kept, "tiles_total": layer.tiles_total,
                       "requested_keep": asked.value if asked.known else None,
                       "achieved_keep": round(layer.n_kept / layer.tiles_total, 6)})
    slowest = max(item["cycles"] for item in layers) if cycles else None
    for item in layers:
        item["balance"] = round(item["cycles"] / slowest, 6) if slowest else NA
    out = {"source": "checked (actual kept tiles of the IR)", "cycle_basis": MODELLED,
           "cycle_model": _cycle_source(inputs, "modelled_cycles"), "layers": layers,
           "slowest_cycles": slowest if cycles else NA,
           "mean_balance": round(sum(item["balance"] for item in layers) / len(layers), 6) if cycles else NA,
           "lanes": sum(item["pe"] * item["simd"] for item in layers)}
    plans = inputs.folding
    out["comparison"] = ({"sparsity_aware": plans["plan"], "uniform": plans["uniform"], "text": plans["text"],
                          "source": inputs.paths["folding"]} if plans else
                         {"sparsity_aware": None, "uniform": None, "text": "fold stage not run (no fold/folding.json)",
                          "source": "fold/folding.json not found"})
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


def training(inputs: RunInputs) -> dict[str, Any] | None:
    """The compression run's per-epoch history (measured: test accuracy of the torch model, kept tiles)."""
    doc = inputs.training
    if doc is None:
        return None
    keys = ("phase", "epoch", "loss", "accuracy", "kept_tiles", "tiles_total")
    history = [{key: record[key] for key in keys if key in record} for record in doc.get("history", [])]
    freeze = doc.get("freeze") if isinstance(doc.get("freeze"), dict) else {}
    return {"source": inputs.paths["training"] + " (torch model, test set, after every epoch)", "history": history,
            "freeze": {key: freeze[key] for key in ("accuracy_before", "accuracy_after", "accuracy_act_quant",
                                                    "removed_nonzero_tiles") if key in freeze}}


def build_from_inputs(inputs: RunInputs, board: str | None = None) -> dict[str, Any]:
    board_obj, board_source = resolve_board(inputs, board)
    network = inputs.network
    estimates = resources.engine_estimates(network, inputs.sizing) if inputs.sizing else None
    entries = [layer_entry(inputs, layer, estimates[layer.name] if estimates else None) for layer in engines(network)]
    add_utilization(entries, network)
    accuracy = inputs.eval.get("accuracy") if inputs.eval else None
    accuracy_source = inputs.paths.get("eval", "eval.json not found") + " (golden model, test set)"
    clk = clock(inputs, board_obj)
    report = {
        "schema": REPORT_SCHEMA,
        "inputs": dict(sorted(inputs.paths.items())),
        "board": {"name": board_obj.name, "part": board_obj.part, "clock_mhz": board_obj.clock_mhz,
                  "chosen_by": board_source},
        "clock": clk,
        "network": {"name": network.name, "input_shape": list(network.input_shape), "a_bits": network.a_bits,
                    "accuracy": Figure(accuracy, MEASURED, accuracy_source) if accuracy is not None
                    else Figure.na(MEASURED, accuracy_source),
                    "tiles": network_tiles(entries, inputs),
                    "cycles": network_cycles(inputs, board_obj, clk),
                    "utilization": network_utilization(entries, network),
                    "memory": network_memory(entries),
                    "compression": network_compression(inputs)},
        "layers": entries,
        "buffers": feature_buffers(inputs),
        "resources": network_resources(inputs, board_obj, estimates),
        "verification": verification(inputs),
        "folding": folding_check(inputs),
        "tools": tool_versions(inputs),
        "heatmaps": heatmaps(network),
        "training": training(inputs),
        "cycle_model": _cycle_source(inputs, "pyflow.hw.cycles at generate time"),
    }
    return to_json(report)


def build_report(run_dir: str | Path, board: str | None = None) -> dict[str, Any]:
    return build_from_inputs(read_inputs(run_dir), board)
