"""Generated RTL == golden model on Icarus and Verilator (cocotb bench), and its cycles == the model."""

from __future__ import annotations

import json

import pytest
from test_rtl_cases import DIGITS, FAST, VERILATOR_FAST, Case, sweep

from pyflow.codegen.rtl import generate
from pyflow.sim.rtl import lint, run_sim

pytestmark = pytest.mark.rtl


def _project(case: Case, root) -> object:
    return generate(case.network(), None, root / case.name)


def _check(summary: dict, vectors: int, n_logits: int) -> None:
    assert summary["bit_exact"] is True
    assert summary["mismatches"] == 0
    assert summary["outputs_compared"] == vectors * n_logits
    for layer in summary["layers"]:
        assert layer["cycles"] == layer["modelled_cycles"], layer  # the engine's cycle formula is exact


@pytest.mark.parametrize("case", FAST, ids=lambda c: c.name)
def test_icarus_matches_golden_and_model(case, tmp_path):
    project = _project(case, tmp_path)
    lint(project)
    summary = run_sim(project, "icarus", vectors=3, seed=5)
    _check(summary, 3, case.network().num_classes)
    written = json.loads((project / "sim_icarus.json").read_text())
    assert written == {key: value for key, value in summary.items() if not key.startswith("_")}


def test_verilator_matches_golden_and_model(tmp_path):
    project = _project(VERILATOR_FAST, tmp_path)
    lint(project)
    summary = run_sim(project, "verilator", vectors=6, seed=1)
    _check(summary, 6, 6)
    again = run_sim(project, "verilator", vectors=2, seed=2)  # reuses the build
    assert again["_raw"]["build_seconds"] == 0.0 and again["bit_exact"]


def test_bench_fails_on_one_wrong_golden_value(tmp_path):
    project = _project(FAST[2], tmp_path)
    summary = run_sim(project, "icarus", vectors=2, corrupt=6)
    assert summary["bit_exact"] is False
    assert summary["mismatches"] == 1
    assert summary["_raw"]["first_mismatch"]["image"] == 1 and summary["_raw"]["first_mismatch"]["logit"] == 1


def test_sparse_network_takes_under_030_of_dense_cycles(tmp_path):
    spec = "conv16k3p1 conv16k3p1 linear10"
    sparse = Case("sparse", spec, (1, 8, 8), pe=8, simd=8, keep=0.25, folding={"conv0": (8, 1)})
    dense = Case("dense", spec, (1, 8, 8), pe=8, simd=8, keep=1.0, folding={"conv0": (8, 1)})
    measured = {}
    for case in (sparse, dense):
        summary = run_sim(_project(case, tmp_path), "icarus", vectors=2, stall=0.0)
        assert summary["bit_exact"]
        measured[case.name] = summary
    assert measured["sparse"]["cycles_per_image"] <= 0.3 * measured["dense"]["cycles_per_image"]
    sparse_work = sum(layer["cycles"] for layer in measured["sparse"]["layers"])
    dense_work = sum(layer["cycles"] for layer in measured["dense"]["layers"])
    assert sparse_work <= 0.3 * dense_work


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_digits_network_100_vectors(simulator, tmp_path):
    project = _project(DIGITS, tmp_path)
    lint(project)
    summary = run_sim(project, simulator, vectors=100, seed=7)
    _check(summary, 100, 10)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("case", sweep(), ids=lambda c: c.name)
def test_random_networks_match_golden(case, simulator, tmp_path):
    project = _project(case, tmp_path)
    lint(project)
    summary = run_sim(project, simulator, vectors=4, seed=case.seed)
    _check(summary, 4, case.network().num_classes)


@pytest.mark.parametrize("case", FAST[1:], ids=lambda c: c.name)
def test_interval_equals_the_model_without_stalls(case, tmp_path):
    """With the streams never stalled, images leave every `interval` cycles exactly: the slowest engine and
    the cycle it starts on, or a stream (flatten-first: the input stream of C·H·W beats sets it)."""
    from pyflow.hw.cycles import interval_cycles

    project = _project(case, tmp_path)
    summary = run_sim(project, "icarus", vectors=4, seed=3, stall=0.0)
    assert summary["bit_exact"]
    assert summary["interval_cycles"] == interval_cycles(case.network())
    sizing = json.loads((project / "sizing.json").read_text())
    assert sizing["cycles"]["interval"] == interval_cycles(case.network())
