"""The netlist view: Yosys's generic `synth -flatten` netlist of the generated top == golden model on Icarus,
through the same cocotb bench and vectors as the RTL, and cycle for cycle the same as the RTL."""

from __future__ import annotations

import json

import pytest
from test_rtl_cases import DIGITS, FAST, Case, sweep

from pyflow.cli import main
from pyflow.codegen.rtl import generate
from pyflow.errors import PyflowError
from pyflow.sim.netlist import NETLIST_DIR, NETLIST_FILE, netlist_cells, run_netlist
from pyflow.sim.rtl import run_sim
from pyflow.sim.yosys import SynthesisTimeout

pytestmark = [pytest.mark.rtl, pytest.mark.yosys]

# The smallest FAST case: Yosys takes ~20 s on it (a 4-layer case takes over 2 min). Before the PE pipeline's
# valid bit was cleared under rst this netlist went X three cycles after reset (the RTL hid it).
SMALL = FAST[3]


def small_sweep(count: int = 10, seed: int = 4321) -> list[Case]:
    """Seeded random networks over the knobs of test_rtl_cases.sweep (kernel 1/3, stride 1/2, padding 0/1,
    max/avg pooling, kept 0/30/100 %, a_bits 4/8, PE/SIMD up to 9) on small images: the feature-map buffers
    become flip-flops, and Yosys's time grows with them (a 4x9x9 sweep case took 20 min here, against ~1-2)."""
    return sweep(count, seed, name="small", c_in=(1, 3), sizes=(4, 6), channels=((2, 7), (2, 6), (2, 7)),
                 lanes=(1, 10), pinned_sizes={(3, 2): 6})  # k3 s2 needs 6 pixels to leave the pool a window


def test_small_sweep_covers_the_knobs():
    cases = small_sweep()
    networks = [case.network() for case in cases]
    matrices = [layer for network in networks for layer in network.matrix_layers]
    assert len(cases) >= 10
    assert {layer.kernel for layer in matrices} == {1, 3}
    assert {layer.stride for layer in matrices} == {1, 2}
    assert {layer.padding for layer in matrices} == {0, 1}
    assert {case.keep for case in cases} == {0.0, 0.3, 1.0} and {case.a_bits for case in cases} == {4, 8}
    assert {case.spec.split()[1][:7] for case in cases} == {"maxpool", "avgpool"}


def _project(case: Case, root) -> object:
    return generate(case.network(), None, root / case.name)


def _check(summary: dict, vectors: int, n_logits: int) -> None:
    assert summary["view"] == "netlist"
    assert summary["bit_exact"] is True
    assert summary["mismatches"] == 0
    assert summary["outputs_compared"] == vectors * n_logits


def _same_cycles(netlist: dict, rtl: dict) -> None:
    """Same seed, same stalls: the netlist must take exactly the RTL's cycles, layer by layer."""
    for key in ("total_cycles", "cycles_per_image", "interval_cycles", "layers"):
        assert netlist[key] == rtl[key], key


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    project = _project(SMALL, tmp_path_factory.mktemp("netlist"))
    return project, run_netlist(project, vectors=3, seed=5)


def test_small_netlist_matches_golden_and_the_rtl(small):
    small, summary = small
    _check(summary, 3, SMALL.network().num_classes)
    written = json.loads((small / "sim_netlist.json").read_text())
    assert written == {key: value for key, value in summary.items() if not key.startswith("_")}
    rtl = run_sim(small, "icarus", vectors=3, seed=5)
    rtl_written = json.loads((small / "sim_icarus.json").read_text())
    assert set(written) - set(rtl_written) == {"view", "yosys_version"} and set(rtl_written) <= set(written)
    assert written["yosys_version"].startswith("Yosys")
    _same_cycles(summary, rtl)


def test_the_netlist_holds_the_roms_and_is_reused(small):
    small, _ = small
    text = (small / NETLIST_DIR / NETLIST_FILE).read_text()
    assert "$readmemh" not in text and "initial" not in text  # the ROM words are constants in the gates
    assert "module pyflow_top" in text and text.count("module ") == 1  # flat
    cells = netlist_cells(small)
    assert cells and all(cell.startswith("$_") for cell in cells)  # Yosys's gate cells only
    again = run_netlist(small, vectors=1, seed=2)
    assert again["_raw"]["synth_seconds"] == 0.0 and again["_raw"]["build_seconds"] == 0.0
    assert again["bit_exact"]


def test_netlist_bench_fails_on_one_wrong_golden_value(small):
    small, _ = small
    summary = run_netlist(small, vectors=2, corrupt=13)
    assert summary["bit_exact"] is False
    assert summary["mismatches"] == 1
    assert summary["_raw"]["first_mismatch"]["image"] == 1 and summary["_raw"]["first_mismatch"]["logit"] == 3


def test_cli_netlist(small, capsys):
    small, _ = small
    assert main(["sim", str(small), "--netlist", "--vectors", "1"]) == 0  # icarus is the default with --netlist
    assert "PASS: icarus netlist:" in capsys.readouterr().out
    assert main(["sim", str(small), "--sim", "verilator", "--netlist"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--sim icarus --netlist" in error


def test_netlist_refuses_verilator_and_no_vectors(small):
    small, _ = small
    with pytest.raises(PyflowError, match="icarus only"):
        run_netlist(small, simulator="verilator")
    with pytest.raises(PyflowError, match="at least 1"):
        run_netlist(small, vectors=0)


@pytest.mark.slow
def test_digits_netlist_matches_golden_and_the_rtl(tmp_path):
    project = _project(DIGITS, tmp_path)
    summary = run_netlist(project, vectors=10, seed=7)
    _check(summary, 10, 10)
    _same_cycles(summary, run_sim(project, "icarus", vectors=10, seed=7))


@pytest.mark.slow
@pytest.mark.parametrize("case", small_sweep(), ids=lambda c: c.name)
def test_random_netlists_match_golden_and_the_rtl(case, tmp_path):
    project = _project(case, tmp_path)
    summary = run_netlist(project, vectors=3, seed=case.seed)
    _check(summary, 3, case.network().num_classes)
    _same_cycles(summary, run_sim(project, "icarus", vectors=3, seed=case.seed))


def test_yosys_time_limit_stops_it_and_leaves_no_netlist(tmp_path):
    project = _project(FAST[2], tmp_path)
    with pytest.raises(SynthesisTimeout, match="did not finish within 0.5 s"):
        run_netlist(project, vectors=1, timeout=0.5)
    assert not (project / NETLIST_DIR / NETLIST_FILE).exists() and not (project / "sim_netlist.json").exists()
