"""`pyflow report`: figures from test-made artifacts (random IR + the JSON files of the contracts).

``make_run`` writes a run folder whose counters differ from the cycle model, so every test can see
which source a figure was read from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pyflow.cli import main
from pyflow.codegen.rtl import sizing_json
from pyflow.errors import PyflowError
from pyflow.hw.cycles import modelled_cycles
from pyflow.hw.sizing import network_sizing
from pyflow.ir import save
from pyflow.ir.metrics import compression
from pyflow.ir.model import FlattenLayer, MatrixLayer, Network
from pyflow.random_ir import random_network
from pyflow.report import build_report, write_report
from pyflow.report.inputs import read_inputs
from pyflow.report.write import tables

SPEC = "conv8k3p1 maxpool2 conv16k3p1 linear10"


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def sim_doc(network: Network, simulator: str, offset: int, mismatches: int = 0) -> dict[str, Any]:
    """A sim_<simulator>.json with counters that differ from the model (so a test sees which it reads)."""
    layers = []
    for index, layer in enumerate(network.layers):
        if isinstance(layer, FlattenLayer):
            continue
        busy = layer.out_pixels * layer.n_kept if isinstance(layer, MatrixLayer) else 0
        layers.append({"name": layer.name, "cycles": modelled_cycles(layer) + offset + index,
                       "busy_cycles": busy, "modelled_cycles": modelled_cycles(layer)})
    slowest = max(item["cycles"] for item in layers)
    return {"simulator": simulator, "simulator_version": f"{simulator} 1.0 (test)", "vectors": 8,
            "outputs_compared": 80, "mismatches": mismatches, "bit_exact": mismatches == 0,
            "cycles_per_image": sum(item["cycles"] for item in layers) + 7, "interval_cycles": slowest + 3,
            "total_cycles": 8 * (slowest + 3) + 100, "layers": layers}


def eval_doc(network: Network) -> dict[str, Any]:
    layers = []
    for layer in network.matrix_layers:
        dropped = layer.tiles_total - layer.n_kept
        layers.append({"name": layer.name, "tiles_total": layer.tiles_total, "tiles_masked": dropped - dropped // 3,
                       "tiles_all_zero": dropped // 3, "tiles_kept": layer.n_kept, "requested_keep": 0.4,
                       "achieved_keep": layer.n_kept / layer.tiles_total})
    return {"accuracy": 0.9321, "compression_weights_only": 21.5, "compression_with_index": 17.25,
            "kept_tiles": 0.41, "layers": layers}


def make_run(folder: Path, *, views: tuple[str, ...] = ("csim", "icarus", "verilator", "netlist"),
             failing: str | None = None,
             board: str | None = "zcu104", seed: int = 0, with_eval: bool = True) -> Network:
    """A run folder: ir/, hls/csim.json, rtl/sim_*.json, rtl/yosys.json, checkpoint/metrics.json, run.json."""
    network = random_network(SPEC, (1, 8, 8), pe=4, simd=4, keep=0.4, seed=seed)
    save(network, folder / "ir")
    if with_eval:
        write_json(folder / "ir" / "eval.json", eval_doc(network))
    if "csim" in views:
        bad = failing == "csim"
        write_json(folder / "hls" / "csim.json", {"bit_exact": not bad, "vectors": 8, "outputs_compared": 80,
                                                  "mismatches": 2 if bad else 0, "compiler": "g++ (test) 12.2.0",
                                                  "build_seconds": 1.0, "run_seconds": 0.1})
    for offset, simulator in enumerate(("icarus", "verilator")):
        if simulator in views:
            write_json(folder / "rtl" / f"sim_{simulator}.json",
                       sim_doc(network, simulator, 10 * offset + 1, 3 if failing == simulator else 0))
    if "netlist" in views:  # the Yosys netlist of the top on Icarus: the same fields, and its view
        doc = sim_doc(network, "icarus", 1, 5 if failing == "netlist" else 0)
        write_json(folder / "rtl" / "sim_netlist.json", {**doc, "view": "netlist", "yosys_version": "Yosys (test)"})
    write_json(folder / "rtl" / "sizing.json", sizing_json(network, network_sizing(network)))  # as generate writes it
    write_json(folder / "rtl" / "yosys.json", {
        "yosys_version": "Yosys 0.23 (test)", "top": "pyflow_top", "part_family": "xilinx (synth_xilinx -noiopad)",
        "cells": {"LUT": 4321, "FF": 3210, "CARRY": 99, "BRAM36": 1.5, "DSP": 17}, "pe_array_dsp": 0,
        "raw_cell_types": {"LUT6": 4321}})
    write_json(folder / "checkpoint" / "metrics.json", {"compression_weights_only": 21.5,
                                                        "compression_with_index": 17.25})
    if board:
        write_json(folder / "run.json", {"board": board})
    return network


# --- tests ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Network, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("run") / "run"
    network = make_run(folder)
    write_report(folder)
    return folder, network, json.loads((folder / "report" / "report.json").read_text())


def figures(doc: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every figure dict (one holding a "value") in the report, with its path."""
    if isinstance(doc, dict):
        if "value" in doc:
            return [(path, doc)]
        return [item for key, value in doc.items() for item in figures(value, f"{path}.{key}")]
    if isinstance(doc, list):
        return [item for index, value in enumerate(doc) for item in figures(value, f"{path}[{index}]")]
    return []


