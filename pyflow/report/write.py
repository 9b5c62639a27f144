"""Render the report dict as Markdown and as one self-contained HTML page; write all three atomically.

Both renderings come from the same list of tables; every column holding figures names its basis
(modelled or measured) in its header, key/value tables carry a basis column.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from pyflow.artifacts import SIMULATORS, write_json
from pyflow.report.build import build_report
from pyflow.report.figures import NA, NOT_RUN
from pyflow.report.svg import grouped_bars, heatmap, line_chart
from pyflow.util import atomic_folder

REPORT_FOLDER = "report"


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def fmt(figure: dict[str, Any] | Any, style: str = "int") -> str:
    value = figure["value"] if isinstance(figure, dict) else figure
    if value is None or isinstance(value, str | bool):
        return {None: NA, True: "yes", False: "no"}.get(value, value) if not isinstance(value, str) else value
    if style == "pct":
        return f"{100 * value:.1f} %"
    if style == "x":
        return f"{value:.2f}x"
    if style == "rate":
        return f"{value:,.0f}"
    if style == "float":
        return f"{value:.3f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _row(label: str, figure: dict[str, Any], style: str = "int") -> tuple[str, ...]:
    return (label, fmt(figure, style), figure["basis"], figure["source"])


def summary_table(report: dict[str, Any]) -> Table:
    net, board = report["network"], report["board"]
    cyc, util, comp, mem = net["cycles"], net["utilization"], net["compression"], net["memory"]
    clk = report["clock"]
    rows = [("board", f"{board['name']} ({board['part']}, {board['clock_mhz']:g} MHz nominal)", "measured",
             f"chosen by {board['chosen_by']}"),
            _row("clock of the throughput, MHz", clk["used"], "float"),
            _row("Fmax placed and routed (nextpnr), MHz", clk["fmax_mhz"], "float"),
            ("bit-exact", report["verification"]["summary"], "measured", "csim.json, sim_*.json"),
            _row("accuracy (golden model, test set)", net["accuracy"], "pct"),
            _row("throughput, images/s", cyc["modelled_images_per_s"], "rate")]
    for sim in SIMULATORS:
        rows.append(_row(f"throughput, images/s ({sim})", cyc["measured"][sim]["images_per_s"], "rate"))
    rows.append(_row("interval cycles (slowest layer)", cyc["modelled_interval"]))
    for sim in SIMULATORS:
        rows.append(_row(f"interval cycles ({sim})", cyc["measured"][sim]["interval_cycles"]))
    rows.append(_row("latency cycles (sum of layers)", cyc["modelled_latency"]))
    rows.append(_row("latency cycles, dense (sum of layers, every tile kept)", cyc["dense_latency"]))
    for sim in SIMULATORS:
        rows.append(_row(f"latency cycles per image ({sim})", cyc["measured"][sim]["cycles_per_image"]))
    rows += [_row("tiles total", net["tiles"]["total"]), _row("tiles masked", net["tiles"]["masked"]),
             _row("tiles all-zero", net["tiles"]["all_zero"]), _row("tiles kept", net["tiles"]["kept"]),
             _row("keep requested", net["tiles"]["requested_keep"], "float"),
             _row("keep reached", net["tiles"]["achieved_keep"], "float"),
             _row("PE utilization: tile skipping", util["tile_skipping"]["modelled"], "pct")]
    for sim in SIMULATORS:
        rows.append(_row(f"PE utilization: tile skipping ({sim})", util["tile_skipping"]["measured"][sim], "pct"))
    rows.append(_row("PE utilization: lane fill", util["lane_fill"], "pct"))
    rows.append(_row("PE utilization: pipeline balance", util["balance"]["modelled"], "pct"))
    for sim in SIMULATORS:
        rows.append(_row(f"PE utilization: pipeline balance ({sim})", util["balance"]["measured"][sim], "pct"))
    rows += [_row("compression, weights only", comp["weights_only"], "x"),
             _row("compression, with index", comp["with_index"], "x"),
             _row("weight ROM bits", mem["weight_bits"]), _row("index ROM bits", mem["index_bits"]),
             _row("requant parameter bits", mem["requant_bits"]), _row("ROM BRAM36", mem["bram36"])]
    return Table("Summary", ("figure", "value", "basis", "source"), tuple(rows),
                 f"cycle model: {report['cycle_model']}")


def verification_table(report: dict[str, Any]) -> Table:
    rows = tuple((view, item["status"], str(item["vectors"]), str(item["outputs_compared"]), str(item["mismatches"]),
                  item["source"]) for view, item in report["verification"]["views"].items())
    return Table("Bit-exactness against the golden model (measured)",
                 ("view", "status", "vectors", "outputs compared", "mismatches", "artifact"), rows,
                 "a view whose artifact is missing is reported as not run, never as passed")


def _matrix(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in report["layers"] if "tiles" in e]


def tiles_table(report: dict[str, Any]) -> Table:
    rows = tuple((e["name"], f"{e['pe']}x{e['simd']}", fmt(e["tiles"]["total"]), fmt(e["tiles"]["masked"]),
                  fmt(e["tiles"]["all_zero"]), fmt(e["tiles"]["kept"]), fmt(e["tiles"]["requested_keep"], "float"),
                  fmt(e["tiles"]["achieved_keep"], "float")) for e in _matrix(report))
    return Table("Tiles per layer (measured: IR, eval.json)",
                 ("layer", "PE x SIMD", "total (measured)", "masked (measured)", "all-zero (measured)",
                  "kept (measured)", "keep asked", "keep reached (measured)"), rows)


def cycles_table(report: dict[str, Any]) -> Table:
    rows = []
    for e in report["layers"]:
        c = e["cycles"]
        rows.append((e["name"], fmt(c["dense"]), fmt(c["modelled"]), fmt(c["ideal"]),
                     *(fmt(c["measured"][s]) for s in SIMULATORS), *(fmt(c["busy"][s]) for s in SIMULATORS)))
    return Table("Cycles per layer, one image",
                 ("layer", "dense (modelled)", "sparse (modelled)", "sparse ideal (modelled)",
                  *(f"{s} (measured)" for s in SIMULATORS), *(f"busy {s} (measured)" for s in SIMULATORS)),
                 tuple(rows), "modelled: pyflow.hw.cycles, from rtl/sizing.json (dense = every tile kept; sparse "
                              "ideal = the tile walk without pipeline fill); measured: the RTL's hardware counters")


def utilization_table(report: dict[str, Any]) -> Table:
    rows = []
    for e in report["layers"]:
        skip = e.get("tile_skipping")
        rows.append((e["name"], fmt(skip["modelled"], "pct") if skip else NA,
                     *(fmt(skip["measured"][s], "pct") if skip else NA for s in SIMULATORS),
                     fmt(e["lane_fill"], "pct") if "lane_fill" in e else NA,
                     fmt(e["balance"]["modelled"], "pct"), *(fmt(e["balance"]["measured"][s], "pct")
                                                             for s in SIMULATORS)))
    return Table("PE utilization per layer",
                 ("layer", "tile skipping (modelled)", *(f"tile skipping {s} (measured)" for s in SIMULATORS),
                  "lane fill (measured)", "balance (modelled)", *(f"balance {s} (measured)" for s in SIMULATORS)),
                 tuple(rows), "tile skipping = busy cycles / cycles; lane fill = non-zero codes / lanes in kept tiles; "
                              "balance = layer cycles / slowest layer cycles")


def memory_table(report: dict[str, Any]) -> Table:
    rows = tuple((e["name"], fmt(e["memory"]["weight_bits"]), fmt(e["memory"]["index_bits"]),
                  fmt(e["memory"]["requant_bits"]), fmt(e["memory"]["bram36"])) for e in _matrix(report))
    return Table("Packed memory per layer", ("layer", "weight bits (measured)", "index bits (modelled)",
                                             "requant bits (modelled)", "ROM BRAM36 (modelled)"), rows)


def buffers_table(report: dict[str, Any]) -> Table:
    rows = tuple((b["engine"], str(b["input"]), b["from"], fmt(b["banks"]), fmt(b["bits"]), b["banks"]["source"])
                 for b in report["buffers"])
    return Table("Feature buffers",
                 ("engine", "input", "written by", "image banks (modelled)", "bits (modelled)", "why that many banks"),
                 rows,
                 "a bank is held from the producer's start of an image to the consumer's end of it; a skip "
                 "waits for the longer branch, so it needs more than the ping-pong pair")


def resources_table(report: dict[str, Any]) -> Table:
    res = report["resources"]
    rows = []
    errors = res.get("model_error", {})
    for key, label in (("lut", "LUT"), ("ff", "FF"), ("bram36", "BRAM36"), ("dsp", "DSP")):
        budget, modelled, measured = res["budget"][key]["value"], res["modelled"][key], res["measured"][key]
        error = errors.get(key, {}).get("value")
        error_text = f"{100 * error:+.1f} %" if isinstance(error, int | float) else "n/a"
        rows.append((label, fmt(modelled), fmt(measured), error_text,
                     str(budget), _fits(modelled["value"], budget), _fits(measured["value"], budget)))
    rows.append(("all", "", "", "", "", "fits" if res["modelled_fits"] else "does not fit",
                 NOT_RUN if res["measured_fits"] == NOT_RUN else "fits" if res["measured_fits"] else "does not fit"))
    return Table(f"Resources against the {report['board']['name']} budget",
                 ("resource", "analytical (modelled)", "Yosys (measured)", "model error (modelled)", "board budget",
                  "modelled fits", "measured fits"), tuple(rows),
                 f"measured: {res['measured']['lut']['source']}{_synthesis_note(res.get('synthesis', {}))}")


def pnr_table(report: dict[str, Any]) -> Table:
    """Place and route (nextpnr-ecp5): Fmax, the critical path, utilization against the part, run time."""
    clk = report["clock"]
    if clk["pnr_board"] == NA:
        return Table("Place and route", ("figure", "value", "basis", "source"),
                     (("Fmax", fmt(clk["fmax_mhz"]), "measured", clk["fmax_mhz"]["source"]),))
    rows = [("Fmax, MHz", fmt(clk["fmax_mhz"], "float"), "measured", clk["fmax_mhz"]["source"]),
            ("meets the bitstream's clock", fmt(clk["meets_clock"]), "measured", clk["meets_clock"]["source"]),
            ("critical path", clk["critical_path"], "measured", "nextpnr's critical path, cells mapped to engines")]
    for kind, use in clk["utilization"].items():
        used, available = use["used"]["value"], use["available"]["value"]
        rows.append((f"{kind} used", f"{used:,} / {available:,} ({100 * used / available:.1f} %)" if available
                     else f"{used:,}", "measured", use["used"]["source"]))
    run = clk["pnr_run"]
    if run.get("seeds"):
        rows.append(("placer seeds tried (Fmax, MHz)", ", ".join(f"{item['seed']}: {item['fmax_mhz']}" for item in
                                                                 run["seeds"]), "measured",
                     "pnr.json seeds: the best placement is kept (the bitstream's)"))
    seconds = ", ".join(f"{run['seconds'][k]:.0f}" for k in ("synth", "pnr", "pack"))
    rows.append(("run time (synth, pnr, pack), s", seconds, "measured", "pnr.json seconds"))
    rows.append(("peak memory (synth, pnr), MB", ", ".join(f"{run['peak_rss_mb'][k]:.0f}" for k in ("synth", "pnr")),
                 "measured", "pnr.json peak_rss_mb"))
    rows.append(("bitstream", f"{run['bitstream']['file']} ({run['bitstream']['bytes']:,} bytes)", "measured",
                 f"sha256 {run['bitstream']['sha256'][:16]}…"))
    return Table(f"Place and route on {clk['pnr_board']}", ("figure", "value", "basis", "source"), tuple(rows),
                 clk.get("note", ""))


def _synthesis_note(synthesis: dict[str, Any]) -> str:
    if not isinstance(synthesis.get("seconds"), int | float):
        return ""
    return (f"; {synthesis['method']}, {synthesis['units']} Yosys units for {synthesis['instances']} instances on "
            f"{synthesis['jobs']} workers, {synthesis['seconds']:.0f} s, largest process "
            f"{synthesis['peak_rss_mb']:.0f} MB")


def layer_resources_table(report: dict[str, Any]) -> Table:
    rows = tuple((e["name"], *(fmt(e["resources"][key]) for key in ("lut", "ff", "bram36", "dsp")))
                 for e in report["layers"])
    return Table("Resources per layer: engine + its input buffer (modelled)",
                 ("layer", "LUT (modelled)", "FF (modelled)", "BRAM36 (modelled)", "DSP (modelled)"), rows,
                 "the feature buffers are lane-interleaved LUT or block RAM; the logits buffer and stream ports are "
                 "counted with the last layer")


def _fits(value: Any, budget: int) -> str:
    if isinstance(value, str):
        return value
    return f"fits ({100 * value / budget:.1f} %)" if value <= budget else f"does not fit ({100 * value / budget:.0f} %)"


def folding_table(report: dict[str, Any]) -> Table:
    fold = report["folding"]
    rows = tuple((f["name"], f"{f['pe']}x{f['simd']}", f"{f['tiles_kept']}/{f['tiles_total']}",
                  fmt(f["requested_keep"], "float"), fmt(f["achieved_keep"], "float"), fmt(f["cycles"]),
                  fmt(f["balance"], "pct")) for f in fold["layers"])
    return Table("Folding check: asked vs reached",
                 ("layer", "PE x SIMD", "kept tiles (measured)", "keep asked", "keep reached (measured)",
                  "cycles (modelled)", "balance (modelled)"), rows,
                 f"{fold['source']}; cycles {fold['cycle_model']}; slowest {fmt(fold['slowest_cycles'])} cycles, "
                 f"mean balance {fmt(fold['mean_balance'], 'pct')}")


def comparison_table(report: dict[str, Any]) -> Table:
    comparison = report["folding"]["comparison"]
    rows = []
    plans = (("this IR (checked)", report["folding"]), ("sparsity-aware plan", comparison["sparsity_aware"]),
             ("uniform board default", comparison["uniform"]))
    for label, plan in plans:
        if plan is None:
            rows.append((label, NOT_RUN, "", "", ""))
            continue
        foldings = ", ".join(f"{f['name']} {f['pe']}x{f['simd']}" for f in plan["layers"])
        rows.append((label, foldings, str(plan["lanes"]), fmt(plan["slowest_cycles"]),
                     fmt(plan["mean_balance"], "pct")))
    return Table("Folding: this IR vs the plans of the fold stage (sparsity-aware, uniform; at the keep asked)",
                 ("folding", "PE x SIMD per layer", "lanes", "slowest layer cycles (modelled)",
                  "mean balance (modelled)"), tuple(rows), comparison["source"])


def tools_table(report: dict[str, Any]) -> Table:
    rows = [(name, version, "used") for name, version in report["tools"]["used (from the artifacts)"].items()]
    rows += [(name, version, "installed") for name, version in report["tools"]["installed (this machine)"].items()]
    return Table("Tool versions", ("tool", "version", "where"), tuple(rows))


def _phases(history: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: list[list[dict[str, Any]]] = []
    for record in history:
        if not groups or groups[-1][0]["phase"] != record["phase"]:
            groups.append([])
        groups[-1].append(record)
    return groups


def training_table(report: dict[str, Any]) -> Table:
    """Each compression phase's first and last epoch, and the freeze between them (measured, torch model)."""
    training = report.get("training")
    if not training:
        return Table("Compression run (measured, torch model)", ("phase", "torch model figures (measured)"),
                     ((NOT_RUN, "no checkpoint/metrics.json in this run folder"),))
    rows = []
    for group in _phases(training["history"]):
        first, last = group[0], group[-1]
        kept = (f"; kept tiles {first['kept_tiles']} -> {last['kept_tiles']} of {last['tiles_total']}"
                if "kept_tiles" in last else "")
        rows.append((first["phase"], f"{len(group)} epochs; test accuracy {fmt(first['accuracy'], 'pct')} -> "
                     f"{fmt(last['accuracy'], 'pct')}; loss {last['loss']:.4f}{kept}"))
        if first["phase"].startswith("ternary") and training["freeze"]:
            freeze = training["freeze"]
            rows.append(("freeze", f"accuracy {fmt(freeze.get('accuracy_before'), 'pct')} -> "
                         f"{fmt(freeze.get('accuracy_after'), 'pct')}, "
                         f"{freeze.get('removed_nonzero_tiles', NA)} removed tiles held non-zero codes; with "
                         f"quantized activations {fmt(freeze.get('accuracy_act_quant'), 'pct')}"))
    return Table("Compression run (measured, torch model)", ("phase", "torch model figures (measured)"), tuple(rows),
                 training["source"])


