"""Yosys synthesis of a generated RTL project: `synth_xilinx -noiopad`, hierarchy kept, `stat -json`.

Writes ``yosys.json`` (notes/contracts.md) into the project. The hierarchy is kept so the DSP cells of
the PE array (pf_pe_lanes and its adder trees) can be counted apart from the requantizers' multipliers.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from pyflow.artifacts import YOSYS_FILE, write_json
from pyflow.errors import PyflowError

PART_FAMILY = "xilinx (synth_xilinx -noiopad)"
PE_MODULES = ("pf_pe_lanes", "pf_adder_tree")
FF_PREFIXES = ("FD",)
LUT_PREFIXES = ("LUT",)
CARRY_PREFIXES = ("CARRY", "MUXCY", "XORCY")
DSP_PREFIXES = ("DSP",)
# LUTs used as memory (distributed RAM, shift registers) count against the LUT budget.
LUTS_PER_MEMORY_CELL = {"RAM32M": 4, "RAM64M": 4, "RAM128X1D": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM32X1S": 1,
                        "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1}


def script(sources: list[Path], top: str, parameters: dict[str, int] | None = None,
           counted: tuple[str, ...] = PE_MODULES) -> str:
    """Synthesize hierarchically, count the PE modules' DSPs, then flatten for the totals.

    (Yosys 0.23's `stat -json` writes broken JSON for a hierarchical design, hence the flatten.)
    """
    files = " ".join(str(path) for path in sources)
    chparams = "".join(f" -chparam {key} {value}" for key, value in sorted((parameters or {}).items()))
    pe_dsp = " ".join(f"*{module}*/t:DSP*" for module in counted)
    return (f"read_verilog -defer {files}\n"
            f"hierarchy -top {top}{chparams}\n"
            f"synth_xilinx -noiopad\n"
            f"tee -q -o pe_dsp.txt select -count {pe_dsp}\n"
            f"flatten\n"
            f"tee -q -o yosys_stat.json stat -json\n")


def yosys_version() -> str:
    from pyflow.tools import version_of

    return version_of("yosys") or "unknown"


def _count(cells: dict[str, int], prefixes: tuple[str, ...]) -> int:
    return sum(count for cell, count in cells.items() if cell.lstrip("$_").startswith(prefixes))


def summarize(stat: dict[str, Any], top: str, pe_dsp: int) -> dict[str, Any]:
    """Cells by resource; ``LUT`` counts logic LUTs plus the LUTs of LUT RAM and shift registers."""
    cells = {key: int(value) for key, value in stat["design"].get("num_cells_by_type", {}).items()}
    lut_memory = sum(LUTS_PER_MEMORY_CELL.get(cell, 0) * count for cell, count in cells.items())
    bram = sum(count for cell, count in cells.items() if cell.startswith("RAMB36")) + \
        0.5 * sum(count for cell, count in cells.items() if cell.startswith("RAMB18"))
    return {
        "yosys_version": yosys_version(), "top": top, "part_family": PART_FAMILY,
        "cells": {"LUT": _count(cells, LUT_PREFIXES) + lut_memory, "FF": _count(cells, FF_PREFIXES),
                  "CARRY": _count(cells, CARRY_PREFIXES), "BRAM36": bram, "DSP": _count(cells, DSP_PREFIXES)},
        "pe_array_dsp": pe_dsp, "raw_cell_types": dict(sorted(cells.items())),
    }


class SynthesisTimeout(PyflowError):
    """Yosys ran past its time limit and was stopped."""


def run_script(script_file: Path, cwd: Path, log: Path, what: str, outputs: list[Path],
               timeout: float | None = None) -> None:
    """Run a Yosys script in ``cwd`` (where $readmemh paths are relative to), logging to ``log``; a one-line
    error when it fails or leaves one of ``outputs`` unwritten, SynthesisTimeout after ``timeout`` seconds."""
    try:
        result = subprocess.run(["yosys", "-q", "-l", str(log.resolve()), "-s", str(script_file.resolve())],
                                cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthesisTimeout(f"{cwd}: yosys {what} did not finish within {timeout:g} s (stopped; see {log})"
                               ) from None
    if result.returncode != 0 or not all(path.is_file() for path in outputs):
        raise PyflowError(f"{cwd}: yosys {what} failed: {(result.stderr or result.stdout).strip()[:300]}"
                          f" (see {log})")


def run_yosys(sources: list[Path], top: str, workdir: Path, parameters: dict[str, int] | None = None,
              counted: tuple[str, ...] = PE_MODULES, timeout: float | None = None) -> tuple[dict[str, Any], int]:
    """Synthesize ``sources`` (cwd ``workdir``: $readmemh paths are relative to it).

    Returns the flattened design's `stat -json` and the DSP cells inside the ``counted`` modules.
    """
    from pyflow.tools import require

    require("yosys")
    stat_file = workdir / "yosys_stat.json"
    (workdir / "synth.ys").write_text(script([path.resolve() for path in sources], top, parameters, counted))
    run_script(workdir / "synth.ys", workdir, workdir / "yosys.log", "synth_xilinx", [stat_file], timeout)
    count = re.search(r"(\d+) objects", (workdir / "pe_dsp.txt").read_text())
    return json.loads(stat_file.read_text()), int(count.group(1)) if count else 0


def synthesize(rtl_dir: str | Path, timeout: float | None = None) -> dict[str, Any]:
    """Synthesize the project's top with Yosys (stopped after ``timeout`` seconds); writes and returns yosys.json."""
    from pyflow.sim.rtl import TOP, project_dir, sources

    project = project_dir(rtl_dir)
    start = time.perf_counter()
    stat, pe_dsp = run_yosys(sources(project), TOP, project / "verilog", timeout=timeout)
    summary = summarize(stat, TOP, pe_dsp)
    write_json(project / YOSYS_FILE, summary)
    summary["_seconds"] = time.perf_counter() - start
    return summary


def synthesize_module(library: Path, top: str, parameters: dict[str, int], workdir: Path,
                      counted: tuple[str, ...] = PE_MODULES) -> dict[str, Any]:
    """Synthesize one hand-written module of rtl_templates/ alone (e.g. the PE lane group);
    ``pe_array_dsp`` then counts the DSP cells inside the ``counted`` modules."""
    workdir.mkdir(parents=True, exist_ok=True)
    stat, pe_dsp = run_yosys(sorted(library.resolve().glob("pf_*.v")), top, workdir, parameters, counted)
    return summarize(stat, top, pe_dsp)