def test_all_views_passing(full_run):
    _, _, report = full_run
    views = report["verification"]["views"]
    assert [views[v]["status"] for v in ("csim", "icarus", "verilator", "netlist")] == ["passed"] * 4
    assert report["verification"]["all_passed"] is True
    assert report["verification"]["summary"] == "bit-exact in every view"
    assert views["icarus"]["outputs_compared"] == 80 and views["icarus"]["mismatches"] == 0


@pytest.mark.parametrize("missing", ["csim", "icarus", "verilator"])
def test_missing_view_is_not_run(tmp_path, missing):
    make_run(tmp_path / "run", views=tuple(v for v in ("csim", "icarus", "verilator") if v != missing))
    report = build_report(tmp_path / "run")
    verification = report["verification"]
    assert verification["views"][missing]["status"] == "not run"
    assert verification["views"][missing]["bit_exact"] == "not run"
    assert verification["all_passed"] is False
    assert "not run: " + missing in verification["summary"]
    if missing != "csim":
        layer = report["layers"][0]
        assert layer["cycles"]["measured"][missing]["value"] == "not run"
        assert report["network"]["cycles"]["measured"][missing]["images_per_s"]["value"] == "not run"


def test_netlist_view_is_its_own_row_and_optional(tmp_path):
    make_run(tmp_path / "run", views=("csim", "icarus", "verilator"))
    verification = build_report(tmp_path / "run")["verification"]
    assert verification["views"]["netlist"]["status"] == "not run"
    assert verification["all_passed"] is True
    assert verification["summary"] == "bit-exact in every view (netlist view not run)"
    write_report(tmp_path / "run")
    assert "| netlist | not run |" in (tmp_path / "run" / "report" / "report.md").read_text()


@pytest.mark.parametrize("failing", ["csim", "icarus", "verilator", "netlist"])
def test_mismatching_view_is_not_bit_exact(tmp_path, failing):
    make_run(tmp_path / "run", failing=failing)
    report = build_report(tmp_path / "run")
    assert report["verification"]["views"][failing]["status"] == "failed"
    assert report["verification"]["all_passed"] is False
    assert report["verification"]["summary"] == f"NOT bit-exact: {failing}"


def test_measured_figures_are_the_counters(full_run):
    folder, network, report = full_run
    for sim in ("icarus", "verilator"):
        doc = json.loads((folder / "rtl" / f"sim_{sim}.json").read_text())
        counters = {item["name"]: item for item in doc["layers"]}
        slowest = max(item["cycles"] for item in doc["layers"])
        for entry in report["layers"]:
            counter = counters[entry["name"]]
            assert entry["cycles"]["measured"][sim]["value"] == counter["cycles"]
            assert entry["cycles"]["busy"][sim]["value"] == counter["busy_cycles"]
            assert entry["balance"]["measured"][sim]["value"] == round(counter["cycles"] / slowest, 6)
            if "tile_skipping" in entry:
                assert entry["tile_skipping"]["measured"][sim]["value"] == round(
                    counter["busy_cycles"] / counter["cycles"], 6)
        cycles = report["network"]["cycles"]["measured"][sim]
        assert cycles["interval_cycles"]["value"] == doc["interval_cycles"]
        assert cycles["cycles_per_image"]["value"] == doc["cycles_per_image"]
        assert cycles["images_per_s"]["value"] == round(200e6 / doc["interval_cycles"], 6)  # zcu104: 200 MHz
        # measured cycles at a nominal clock are not a measured throughput
        assert cycles["images_per_s"]["basis"] == "modelled" and "(nominal)" in cycles["images_per_s"]["source"]


