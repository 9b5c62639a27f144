"""Yosys resources of a generated RTL project: `synth_xilinx -noiopad`, out of context per unit, summed.

`synthesize` splits the top into units (pyflow.sim.ooc: each distinct module instance with its parameters
and ROM contents, plus the top's glue with the units as blackboxes), synthesizes the units in parallel
Yosys processes (at most ``os.cpu_count()``), each under a time and a memory limit (pyflow.sim.yosys_run),
and writes ``yosys.json`` into the project:

* ``cells`` — ``LUT`` (logic LUTs plus the LUTs of LUT RAM and shift registers), ``FF``, ``CARRY``,
  ``BRAM36`` (RAMB36 + RAMB18 / 2), ``DSP``: the sum over instances (a unit counts once per instance);
  ``raw_cell_types`` the same sum by Xilinx cell; ``pe_array_dsp`` the DSP cells inside the PE lanes;
* ``engines`` — per instance (and ``(glue)``): its unit, cells, Yosys seconds and peak memory (0 when it
  shares a unit synthesized for an earlier instance, or reused from an earlier run);
* ``method``, ``yosys_version``, ``jobs``, ``limits``, ``seconds`` (wall), ``peak_rss_mb`` (the largest
  Yosys process) and ``peak_total_rss_mb`` (sampled sum of the processes running together).

A unit whose fingerprint (Yosys version, script, library sources and ROM files) is unchanged since the last
run is reused from ``synth/<unit>/``. ``method="top"`` synthesizes the whole top in one process instead
(the slow baseline of benchmarks/synth_speed.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflow.artifacts import YOSYS_FILE, write_json
from pyflow.errors import PyflowError
from pyflow.sim import ooc
from pyflow.sim.yosys_run import (
    DEFAULT_MEMORY_MB,
    Limits,
    SynthesisMemoryLimit,
    SynthesisTimeout,
    Usage,
    relative,
    run_script,
    yosys_version,
)

__all__ = ["DEFAULT_MEMORY_MB", "SynthesisMemoryLimit", "SynthesisTimeout", "synthesize", "synthesize_module",
           "yosys_version"]

PART_FAMILY = "xilinx (synth_xilinx -noiopad)"
METHODS = ("ooc", "top")
SYNTH_DIR = "synth"
GLUE = "(glue)"
PE_MODULES = ("pf_pe_lanes", "pf_adder_tree")
FF_PREFIXES = ("FD",)
LUT_PREFIXES = ("LUT",)
CARRY_PREFIXES = ("CARRY", "MUXCY", "XORCY")
DSP_PREFIXES = ("DSP",)
# LUTs used as memory (distributed RAM, shift registers) count against the LUT budget.
LUTS_PER_MEMORY_CELL = {"RAM32M": 4, "RAM64M": 4, "RAM128X1D": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM32X1S": 1,
                        "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1}


@dataclass(frozen=True)
class Job:
    """One Yosys process: a unit (or the glue, or the whole top) with its script, in ``folder``."""

    name: str
    module: str
    script: str
    folder: Path
    fingerprint: str
    cost: float = 0.0  # guessed seconds: the longest start first


@dataclass(frozen=True)
class Result:
    cells: dict[str, int]  # Xilinx cell type -> count
    pe_dsp: int
    usage: Usage
    reused: bool


def cell_counts(cells: dict[str, int]) -> dict[str, Any]:
    """Cells by resource; ``LUT`` counts logic LUTs plus the LUTs of LUT RAM and shift registers."""
    lut_memory = sum(LUTS_PER_MEMORY_CELL.get(cell, 0) * count for cell, count in cells.items())
    bram = sum(count for cell, count in cells.items() if cell.startswith("RAMB36")) + \
        0.5 * sum(count for cell, count in cells.items() if cell.startswith("RAMB18"))
    return {"LUT": _count(cells, LUT_PREFIXES) + lut_memory, "FF": _count(cells, FF_PREFIXES),
            "CARRY": _count(cells, CARRY_PREFIXES), "BRAM36": bram, "DSP": _count(cells, DSP_PREFIXES)}


def _count(cells: dict[str, int], prefixes: tuple[str, ...]) -> int:
    return sum(count for cell, count in cells.items() if cell.lstrip("$_").startswith(prefixes))


def _stat_cells(stat_file: Path) -> dict[str, int]:
    """Xilinx cells of a `stat -json`; blackbox instances (``$paramod…\\pf_x``, ``pf_x``) and the
    ``$scopeinfo`` of flattened instances are not cells."""
    stat = json.loads(stat_file.read_text())
    cells = stat["design"].get("num_cells_by_type", {})
    return {cell: int(count) for cell, count in cells.items()
            if "\\" not in cell and not cell.startswith("pf_") and cell != "$scopeinfo"}  # names, not logic


def _pe_dsp(folder: Path) -> int:
    path = folder / "pe_dsp.txt"
    count = re.search(r"(\d+) objects", path.read_text()) if path.is_file() else None
    return int(count.group(1)) if count else 0


def whole_script(sources: list[str], top: str, out: str, parameters: dict[str, int] | None = None,
                 counted: tuple[str, ...] = PE_MODULES) -> str:
    """One module and everything under it in one process: synthesized hierarchically, flattened for `stat`;
    ``pe_dsp.txt`` counts the DSP cells inside the ``counted`` modules."""
    chparams = "".join(f" -chparam {key} {value}" for key, value in sorted((parameters or {}).items()))
    pe_dsp = " ".join(f"*{module}*/t:DSP*" for module in counted)
    return (f"read_verilog -defer {' '.join(sources)}\n"
            f"hierarchy -top {top}{chparams}\n"
            f"synth_xilinx -noiopad\n"
            f"tee -q -o {out}/pe_dsp.txt select -count {pe_dsp}\n"
            f"flatten\n"
            f"tee -q -o {out}/stat.json stat -json\n")


def _run_job(job: Job, cwd: Path, limits: Limits, reuse: bool, cancel: threading.Event) -> Result:
    stamp, stat = job.folder / "fingerprint", job.folder / "stat.json"
    if reuse and stamp.is_file() and stat.is_file() and stamp.read_text() == job.fingerprint:
        return Result(_stat_cells(stat), _pe_dsp(job.folder), Usage(0.0, 0.0), True)
    job.folder.mkdir(parents=True, exist_ok=True)
    for stale in (stamp, stat, job.folder / "pe_dsp.txt"):
        stale.unlink(missing_ok=True)
    (job.folder / "synth.ys").write_text(job.script)
    what = f"synth_xilinx of {job.name} ({job.module})"
    usage = run_script(job.folder / "synth.ys", cwd, job.folder / "yosys.log", what, [stat], limits, cancel)
    stamp.write_text(job.fingerprint)
    return Result(_stat_cells(stat), _pe_dsp(job.folder), usage, False)


def _fingerprint(*parts: str | bytes) -> str:
    digest = hashlib.sha256(yosys_version().encode())
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def _ooc_jobs(project: Path, top: str) -> tuple[list[Job], list[ooc.Unit]]:
    verilog, synth = project / "verilog", project / SYNTH_DIR
    modules = ooc.library_modules(verilog, top)
    instances = ooc.top_instances(verilog, top, modules)
    found = ooc.units(verilog, instances)
    sources = sorted({path.name for path in modules.values()})
    library = b"".join((verilog / name).read_bytes() for name in sources)
    jobs = []
    for unit in found:
        folder = synth / unit.name
        script = ooc.unit_script(unit, sources, relative(folder, verilog))
        jobs.append(Job(unit.name, unit.module, script, folder, _fingerprint(script, library, unit.key),
                        ooc.cost(unit, verilog)))
    glue = synth / "glue"
    blackbox = ooc.blackboxes(modules)
    script = ooc.glue_script(top, relative(glue / "blackboxes.v", verilog), relative(glue, verilog))
    glue.mkdir(parents=True, exist_ok=True)
    (glue / "blackboxes.v").write_text(blackbox)
    top_text = (verilog / f"{top}.v").read_bytes()
    jobs.append(Job(GLUE, top, script, glue, _fingerprint(script, blackbox, top_text), 10.0))
    return jobs, found


def _rank(job: Job) -> tuple[float, str]:
    """Longest first, so that the last jobs to start are short ones and the workers finish together."""
    return -job.cost, job.name


class _Monitor:
    """Progress lines on stderr and the sampled total memory of the Yosys processes running together."""

    def __init__(self, total: int, stream: Any) -> None:
        self.total, self.done, self.stream, self.lock = total, 0, stream, threading.Lock()

    def finished(self, job: Job, result: Result) -> None:
        with self.lock:
            self.done += 1
            if self.stream is not None:
                how = "reused" if result.reused else f"{result.usage.seconds:.1f} s, {result.usage.peak_rss_mb:.0f} MB"
                cells = cell_counts(result.cells)
                print(f"  yosys [{self.done}/{self.total}] {job.name} ({job.module}): {how}; "
                      f"{cells['LUT']} LUT, {cells['FF']} FF, {cells['BRAM36']:g} BRAM36", file=self.stream,
                      flush=True)


def _run_all(jobs: list[Job], cwd: Path, limits: Limits, workers: int, reuse: bool,
             stream: Any) -> dict[str, Result]:
    cancel, monitor = threading.Event(), _Monitor(len(jobs), stream)

    def one(job: Job) -> Result:
        if cancel.is_set():
            raise PyflowError(f"{cwd}: yosys {job.name} was not started: another synthesis job failed")
        try:
            result = _run_job(job, cwd, limits, reuse, cancel)
        except PyflowError:
            cancel.set()
            raise
        monitor.finished(job, result)
        return result

    ordered = sorted(jobs, key=_rank)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {job.name: pool.submit(one, job) for job in ordered}
        try:
            errors = [future.exception() for future in futures.values() if future.exception() is not None]
        except BaseException:  # Ctrl-C lands here, in the main thread: the workers stop their Yosys processes
            cancel.set()
            raise
    first = next((error for error in errors if "another synthesis job failed" not in str(error)), None)
    if errors:
        raise first or errors[0]
    return {name: future.result() for name, future in futures.items()}


def _peak_total(results: dict[str, Result], workers: int) -> float:
    """An upper bound on the memory of the processes running together: the ``workers`` largest peaks."""
    return sum(sorted((r.usage.peak_rss_mb for r in results.values()), reverse=True)[:workers])


def _engine_rows(found: list[ooc.Unit], results: dict[str, Result]) -> list[dict[str, Any]]:
    rows = []
    for unit in found:
        result = results[unit.name]
        for index, instance in enumerate(unit.instances):
            rows.append(_row(instance, unit.module, unit.name, result, index > 0, unit.parameters))
    rows.append(_row(GLUE, "top (library modules as blackboxes)", GLUE, results[GLUE], False))
    return rows


def _row(instance: str, module: str, unit: str, result: Result, shared: bool,
         parameters: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    ran = not (shared or result.reused)
    return {"instance": instance, "module": module, "unit": unit, "parameters": dict(parameters),
            "cells": cell_counts(result.cells),
            "pe_array_dsp": result.pe_dsp, "reused": result.reused and not shared,
            "seconds": round(result.usage.seconds, 2) if ran else 0.0,
            "peak_rss_mb": round(result.usage.peak_rss_mb, 1) if ran else 0.0}


def _sum(rows: list[dict[str, Any]], results: dict[str, Result]) -> tuple[dict[str, int], int]:
    total: dict[str, int] = {}
    pe_dsp = 0
    for row in rows:
        result = results[row["unit"]]
        for cell, count in result.cells.items():
            total[cell] = total.get(cell, 0) + count
        pe_dsp += result.pe_dsp
    return dict(sorted(total.items())), pe_dsp


def worker_count(jobs: int | None, work: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs is not None and jobs < 1:
        raise PyflowError(f"yosys jobs: must be at least 1, got {jobs}")
    return max(1, min(jobs or cpus, cpus, work))


def synthesize(rtl_dir: str | Path, timeout: float | None = None, memory_mb: int = DEFAULT_MEMORY_MB,
               jobs: int | None = None, method: str = "ooc", reuse: bool = True,
               progress: bool = True) -> dict[str, Any]:
    """Synthesize the project's top; writes and returns yosys.json (see the module docstring).

    ``timeout`` and ``memory_mb`` limit each Yosys process; ``jobs`` processes run at once (default and
    at most the CPUs); ``progress`` prints a line per finished unit on stderr.
    """
    from pyflow.sim.rtl import TOP, project_dir

    if method not in METHODS:
        raise PyflowError(f"yosys method: {method!r} is not one of {', '.join(METHODS)}")
    project = project_dir(rtl_dir)
    limits = Limits(timeout, memory_mb)
    start = time.perf_counter()
    (project / YOSYS_FILE).unlink(missing_ok=True)
    if method == "top":
        jobs_, found = [_top_job(project, TOP)], [ooc.Unit("top", TOP, (), (TOP,))]
    else:
        jobs_, found = _ooc_jobs(project, TOP)
    workers = worker_count(jobs, len(jobs_))
    results = _run_all(jobs_, project / "verilog", limits, workers, reuse, sys.stderr if progress else None)
    rows = _engine_rows(found, results) if method == "ooc" else [_row(TOP, TOP, TOP, results[TOP], False)]
    total, pe_dsp = _sum(rows, results)
    summary = {
        "yosys_version": yosys_version(), "top": TOP, "part_family": PART_FAMILY,
        "method": "out of context: each distinct unit once, summed over instances, plus the glue"
                  if method == "ooc" else "whole top in one process",
        "cells": cell_counts(total), "pe_array_dsp": pe_dsp, "raw_cell_types": total,
        "units": len(jobs_), "instances": len(rows), "engines": rows, "jobs": workers,
        "limits": {"seconds": timeout, "memory_mb": memory_mb},
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(max(r.usage.peak_rss_mb for r in results.values()), 1),
        "peak_total_rss_mb": round(_peak_total(results, workers), 1),
    }
    write_json(project / YOSYS_FILE, summary)
    summary["_seconds"] = time.perf_counter() - start
    return summary


def _top_job(project: Path, top: str) -> Job:
    from pyflow.sim.rtl import sources

    verilog, folder = project / "verilog", project / SYNTH_DIR / "top"
    names = [path.name for path in sources(project)]
    script = whole_script(names, top, relative(folder, verilog))
    library = b"".join((verilog / name).read_bytes() for name in sorted(os.listdir(verilog)))
    return Job(top, top, script, folder, _fingerprint(script, library))


def synthesize_module(library: Path, top: str, parameters: dict[str, int], workdir: Path,
                      counted: tuple[str, ...] = PE_MODULES, timeout: float | None = None) -> dict[str, Any]:
    """Synthesize one hand-written module of rtl_templates/ alone (e.g. the PE lane group); ``pe_array_dsp``
    then counts the DSP cells inside the ``counted`` modules (cwd ``workdir``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = [relative(path, workdir) for path in sorted(library.resolve().glob("pf_*.v"))]
    script = whole_script(names, top, ".", parameters, counted)
    (workdir / "synth.ys").write_text(script)
    run_script(workdir / "synth.ys", workdir, workdir / "yosys.log", f"synth_xilinx of {top}",
               [workdir / "stat.json"], Limits(timeout))
    cells = _stat_cells(workdir / "stat.json")
    return {"yosys_version": yosys_version(), "top": top, "part_family": PART_FAMILY, "cells": cell_counts(cells),
            "pe_array_dsp": _pe_dsp(workdir), "raw_cell_types": dict(sorted(cells.items()))}
