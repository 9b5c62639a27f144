"""Residual networks in RTL: forks, skip buffers and add engines == golden model, cycles == the model.

The skip buffer's banks come from the cycle model (pyflow.hw.cycles.bank_plan). A bank holds a whole
image, so too few banks cannot deadlock the pipeline: they stall the fork's producer, and the bench
measures the longer interval — shown here by building the same network with two banks everywhere.
"""

from __future__ import annotations

import math
import re

import pytest

from pyflow.codegen.rtl import generate
from pyflow.hw import cycles
from pyflow.random_ir import random_network
from pyflow.sim.rtl import lint, run_sim

pytestmark = pytest.mark.rtl

CASES = {
    "identity-and-projection": ("conv8k3p1 res8 res16s2 avgpool2 linear10", (1, 8, 8), 4, 4),
    "block-on-input": ("res4 maxpool2 res4 conv3k1", (4, 6, 6), 3, 2),
}
DEEP_SKIP = ("conv8k3p1 res8 linear4", (1, 8, 8), 2, 4)  # the identity skip needs 3 banks


def _network(spec, shape, pe, simd, seed=1):
    return random_network(spec, shape, pe=pe, simd=simd, keep=0.5, seed=seed)


def _exact(summary, network, vectors):
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
    assert summary["outputs_compared"] == vectors * math.prod(network.layers[-1].out_shape)
    for layer in summary["layers"]:
        assert layer["cycles"] == layer["modelled_cycles"], layer


@pytest.mark.parametrize("name", CASES)
def test_residual_network_matches_golden_and_the_model(name, tmp_path):
    network = _network(*CASES[name])
    project = generate(network, None, tmp_path / name)
    summary = run_sim(project, "icarus", vectors=4, seed=2, stall=0.0)
    _exact(summary, network, 4)
    assert {layer["name"] for layer in summary["layers"]} >= {"res1" if name != "block-on-input" else "res0"}
    assert summary["interval_cycles"] == cycles.interval_cycles(network)


def test_residual_network_on_verilator_lints_and_matches(tmp_path):
    network = _network(*CASES["identity-and-projection"])
    project = generate(network, None, tmp_path / "v")
    lint(project)
    _exact(run_sim(project, "verilator", vectors=3, seed=4), network, 3)


def test_the_skip_buffer_gets_its_banks_and_fewer_stretch_the_interval(tmp_path, monkeypatch):
    network = _network(*DEEP_SKIP)
    banks, why = cycles.bank_plan(network)["res1", 1]
    assert banks >= 3
    project = generate(network, None, tmp_path / "planned")
    top = (project / "verilog" / "pyflow_top.v").read_text()
    assert f".BANKS({banks})" in top and why in top  # the derivation is written beside the buffer
    planned = run_sim(project, "icarus", vectors=5, seed=1, stall=0.0)
    _exact(planned, network, 5)
    assert planned["interval_cycles"] == cycles.interval_cycles(network)

    plan = cycles.bank_plan(network)
    monkeypatch.setattr(cycles, "bank_plan", lambda _: {key: (2, "forced: two banks") for key in plan})
    short = generate(network, None, tmp_path / "two-banks")
    assert ".BANKS(" not in (short / "verilog" / "pyflow_top.v").read_text()
    stalled = run_sim(short, "icarus", vectors=5, seed=1, stall=0.0)
    assert stalled["bit_exact"] is True  # no deadlock and no wrong value: only slower
    assert stalled["interval_cycles"] > cycles.interval_cycles(network)


def test_a_wrong_add_multiplier_is_caught(tmp_path):
    network = _network(*CASES["identity-and-projection"])
    project = generate(network, None, tmp_path / "bug")
    top = project / "verilog" / "pyflow_top.v"
    text, count = re.subn(r"\.M_A\(16'sd(\d+)\)", lambda m: f".M_A(16'sd{int(m.group(1)) + 3})",
                          top.read_text(), count=1)
    assert count == 1
    top.write_text(text)
    summary = run_sim(project, "icarus", vectors=3, seed=2, stall=0.0)
    assert summary["bit_exact"] is False and summary["mismatches"] > 0


def test_logits_clamped_at_zero_in_every_view(tmp_path):
    """A model ending in ReLU: the output layer's `relu` clamps the logits at 0 in C-sim, Icarus and
    Verilator alike; with the clamp removed from the generated RTL the bench sees the negative logits."""
    from pyflow import fuzz

    case = fuzz.FuzzCase("conv4k3p1 maxpool2 linear6r", (1, 6, 6), pe=2, simd=2, keep=1.0, a_bits=8, seed=3)
    outcome = fuzz.check_case(case, fuzz.Options(vectors=4), tmp_path / "views")
    assert outcome.passed, outcome.failures
    project = generate(case.network(), None, tmp_path / "planted")
    top = project / "verilog" / "pyflow_top.v"
    assert top.read_text().count(".RELU(1)") == 1
    top.write_text(top.read_text().replace(".RELU(1)", ".RELU(0)"))
    assert run_sim(project, "icarus", vectors=4, seed=3, stall=0.0)["mismatches"] > 0