def test_modelled_figures_follow_the_cycle_model(full_run):
    from pyflow.hw.cycles import busy_cycles, modelled_cycles

    _, network, report = full_run
    layers = {layer.name: layer for layer in network.layers}
    slowest = max(modelled_cycles(layers[e["name"]]) for e in report["layers"])
    for entry in report["layers"]:
        layer = layers[entry["name"]]
        assert entry["cycles"]["modelled"]["value"] == modelled_cycles(layer)
        assert entry["balance"]["modelled"]["value"] == round(modelled_cycles(layer) / slowest, 6)
        if isinstance(layer, MatrixLayer):
            assert entry["tile_skipping"]["modelled"]["value"] == round(busy_cycles(layer) / modelled_cycles(layer), 6)
    # the interval: the slowest engine and the cycle it starts an image on (pyflow.hw.cycles)
    assert report["network"]["cycles"]["modelled_interval"]["value"] == slowest + 1


def test_tiles_lane_fill_and_eval_figures(full_run):
    from pyflow.ir.packing import layer_codes

    _, network, report = full_run
    for layer, entry in zip(network.matrix_layers, [e for e in report["layers"] if "tiles" in e], strict=True):
        dropped = layer.tiles_total - layer.n_kept
        assert entry["tiles"]["total"]["value"] == layer.tiles_total
        assert entry["tiles"]["kept"]["value"] == layer.n_kept
        assert entry["tiles"]["all_zero"]["value"] == dropped // 3
        assert entry["tiles"]["masked"]["value"] == dropped - dropped // 3
        assert entry["tiles"]["requested_keep"]["value"] == 0.4
        fill = int((layer_codes(layer) != 0).sum()) / (layer.n_kept * layer.pe * layer.simd)
        assert entry["lane_fill"]["value"] == round(fill, 6)
    assert report["network"]["accuracy"]["value"] == 0.9321
    # export owns the compression figures: the report shows eval.json's, once
    compression = report["network"]["compression"]
    assert compression["weights_only"]["value"] == 21.5 and compression["with_index"]["value"] == 17.25
    assert compression["weights_only"]["source"].startswith("ir/eval.json")


def test_without_eval_masked_and_all_zero_are_na(tmp_path):
    make_run(tmp_path / "run", with_eval=False)
    report = build_report(tmp_path / "run")
    entry = report["layers"][0]
    assert entry["tiles"]["masked"]["value"] == "n/a" and entry["tiles"]["all_zero"]["value"] == "n/a"
    assert report["network"]["accuracy"]["value"] == "n/a"
    # with no eval.json the compression figures come from the IR, by the function export uses
    network = read_inputs(tmp_path / "run").network
    assert report["network"]["compression"]["weights_only"]["value"] == compression(network)["compression_weights_only"]


def test_without_sizing_modelled_figures_are_na(tmp_path):
    """Modelled cycles and resources come from rtl/sizing.json (generate): without it they are n/a, never
    recomputed by the report."""
    make_run(tmp_path / "run")
    (tmp_path / "run" / "rtl" / "sizing.json").unlink()
    report = build_report(tmp_path / "run")
    assert report["layers"][0]["cycles"]["modelled"] == {"basis": "modelled", "source": "rtl/sizing.json not found",
                                                         "value": "n/a"}
    assert report["network"]["cycles"]["modelled_interval"]["value"] == "n/a"
    assert report["resources"]["modelled"]["lut"]["value"] == "n/a"
    assert report["layers"][0]["cycles"]["measured"]["icarus"]["value"] > 0  # measured figures are still there
    write_report(tmp_path / "run")  # and the tables render


