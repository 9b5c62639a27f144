"""Unit benches of the hand-written Verilog (rtl_templates/) against NumPy, parametrized over SIMD, PE and
bit widths (cocotb runner, Icarus); plus Yosys: the PE lane group maps to no DSP cell."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pyflow.artifacts import project_root
from pyflow.hw.engines import tree_latency
from pyflow.hw.sizing import lane_banks

LIBRARY = project_root() / "rtl_templates"
BENCHES = project_root() / "rtl_tests"


def clog2(value: int) -> int:
    return max(0, int(value - 1).bit_length())


def run_unit(top: str, testcase: str, parameters: dict[str, int], folder: Path, corrupt: bool = False) -> int:
    """Build ``top`` with ``parameters`` on Icarus and run one bench; returns the number of failed tests."""
    from cocotb_tools.runner import get_results, get_runner

    sources = sorted(LIBRARY.glob("pf_*.v")) + ([BENCHES / "tb_pool.v"] if top == "tb_pool" else [])
    runner = get_runner("icarus")
    runner.build(sources=sources, hdl_toplevel=top, build_dir=folder, parameters=parameters, always=True,
                 log_file=folder / "build.log")
    env = {f"PYFLOW_P_{key}": str(value) for key, value in parameters.items()}
    env["PYFLOW_CORRUPT"] = str(int(corrupt))
    if str(BENCHES) not in sys.path:
        sys.path.insert(0, str(BENCHES))
    results = folder / "results.xml"
    try:
        runner.test(hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module="test_units", testcase=testcase,
                    build_dir=folder, test_dir=folder, extra_env={**os.environ, **env}, results_xml=str(results),
                    log_file=folder / "sim.log")
    except SystemExit:
        pass  # a failing bench makes the runner exit under pytest; the results file says what failed
    total, failed = get_results(results)
    assert total == 1
    return failed


pytestmark = pytest.mark.rtl


SLOW = pytest.mark.slow


@pytest.mark.parametrize("pe,simd,in_bits", [(1, 1, 8), (3, 5, 4), (8, 8, 8), pytest.param(4, 16, 8, marks=SLOW),
                                             pytest.param(7, 3, 8, marks=SLOW), pytest.param(2, 9, 4, marks=SLOW)])
def test_pe_lanes_against_numpy(pe, simd, in_bits, tmp_path):
    params = {"PE": pe, "SIMD": simd, "IN_BITS": in_bits, "SUM_W": in_bits + 1 + clog2(simd)}
    assert run_unit("pf_pe_lanes", "pe_lanes", params, tmp_path) == 0


@pytest.mark.parametrize("n", [1, 5, 16] + [pytest.param(n, marks=SLOW) for n in (2, 3, 8, 13)])
def test_adder_tree_against_numpy(n, tmp_path):
    params = {"N": n, "W": 12, "H": clog2(n), "ROOT": 1}
    assert run_unit("pf_adder_tree", "adder_tree", params, tmp_path) == 0
    assert tree_latency(n) == max(1, -(-clog2(n) // 2))


@pytest.mark.parametrize("lanes,acc_bits,shift,is_output,out_bits",
                         [(4, 12, 8, 0, 8), (2, 18, 0, 1, 32), pytest.param(3, 20, 12, 0, 4, marks=SLOW),
                          pytest.param(1, 9, 0, 0, 8, marks=SLOW)])
def test_requantizer_against_python_ints(lanes, acc_bits, shift, is_output, out_bits, tmp_path):
    params = {"LANES": lanes, "ACC_BITS": acc_bits, "M_BITS": 16, "RQ_W": max(acc_bits + 17, out_bits + 2),
              "SHIFT": shift, "OUT_BITS": out_bits, "IS_OUTPUT": is_output}
    assert run_unit("pf_requant", "requant", params, tmp_path) == 0


POOLS = [(3, 6, 2, 2, 1, 8), (5, 7, 3, 2, 0, 8), pytest.param(1, 4, 2, 1, 0, 4, marks=SLOW),
         pytest.param(4, 5, 2, 1, 1, 4, marks=SLOW)]


@pytest.mark.parametrize("c,size,k,s,is_max,bits", POOLS)
def test_pooling_against_numpy(c, size, k, s, is_max, bits, tmp_path):
    out = (size - k) // s + 1
    sum_bits = (k * k * ((1 << bits) - 1)).bit_length()
    params = {"C": c, "H_IN": size, "W_IN": size, "H_OUT": out, "W_OUT": out, "KERNEL": k, "STRIDE": s,
              "BITS": bits, "IS_MAX": is_max, "SUM_BITS": sum_bits, "RQ_W": sum_bits + 18, "M": 1400 + 37 * c,
              "B": -300 * c, "SHIFT": 12, "IN_AW": clog2(size * size * c), "OUT_AW": max(1, clog2(out * out * c))}
    params["LB"], params["RW"] = lane_banks(size * size * c, c)
    assert run_unit("tb_pool", "pool", params, tmp_path) == 0


@pytest.mark.parametrize("top,testcase,params", [
    ("pf_pe_lanes", "pe_lanes", {"PE": 3, "SIMD": 5, "IN_BITS": 4, "SUM_W": 8}),
    ("pf_requant", "requant", {"LANES": 2, "ACC_BITS": 12, "M_BITS": 16, "RQ_W": 29, "SHIFT": 4, "OUT_BITS": 8,
                               "IS_OUTPUT": 0}),
    ("tb_pool", "pool", {"C": 2, "H_IN": 4, "W_IN": 4, "H_OUT": 2, "W_OUT": 2, "KERNEL": 2, "STRIDE": 2, "BITS": 8,
                         "IS_MAX": 1, "SUM_BITS": 10, "RQ_W": 28, "M": 1, "B": 0, "SHIFT": 0, "IN_AW": 5,
                         "OUT_AW": 3, "LB": 1, "RW": 4}),
])
def test_unit_benches_fail_on_one_wrong_expected_value(top, testcase, params, tmp_path):
    assert run_unit(top, testcase, params, tmp_path, corrupt=True) == 1


@pytest.mark.yosys
@pytest.mark.parametrize("pe,simd", [(8, 8), pytest.param(5, 3, marks=SLOW)])
def test_pe_lane_group_synthesizes_without_dsp(pe, simd, tmp_path):
    from pyflow.sim.yosys import synthesize_module

    params = {"PE": pe, "SIMD": simd, "IN_BITS": 8, "SUM_W": 9 + clog2(simd)}
    summary = synthesize_module(LIBRARY, "pf_pe_lanes", params, tmp_path)
    assert summary["cells"]["DSP"] == 0 and summary["pe_array_dsp"] == 0
    assert summary["cells"]["LUT"] > 0 and summary["cells"]["FF"] >= pe * simd * 9


@pytest.mark.yosys
def test_yosys_dsp_count_sees_a_multiplier(tmp_path):
    """The DSP counter is not blind: the requantizer's acc*m does map to DSP cells."""
    from pyflow.sim.yosys import synthesize_module

    params = {"LANES": 2, "ACC_BITS": 16, "M_BITS": 16, "RQ_W": 33, "SHIFT": 8, "OUT_BITS": 8, "IS_OUTPUT": 0}
    summary = synthesize_module(LIBRARY, "pf_requant", params, tmp_path, counted=("pf_requant",))
    assert summary["cells"]["DSP"] >= 2 and summary["pe_array_dsp"] >= 2


