"""Out-of-context synthesis: units (dedup by parameters and ROM contents), the sum, the limits."""

from __future__ import annotations

import json

import pytest
from test_rtl_cases import VERILATOR_FAST

from pyflow.codegen.rtl import generate
from pyflow.errors import PyflowError
from pyflow.sim import ooc
from pyflow.sim.yosys import SynthesisMemoryLimit, SynthesisTimeout, synthesize

LIBRARY = "module pf_rom #(parameter N = 1, parameter F = \"a.mem\") (input wire clk, output wire [N-1:0] q);\n" \
          "endmodule\n"


def _top(instances: list[tuple[str, str, str]]) -> str:
    blocks = "".join(f"    pf_rom #(\n        .N({n}),\n        .F(\"{f}\")\n    ) {name} (\n"
                     f"        .clk(clk)\n    );\n" for name, n, f in instances)
    return f"module pyflow_top (input wire clk);\n{blocks}endmodule\n"


def _folder(tmp_path, instances, files):
    (tmp_path / "pf_rom.v").write_text(LIBRARY)
    (tmp_path / "pyflow_top.v").write_text(_top(instances))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    modules = ooc.library_modules(tmp_path, "pyflow_top")
    return ooc.units(tmp_path, ooc.top_instances(tmp_path, "pyflow_top", modules))


def test_identical_parameters_and_rom_contents_are_one_unit(tmp_path):
    found = _folder(tmp_path, [("u_a", "4", "a.mem"), ("u_b", "4", "b.mem"), ("u_c", "4", "c.mem"),
                               ("u_d", "8", "a.mem")], {"a.mem": "1\n2\n", "b.mem": "1\n2\n", "c.mem": "1\n3\n"})
    assert [unit.instances for unit in found] == [("u_a", "u_b"), ("u_c",), ("u_d",)]
    assert found[0].name == "u_a" and found[0].module == "pf_rom"


def test_a_string_parameter_goes_to_chparam_as_its_bytes():
    assert ooc.chparam_value('"ab.mem"') == "48'h61622e6d656d"
    assert ooc.chparam_value("12") == "12"


def test_a_parameter_expression_is_refused_naming_the_instance(tmp_path):
    (tmp_path / "pf_rom.v").write_text(LIBRARY)
    (tmp_path / "pyflow_top.v").write_text(_top([("u_a", "4", "a.mem")]).replace(".N(4)", ".N(2 + 2)"))
    with pytest.raises(PyflowError, match=r"pyflow_top.v: instance u_a: parameter N = 2 \+ 2 is not a number"):
        ooc.top_instances(tmp_path, "pyflow_top", ooc.library_modules(tmp_path, "pyflow_top"))


def test_the_blackboxes_keep_headers_only(tmp_path):
    (tmp_path / "pf_rom.v").write_text(LIBRARY.replace("endmodule", "    assign q = 0;\nendmodule"))
    text = ooc.blackboxes(ooc.library_modules(tmp_path, "pyflow_top"))
    assert text.startswith("(* blackbox *)\nmodule pf_rom") and "assign" not in text


@pytest.fixture()
def project(tmp_path):
    return generate(VERILATOR_FAST.network(), None, tmp_path / "p")


@pytest.mark.yosys
def test_time_limit_stops_yosys_with_one_line_naming_the_unit(project):
    with pytest.raises(SynthesisTimeout) as caught:
        synthesize(project, timeout=0.3, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "did not finish within 0.3 s (stopped; see" in message
    assert "synth_xilinx of u_" in message or "synth_xilinx of (glue)" in message
    assert not (project / "yosys.json").exists()


@pytest.mark.yosys
def test_memory_limit_stops_yosys_with_one_line_naming_the_unit(project):
    with pytest.raises(SynthesisMemoryLimit) as caught:
        synthesize(project, memory_mb=64, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "passed its memory limit of 64 MB" in message and "synth_xilinx of " in message
    assert not (project / "yosys.json").exists()


def test_limits_are_checked():
    from pyflow.sim.yosys_run import Limits

    with pytest.raises(PyflowError, match="memory limit: must be at least 64 MB, got 10"):
        Limits(None, 10)
    with pytest.raises(PyflowError, match="time limit: must be positive"):
        Limits(0.0)


def _differences(a: dict, b: dict, tolerance: float) -> list[str]:
    return [key for key in ("LUT", "FF", "BRAM36", "DSP")
            if abs(a[key] - b[key]) > tolerance * max(a[key], b[key], 1)]


def test_the_comparison_sees_a_wrong_count():
    counts = {"LUT": 1000, "FF": 800, "BRAM36": 2.0, "DSP": 4}
    assert _differences(counts, dict(counts), 0.02) == []
    assert _differences(counts, {**counts, "FF": 900}, 0.02) == ["FF"]


@pytest.mark.yosys
@pytest.mark.slow
def test_out_of_context_sum_matches_the_whole_top_and_units_are_reused(project):
    """The hierarchy is kept by synth_xilinx, so the units alone map as they do inside the top."""
    whole = synthesize(project, method="top", progress=False)
    summed = synthesize(project, progress=False)
    assert _differences(summed["cells"], whole["cells"], 0.02) == [], (summed["cells"], whole["cells"])
    written = json.loads((project / "yosys.json").read_text())
    rows = written["engines"]
    assert written["instances"] == len(rows) and written["units"] == len({row["unit"] for row in rows})
    for key in ("LUT", "FF", "DSP"):
        assert written["cells"][key] == sum(row["cells"][key] for row in rows)
    again = synthesize(project, progress=False)
    assert all(row["reused"] and row["seconds"] == 0.0 for row in again["engines"] if row["unit"] == row["instance"])
    assert again["cells"] == summed["cells"]