def test_every_figure_is_labelled(full_run):
    folder, _, report = full_run
    found = figures(report)
    assert len(found) > 100
    for path, figure in found:
        assert figure["basis"] in ("modelled", "measured"), path
        assert figure["source"], path
    markdown = (folder / "report" / "report.md").read_text()
    page = (folder / "report" / "report.html").read_text()
    non_figures = {"layer", "PE x SIMD", "folding", "PE x SIMD per layer", "lanes", "keep asked",
                   "tool", "version", "where", "view", "status", "artifact",
                   "resource", "board budget", "modelled fits", "measured fits", "vectors", "outputs compared",
                   "mismatches", "phase", "engine", "input", "written by", "why that many banks"}
    for table in tables(report):
        if "basis" in table.headers:
            assert all(row[2] in ("modelled", "measured") for row in table.rows), table.title
            continue
        for header in table.headers:
            assert header in non_figures or re.search(r"\((modelled|measured)\)", header), (table.title, header)
        assert f"## {table.title}" in markdown and f"<h2>{table.title}</h2>" in page
    for text in (markdown, page):
        assert "(modelled)" in text and "(measured)" in text


def test_html_is_self_contained_with_plots(full_run):
    folder, network, _ = full_run
    page = (folder / "report" / "report.html").read_text()
    heatmaps = re.findall(r'<svg [^>]*class="heatmap" data-layer="([^"]+)"', page)
    assert heatmaps == [layer.name for layer in network.matrix_layers]
    assert page.count('class="bars utilization"') == 1 and page.count('class="bars cycles"') == 1
    for forbidden in ("<script", "<link", " src=", " href=", "url("):
        assert forbidden not in page
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}


def test_report_bytes_are_deterministic(tmp_path):
    for name in ("a", "b"):
        make_run(tmp_path / name)
        write_report(tmp_path / name)
    for file in ("report.json", "report.md", "report.html"):
        assert (tmp_path / "a" / "report" / file).read_bytes() == (tmp_path / "b" / "report" / file).read_bytes()
    write_report(tmp_path / "a")  # rewriting replaces the folder with the same bytes
    assert (tmp_path / "a" / "report" / "report.html").read_bytes() == \
        (tmp_path / "b" / "report" / "report.html").read_bytes()


def test_board_choice(tmp_path):
    make_run(tmp_path / "run")
    assert build_report(tmp_path / "run")["board"]["chosen_by"] == "run.json"
    assert build_report(tmp_path / "run")["board"]["name"] == "zcu104"
    report = build_report(tmp_path / "run", board="kv260")
    assert (report["board"]["name"], report["board"]["chosen_by"]) == ("kv260", "--board")
    make_run(tmp_path / "plain", board=None)
    report = build_report(tmp_path / "plain")
    assert report["board"]["name"] == "pynq-z2" and report["board"]["chosen_by"].startswith("default")
    assert "chosen by default (pynq-z2" in (write_report(tmp_path / "plain") / "report.md").read_text()


def test_resources_against_budget(full_run):
    _, _, report = full_run
    resources = report["resources"]
    assert resources["measured"]["lut"]["value"] == 4321 and resources["measured"]["dsp"]["value"] == 17
    assert resources["budget"]["lut"]["value"] == 230400
    assert resources["measured_fits"] is True and resources["modelled_fits"] is True
    assert all(resources["modelled"][k]["value"] > 0 for k in ("lut", "ff"))


def test_generate_layout_is_accepted(tmp_path):
    network = make_run(tmp_path / "made", views=())
    folder = tmp_path / "gen"
    save(network, folder / "rtl" / "ir")
    (tmp_path / "made" / "rtl" / "yosys.json").rename(folder / "rtl" / "yosys.json")
    report = build_report(folder)
    assert report["inputs"]["ir"] == "rtl/ir" and report["inputs"]["yosys"] == "rtl/yosys.json"
    assert report["verification"]["summary"] == "bit-exact where run; not run: csim, icarus, verilator, netlist"