def tables(report: dict[str, Any]) -> list[Table]:
    return [summary_table(report), verification_table(report), tiles_table(report), cycles_table(report),
            utilization_table(report), memory_table(report), buffers_table(report), resources_table(report),
            pnr_table(report), layer_resources_table(report),
            folding_table(report), comparison_table(report), training_table(report), tools_table(report)]


def headline(report: dict[str, Any]) -> str:
    """One line: board, bit-exactness, throughput and cycles, balance, tile skipping, accuracy, compression."""
    net, board = report["network"], report["board"]
    sim = _primary_sim(report)
    cycles = net["cycles"]
    rate = cycles["measured"][sim]["images_per_s"] if sim else cycles["modelled_images_per_s"]
    interval = cycles["measured"][sim]["interval_cycles"] if sim else cycles["modelled_interval"]
    latency = cycles["measured"][sim]["cycles_per_image"] if sim else cycles["modelled_latency"]
    skip = net["utilization"]["tile_skipping"]["measured"][sim] if sim else net["utilization"]["tile_skipping"][
        "modelled"]
    balance = net["utilization"]["balance"]["measured"][sim] if sim else net["utilization"]["balance"]["modelled"]
    where = f"measured, {sim}" if sim else "modelled"
    used = report["clock"]["used"]
    clock = (f"Fmax {used['value']:.1f} MHz (measured, nextpnr on {board['part']})" if used["basis"] == "measured"
             else f"{board['clock_mhz']:g} MHz (nominal)")
    return (f"{board['name']} at {clock}: {report['verification']['summary']}; "
            f"{fmt(rate, 'rate')} images/s ({rate['basis']}), {fmt(interval)} cycles interval, {fmt(latency)} "
            f"cycles latency ({where}); tile skipping {fmt(skip, 'pct')}, pipeline balance "
            f"{fmt(balance, 'pct')} ({where}); lane fill {fmt(net['utilization']['lane_fill'], 'pct')} (measured); "
            f"accuracy {fmt(net['accuracy'], 'pct')} (measured); "
            f"compression {fmt(net['compression']['weights_only'], 'x')} weights only (measured)")