@pytest.mark.yosys
def test_generated_top_synthesizes_and_its_pe_array_has_no_dsp(tmp_path):
    """The whole generated top: no DSP in the PE array, feature buffers in LUT RAM (not register files)."""
    import json

    from test_rtl_cases import VERILATOR_FAST

    from pyflow.codegen.rtl import generate
    from pyflow.sim.yosys import synthesize

    project = generate(VERILATOR_FAST.network(), None, tmp_path / "p")
    summary = synthesize(project)
    written = json.loads((project / "yosys.json").read_text())
    assert written == {key: value for key, value in summary.items() if not key.startswith("_")}
    assert summary["pe_array_dsp"] == 0
    assert summary["cells"]["LUT"] > 0 and summary["cells"]["FF"] > 0
    assert summary["part_family"] == "xilinx (synth_xilinx -noiopad)"
    assert any(cell.startswith(("RAM32M", "RAM64M")) for cell in summary["raw_cell_types"])
    assert summary["cells"]["FF"] < 10_000


@pytest.mark.yosys
def test_yosys_is_stopped_at_its_time_limit(tmp_path):
    from test_rtl_cases import VERILATOR_FAST

    from pyflow.codegen.rtl import generate
    from pyflow.sim.yosys import SynthesisTimeout, synthesize

    project = generate(VERILATOR_FAST.network(), None, tmp_path / "p")
    with pytest.raises(SynthesisTimeout, match=r"did not finish within 0.2 s \(stopped; see .*yosys.log\)"):
        synthesize(project, timeout=0.2)
    assert not (project / "yosys.json").exists()


@pytest.mark.yosys
@pytest.mark.slow
def test_a_large_feature_map_goes_to_block_ram(tmp_path):
    """32x32x16 elements between conv and pool: the registered lane memories become RAMB18/36."""
    from pyflow.codegen.rtl import generate
    from pyflow.random_ir import random_network
    from pyflow.sim.yosys import synthesize

    network = random_network("conv16k3p1 maxpool2 linear10", (3, 32, 32), pe=8, simd=4, keep=0.25, seed=0)
    summary = synthesize(generate(network, None, tmp_path / "p"))
    assert summary["cells"]["BRAM36"] >= 8 and summary["pe_array_dsp"] == 0