@pytest.mark.parametrize("case, message", [
    ("not_a_run", "not a pyflow run folder"),
    ("missing", "no such folder"),
    ("bad_board", "unknown board 'no-such-board'"),
    ("corrupt_sim", "sim_icarus.json: invalid JSON"),
    ("wrong_layers", "do not match the IR's layers"),
    ("sim_field", "missing field 'interval_cycles'"),
    ("eval_layer", "layer 'conv0': tiles_total 999 does not match the IR"),
    ("run_board", "run.json: board: unknown board 'atlantis'"),
])
def test_bad_input_is_one_line(tmp_path, capsys, case, message):
    folder = tmp_path / "run"
    argv = ["report", str(folder)]
    if case == "not_a_run":
        (folder / "rtl").mkdir(parents=True)
    elif case != "missing":
        make_run(folder)
    if case == "bad_board":
        argv += ["--board", "no-such-board"]
    sim = folder / "rtl" / "sim_icarus.json"
    if case == "corrupt_sim":
        sim.write_text("{not json")
    if case in ("wrong_layers", "sim_field"):
        doc = json.loads(sim.read_text())
        if case == "wrong_layers":
            doc["layers"] = doc["layers"][1:]
        else:
            del doc["interval_cycles"]
        write_json(sim, doc)
    if case == "eval_layer":
        doc = json.loads((folder / "ir" / "eval.json").read_text())
        doc["layers"][0]["tiles_total"] = 999
        write_json(folder / "ir" / "eval.json", doc)
    if case == "run_board":
        write_json(folder / "run.json", {"board": "atlantis"})
    with pytest.raises(PyflowError, match=re.escape(message)):
        build_report(folder, board="no-such-board" if case == "bad_board" else None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyflow: error: ") and message in err and err.count("\n") == 1
    assert not (folder / "report").exists()


def test_cli_prints_summary(tmp_path, capsys):
    make_run(tmp_path / "run")
    assert main(["report", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "zcu104 at 200 MHz (nominal): bit-exact in every view" in out
    assert "cycles latency (measured, verilator)" in out
    assert "images/s (modelled)" in out
    assert {p.name for p in (tmp_path / "run" / "report").iterdir()} == {
        ".pyflow", "report.json", "report.md", "report.html"}


def test_heatmap_data_is_the_tile_mask(full_run):
    from pyflow.ir.packing import tile_mask

    _, network, report = full_run
    for layer in network.matrix_layers:
        tiles = report["heatmaps"][layer.name]["tiles"]
        kept = [[ch != "." for ch in row] for row in tiles]
        assert kept == tile_mask(layer).tolist()


def test_large_layer_heatmap_is_binned():
    from pyflow.report.svg import heatmap

    tiles = ["5." * 400] * 300  # 300 output folds x 800 column folds
    svg = heatmap("big", tiles)
    assert "one cell = 2x3 tiles" in svg and "240000/240000" not in svg and "120000/240000 tiles kept" in svg
    assert svg.count("<rect") < 160 * 300


def test_network_balance_is_over_the_pe_arrays(full_run):
    folder, network, report = full_run
    doc = json.loads((folder / "rtl" / "sim_icarus.json").read_text())
    slowest = max(item["cycles"] for item in doc["layers"])
    matrix = [item["cycles"] / slowest for item in doc["layers"] if item["name"] in
              {layer.name for layer in network.matrix_layers}]
    assert report["network"]["utilization"]["balance"]["measured"]["icarus"]["value"] == round(
        sum(matrix) / len(matrix), 6)


def _with_history(folder: Path, history: Any) -> None:
    (folder / "checkpoint").mkdir(exist_ok=True)
    (folder / "checkpoint" / "metrics.json").write_text(json.dumps({
        "history": history, "freeze": {"accuracy_before": 0.9, "accuracy_after": 0.9, "removed_nonzero_tiles": 0,
                                       "accuracy_act_quant": 0.89}}))


def test_compression_history_is_drawn_and_tabled(tmp_path):
    folder = tmp_path / "run"
    make_run(folder)
    history = [{"phase": "fp", "epoch": 1, "loss": 1.0, "accuracy": 0.8},
               *({"phase": "ternary+wpc", "epoch": e, "loss": 0.5, "accuracy": 0.85, "kept_tiles": 100 - 20 * e,
                  "tiles_total": 100} for e in (1, 2)),
               {"phase": "finetune", "epoch": 1, "loss": 0.3, "accuracy": 0.9, "kept_tiles": 60, "tiles_total": 100}]
    _with_history(folder, history)
    write_report(folder)
    report = json.loads((folder / "report" / "report.json").read_text())
    assert [r["kept_tiles"] for r in report["training"]["history"][1:]] == [80, 60, 60]
    page = (folder / "report" / "report.html").read_text()
    assert 'class="lines training"' in page and page.count("<polyline") >= 2
    assert "kept tiles 80 -> 60 of 100" in (folder / "report" / "report.md").read_text()


@pytest.mark.parametrize("history, message", [
    ("not a list", "history: expected a list"),
    ([{"epoch": 1}], r"history\[0\]: expected a record with a phase"),
    ([{"phase": "fp", "accuracy": "high"}], r"history\[0\].accuracy: expected a number, got 'high'"),
])
def test_a_hostile_compression_history_is_a_one_line_error(tmp_path, history, message):
    folder = tmp_path / "run"
    make_run(folder)
    _with_history(folder, history)
    with pytest.raises(PyflowError, match=r"checkpoint/metrics.json: " + message):
        write_report(folder)
    assert not (folder / "report").exists()


PNR = {"board": "ulx3s", "part": "LFE5U-85F-6BG381C", "device": "85k", "package": "CABGA381", "speed": 6, "seed": 1,
       "clock_mhz": 100.0, "fmax_mhz": 103.252, "constraint_mhz": 100.0, "meets_clock": True,
       "utilization": {"TRELLIS_COMB": {"used": 13112, "available": 83640}, "DP16KD": {"used": 1, "available": 208}},
       "critical_path": {"delay_ns": 9.685, "engines": ["fc0 (IR layer 5)", "feature buffer 4"]},
       "seconds": {"synth": 27.4, "pnr": 128.0, "pack": 1.8, "total": 157.2},
       "peak_rss_mb": {"synth": 350.3, "pnr": 647.6, "pack": 169.9, "max": 647.6},
       "tools": {"nextpnr": "nextpnr-0.11.1 (test)"},
       "bitstream": {"file": "pyflow_board.bit", "bytes": 1930043, "sha256": "6dffad61b671eeeb"},
       "seeds": [{"seed": 1, "fmax_mhz": 93.93}, {"seed": 2, "fmax_mhz": 103.252}]}


@pytest.mark.parametrize("board", ["ulx3s", "zcu104"])
def test_placed_and_routed_clock_is_measured_only_on_its_board(tmp_path, board):
    """With pnr.json for the report's board the throughput is at the measured Fmax and says so; for another
    board the Fmax is shown but the throughput stays at the nominal clock, labelled modelled."""
    make_run(tmp_path / "run", board=board)
    write_json(tmp_path / "run" / "rtl" / "pnr" / "pnr.json", PNR)
    write_report(tmp_path / "run")
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    clk, rate = report["clock"], report["network"]["cycles"]["measured"]["verilator"]["images_per_s"]
    interval = report["network"]["cycles"]["measured"]["verilator"]["interval_cycles"]["value"]
    assert clk["fmax_mhz"] == {"basis": "measured", "value": 103.252,
                               "source": "rtl/pnr/pnr.json (nextpnr-0.11.1 (test), LFE5U-85F-6BG381C, seed 1)"}
    assert clk["utilization"]["TRELLIS_COMB"]["used"]["value"] == 13112
    markdown = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "## Place and route on ulx3s" in markdown and "13,112 / 83,640 (15.7 %)" in markdown
    assert "| placer seeds tried (Fmax, MHz) | 1: 93.93, 2: 103.252 |" in markdown
    if board == "ulx3s":
        assert rate["basis"] == "measured" and rate["value"] == round(103.252e6 / interval, 6)
        assert "ulx3s at Fmax 103.3 MHz (measured, nextpnr on LFE5U-85F-6BG381C)" in markdown
    else:
        assert rate["basis"] == "modelled" and rate["value"] == round(200e6 / interval, 6)
        assert "not for zcu104" in clk["note"] and "zcu104 at 200 MHz (nominal)" in markdown


@pytest.mark.parametrize("edit,message", [
    (lambda d: {k: v for k, v in d.items() if k != "fmax_mhz"}, r"missing field 'fmax_mhz'"),
    (lambda d: {**d, "fmax_mhz": "fast"}, r"fmax_mhz: expected a frequency in MHz"),
    (lambda d: {**d, "meets_clock": "yes"}, r"meets_clock must be true or false"),
    (lambda d: {**d, "utilization": {"LUT4": 5}}, r"utilization: expected"),
])
def test_hostile_pnr_json(tmp_path, edit, message):
    make_run(tmp_path / "run", board="ulx3s")
    write_json(tmp_path / "run" / "rtl" / "pnr" / "pnr.json", edit(PNR))
    with pytest.raises(PyflowError, match=message) as info:
        write_report(tmp_path / "run")
    assert "pnr.json" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "report").exists()