# --- Markdown -------------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# pyflow report: {report['network']['name']}", "",
             "Every figure is labelled **modelled** (predicted by a model) or **measured** (counted from an "
             "artifact: the IR, a simulator's counters, Yosys, nextpnr, the golden model).", "",
             f"**{headline(report)}**", ""]
    for table in tables(report):
        lines += [f"## {table.title}", "", "| " + " | ".join(map(_md_cell, table.headers)) + " |",
                  "|" + "---|" * len(table.headers)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows]
        lines += ["", f"_{table.note}_", ""] if table.note else [""]
    return "\n".join(lines)


# --- HTML -----------------------------------------------------------------------------------------------

CSS = """body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 4px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}td{text-align:left}.note{color:#555;font-size:12px}
.figs{display:flex;flex-wrap:wrap;gap:12px}.headline{font-size:15px;background:#eef4fa;padding:8px}svg{background:#fff}"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>\n" for row in table.rows)
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return f"<h2>{escape(table.title)}</h2>\n<table><tr>{head}</tr>\n{body}</table>{note}\n"


def _value(figure: dict[str, Any]) -> float | None:
    value = figure["value"]
    return None if isinstance(value, str) or value is None else float(value)


def _primary_sim(report: dict[str, Any]) -> str | None:
    views = report["verification"]["views"]
    return next((s for s in reversed(SIMULATORS) if views[s]["status"] != NOT_RUN), None)


def utilization_chart(report: dict[str, Any]) -> str:
    layers = report["layers"]
    sim = _primary_sim(report)
    series = [("tile skipping (modelled)", [_value(e["tile_skipping"]["modelled"]) if "tile_skipping" in e else None
                                            for e in layers])]
    if sim:
        series.append((f"tile skipping (measured, {sim})",
                       [_value(e["tile_skipping"]["measured"][sim]) if "tile_skipping" in e else None for e in layers]))
    series.append(("lane fill (measured)", [_value(e["lane_fill"]) if "lane_fill" in e else None for e in layers]))
    series.append(("balance (modelled)", [_value(e["balance"]["modelled"]) for e in layers]))
    if sim:
        series.append((f"balance (measured, {sim})", [_value(e["balance"]["measured"][sim]) for e in layers]))
    return grouped_bars("utilization", "PE utilization per layer", [e["name"] for e in layers], series, 1.0,
                        lambda v: f"{100 * v:.0f} %")


def cycles_chart(report: dict[str, Any]) -> str:
    layers = report["layers"]
    series = [("dense (modelled)", [_value(e["cycles"]["dense"]) for e in layers]),
              ("sparse (modelled)", [_value(e["cycles"]["modelled"]) for e in layers]),
              ("sparse ideal (modelled)", [_value(e["cycles"]["ideal"]) for e in layers])]
    for sim in SIMULATORS:
        series.append((f"{sim} (measured)", [_value(e["cycles"]["measured"][sim]) for e in layers]))
    top = max((v for _, values in series for v in values if v is not None), default=1.0)
    return grouped_bars("cycles", "Cycles per layer: modelled vs measured", [e["name"] for e in layers], series,
                        top, lambda v: f"{v:.0f}")


def training_chart(report: dict[str, Any]) -> str:
    """Kept-tile fraction and test accuracy after every epoch of the compression run, phases shaded."""
    training = report.get("training")
    history = training["history"] if training else []
    if not history:
        return ""
    points = [float(i + 1) for i in range(len(history))]
    kept = [r["kept_tiles"] / r["tiles_total"] if r.get("tiles_total") else None for r in history]
    bands, start = [], 0
    for group in _phases(history):
        bands.append((group[0]["phase"], start + 0.5, start + len(group) + 0.5))
        start += len(group)
    return line_chart("training", "Compression run: kept tiles and test accuracy per epoch (measured)",
                      points,
                      [("kept tiles (non-zero, in the mask) / all tiles", kept),
                       ("test accuracy (torch model)", [r["accuracy"] for r in history])],
                      bands, lambda v: f"{100 * v:.0f} %", x_range=(0.5, start + 0.5))


def html(report: dict[str, Any]) -> str:
    name = escape(report["network"]["name"])
    maps = "\n".join(heatmap(layer, data["tiles"]) for layer, data in report["heatmaps"].items())
    parts = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>pyflow report: {name}</title>',
             f"<style>{CSS}</style></head><body>", f"<h1>pyflow report: {name}</h1>",
             "<p>Every figure is labelled <b>modelled</b> (predicted by a model) or <b>measured</b> (counted from "
             "an artifact: the IR, a simulator's counters, Yosys, nextpnr, the golden model).</p>"]
    all_tables = tables(report)
    parts.append(f'<p class="headline">{escape(headline(report))}</p>')
    parts.append(_html_table(all_tables[1]))
    parts += ["<h2>Plots</h2>", f'<div class="figs">{utilization_chart(report)}\n{cycles_chart(report)}\n'
              f'{training_chart(report)}</div>',
              "<h2>Tile masks (measured, IR)</h2>", f'<div class="figs">{maps}</div>']
    parts += [_html_table(all_tables[0])] + [_html_table(table) for table in all_tables[2:]]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(run_dir: str | Path, board: str | None = None) -> Path:
    """Build the report of ``run_dir`` and write ``run_dir/report/`` (report.json, report.md, report.html)."""
    report = build_report(run_dir, board)
    folder = Path(run_dir) / REPORT_FOLDER
    with atomic_folder(folder, kind="report") as tmp:
        write_json(tmp / "report.json", report)
        (tmp / "report.md").write_text(markdown(report))
        (tmp / "report.html").write_text(html(report))
    return folder
