"""`pyflow sim OUT --sim icarus --netlist`: the cocotb bench on the netlist Yosys synthesizes from the RTL.

A fourth verification view beside the golden model, the C simulation and the RTL: a generic Yosys
`synth -flatten` of the generated top (no vendor library, so the netlist is Yosys's internal gate cells
and flip-flops, written back as Verilog) is simulated by the same bench with the same vectors as the RTL.
It checks what the RTL simulators cannot: that a synthesizer reads the RTL as they do (initial blocks,
$readmemh ROMs, X and reset behaviour, widths, signedness).

The $readmemh ROMs are read by Yosys (cwd verilog/, MEM_DIR left empty, as pyflow.sim.yosys does);
`memory_map` turns each into flip-flops that are never written, and `opt_dff` replaces those by their
initial value, so the ROM contents are constants inside the netlist and it needs no .mem file. The
feature-map buffers become flip-flops with write-enable muxes.

The netlist (``netlist/netlist.v``) is rebuilt only when the generated sources, the script or Yosys
change; ``sim_netlist.json`` has the fields of sim_<simulator>.json plus ``view`` and ``yosys_version``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from pyflow.artifacts import sim_file, write_json
from pyflow.errors import PyflowError

NETLIST_DIR = "netlist"
NETLIST_FILE = "netlist.v"
# Verilator simulates the netlist bit-exactly too (with -Wno-UNOPTFLAT: the bit-level netlist has false
# combinational loops), but its C++ build of a 7k-cell netlist took 190 s against 3 s for Icarus: not offered.
NETLIST_SIMULATORS = ("icarus",)


def script(sources: list[str], top: str, netlist: str) -> str:
    """Generic synthesis, flattened; `stat -json` is whole (a flat design), `-noattr` drops source locations;
    the ``$scopeinfo`` cells (names of the flattened instances, not logic) are deleted."""
    return (f"read_verilog -defer {' '.join(sources)}\n"
            f"hierarchy -top {top}\n"
            f"synth -flatten -top {top}\n"
            f"delete t:$scopeinfo\n"  # Yosys >= 0.4x keeps the flattened hierarchy's names as cells
            f"tee -q -o {netlist}.stat.json stat -json\n"
            f"write_verilog -noattr {netlist}.tmp\n")


def _fingerprint(project: Path, text: str) -> str:
    from pyflow.sim.yosys_run import yosys_version

    digest = hashlib.sha256(f"{yosys_version()}\n{text}".encode())
    for path in sorted((project / "verilog").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def synthesize_netlist(project: Path, timeout: float | None = None) -> tuple[Path, float]:
    """Synthesize (or reuse) the flat netlist of ``project``'s top; returns its path and the Yosys seconds
    (0 when reused). Yosys is stopped after ``timeout`` seconds (pyflow.sim.yosys_run.SynthesisTimeout)."""
    from pyflow.sim.rtl import TOP, sources
    from pyflow.sim.yosys_run import Limits, relative, run_script
    from pyflow.tools import require

    require("yosys")
    out = project / NETLIST_DIR
    netlist, stamp = out / NETLIST_FILE, out / "pyflow.fingerprint"
    # cwd is verilog/: the $readmemh file names are relative to it (and Yosys sees relative paths only)
    text = script([path.name for path in sources(project)], TOP, relative(netlist, project / "verilog"))
    fingerprint, timescale = _fingerprint(project, text), _timescale(project)
    if netlist.is_file() and stamp.is_file() and stamp.read_text() == fingerprint:
        return netlist, 0.0
    out.mkdir(parents=True, exist_ok=True)
    netlist.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    (out / "synth.ys").write_text(text)
    start = time.perf_counter()
    run_script(out / "synth.ys", project / "verilog", out / "yosys.log", "synth -flatten",
               [Path(f"{netlist}.tmp")], Limits(timeout))
    temporary = Path(f"{netlist}.tmp")
    # write_verilog drops the `timescale of the sources; the bench's 10 ns clock needs it back
    temporary.write_text(timescale + temporary.read_text())
    os.replace(temporary, netlist)  # a netlist is there whole or not at all
    stamp.write_text(fingerprint)
    return netlist, time.perf_counter() - start


def _timescale(project: Path) -> str:
    from pyflow.sim.rtl import TOP

    lines = (project / "verilog" / f"{TOP}.v").read_text().splitlines()
    line = next((line for line in lines if line.startswith("`timescale")), None)
    if line is None:
        raise PyflowError(f"{project}: verilog/{TOP}.v has no `timescale line; regenerate it with `pyflow generate`")
    return line + "\n"


def netlist_cells(project: Path) -> dict[str, int]:
    """Cells of the synthesized netlist by Yosys cell type (from its `stat -json`)."""
    stat = json.loads((project / NETLIST_DIR / f"{NETLIST_FILE}.stat.json").read_text())
    return {key: int(value) for key, value in sorted(stat["design"]["num_cells_by_type"].items())}


def run_netlist(project_dir_: str | Path, vectors: int = 20, seed: int = 0, simulator: str = "icarus",
                waves: bool = False, stall: float = 0.2, corrupt: int | None = None,
                timeout: float | None = None) -> dict[str, Any]:
    """Synthesize the project's netlist and run the cocotb bench on it; writes and returns sim_netlist.json.

    ``corrupt`` falsifies one expected logit (as in pyflow.sim.rtl.run_sim); ``timeout`` limits Yosys.
    """
    from pyflow.sim.rtl import project_dir, run_bench, summarize
    from pyflow.sim.yosys_run import yosys_version
    from pyflow.tools import require

    if simulator not in NETLIST_SIMULATORS:
        raise PyflowError(f"--netlist: the netlist is simulated with {' or '.join(NETLIST_SIMULATORS)} only, "
                          f"not {simulator}; use --sim icarus --netlist")
    if vectors < 1:
        raise PyflowError(f"--vectors: must be at least 1, got {vectors}")
    require("iverilog")
    require("cocotb")
    project = project_dir(project_dir_)
    netlist, synth_seconds = synthesize_netlist(project, timeout)
    raw = run_bench(project, simulator, vectors, seed, waves, stall, corrupt, netlist=netlist)
    raw["synth_seconds"] = synth_seconds
    summary = {**summarize(project, simulator, raw), "view": "netlist", "yosys_version": yosys_version()}
    write_json(project / sim_file("netlist"), summary)
    summary["_raw"] = raw
    return summary
