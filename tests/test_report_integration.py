"""The report on a real generated design: `pyflow generate --backend both`, then C-simulation and Icarus."""

from __future__ import annotations

import json

import pytest

from pyflow.boards import load_board
from pyflow.codegen.cli import generate
from pyflow.hw.cycles import modelled_cycles
from pyflow.random_ir import random_network
from pyflow.report import build_report, write_report

SPEC = "conv4k3p1 maxpool2 conv8k3p1 linear10"


@pytest.fixture()
def design(tmp_path):
    network = random_network(SPEC, (1, 6, 6), pe=2, simd=2, keep=0.5, seed=3)
    for backend in ("hls", "rtl"):
        generate(backend, network, load_board("pynq-z2"), tmp_path / backend)
    return tmp_path, network


def test_generated_design_nothing_run(design):
    folder, network = design
    report = build_report(folder)
    assert report["inputs"]["ir"] == "rtl/ir"
    assert {v["status"] for v in report["verification"]["views"].values()} == {"not run"}
    assert report["resources"]["measured_fits"] == "not run"
    assert [e["name"] for e in report["layers"]] == [layer.name for layer in network.layers
                                                      if not layer.name.startswith("flatten")]


@pytest.mark.csim
@pytest.mark.rtl
def test_generated_design_csim_and_icarus(design):
    from pyflow.sim.csim import run_csim
    from pyflow.sim.rtl import run_sim

    folder, network = design
    run_csim(folder / "hls", vectors=3)
    sim = run_sim(folder / "rtl", "icarus", vectors=3)
    write_report(folder)
    report = json.loads((folder / "report" / "report.json").read_text())
    views = report["verification"]["views"]
    assert (views["csim"]["status"], views["icarus"]["status"], views["verilator"]["status"]) == \
        ("passed", "passed", "not run")
    layers = {layer.name: layer for layer in network.layers}
    for entry, counters in zip(report["layers"], sim["layers"], strict=True):
        measured = entry["cycles"]["measured"]["icarus"]["value"]
        assert measured == counters["cycles"]
        assert measured == modelled_cycles(layers[entry["name"]]) == entry["cycles"]["modelled"]["value"]
        if "tile_skipping" in entry:
            assert entry["tile_skipping"]["measured"]["icarus"]["value"] == round(
                counters["busy_cycles"] / counters["cycles"], 6)
    assert report["network"]["cycles"]["measured"]["icarus"]["interval_cycles"]["value"] == sim["interval_cycles"]
