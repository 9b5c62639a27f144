"""Simulate the board wrapper (pyflow_board: UART in, the engines, UART out) against the golden model.

The wrapper is rendered for ``board`` (pyflow.codegen.board) into ``sim_build/board_src/``, built with
``PYFLOW_NO_PLL`` (the oscillator clocks the design; the PLL is the FPGA's own cell) and a short UART bit of
``clks`` cycles, and driven by rtl_tests/test_board.py: every image goes in over the UART line and every
logit comes back over it, compared with the golden model using ==.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pyflow.boards import Board
from pyflow.errors import PyflowError
from pyflow.sim.rtl import VERILATOR_MAKEFLAGS, _environment, _quiet, bench_dir, project_dir, sources

BOARD_BENCH = "test_board"
SIM_CLKS_PER_BIT = 8


def run_board_bench(folder: str | Path, board: Board, simulator: str = "verilator", vectors: int = 2, seed: int = 0,
                    clks: int = SIM_CLKS_PER_BIT, corrupt: int | None = None) -> dict[str, Any]:
    """Build and run the wrapper bench; returns its result (``bit_exact``, ``outputs_compared``, …)."""
    from cocotb_tools.runner import get_runner

    from pyflow.codegen.board import BOARD_TOP, render_board
    from pyflow.ir import load
    from pyflow.tools import require

    require("verilator" if simulator == "verilator" else "iverilog")
    if clks < 4:
        raise PyflowError(f"board bench: the UART needs at least 4 clock cycles per bit, got {clks}")
    project = project_dir(folder)
    work = project / "sim_build" / f"board_{simulator}"
    shutil.rmtree(work / "src", ignore_errors=True)
    shutil.rmtree(work / "run", ignore_errors=True)
    design = render_board(load(project / "ir"), board, work / "src")
    build_dir, run_dir = work / "build", work / "run"
    run_dir.mkdir(parents=True)
    files = [*sources(project), *design.sources]
    stamp = build_dir / "pyflow.fingerprint"
    digest = hashlib.sha256(f"{clks}\n".encode() + b"".join(
        path.name.encode() + path.read_bytes() for path in [*files, *sorted((project / "verilog").glob("*.mem"))]))
    if not (stamp.is_file() and stamp.read_text() == digest.hexdigest()):  # the same wrapper: reuse its model
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        log = work / "build.log"
        make = {"MAKEFLAGS": VERILATOR_MAKEFLAGS} if simulator == "verilator" else {}
        with _environment(make), _quiet(log):
            try:
                get_runner(simulator).build(
                    sources=files, hdl_toplevel=BOARD_TOP, build_dir=build_dir, always=True,
                    parameters={"CLKS": clks, "MEM_DIR": f'"{(project / "verilog").resolve()}/"'},
                    defines={"PYFLOW_NO_PLL": 1}, log_file=log)
            except (RuntimeError, SystemExit) as exc:
                raise PyflowError(f"{project}: {simulator} build of the board wrapper failed ({exc}); "
                                  f"see {log}") from None
        stamp.write_text(digest.hexdigest())
    result = run_dir / "board_result.json"
    env = {"PYFLOW_PROJECT": str(project.resolve()), "PYFLOW_VECTORS": str(vectors), "PYFLOW_SEED": str(seed),
           "PYFLOW_CLKS": str(clks), "PYFLOW_RESULT": str(result.resolve()),
           "PYFLOW_CORRUPT": str(-1 if corrupt is None else corrupt)}
    if str(bench_dir()) not in sys.path:
        sys.path.insert(0, str(bench_dir()))
    start = time.perf_counter()
    sim_log = run_dir / "sim.log"
    with _environment(env), _quiet(sim_log):
        try:
            get_runner(simulator).test(hdl_toplevel=BOARD_TOP, hdl_toplevel_lang="verilog", test_module=BOARD_BENCH,
                                       build_dir=build_dir, test_dir=run_dir, extra_env=env,
                                       results_xml=str((run_dir / "results.xml").resolve()), log_file=sim_log)
        except SystemExit:  # a failing bench exits under pytest
            pass
    if not result.is_file():
        raise PyflowError(f"{project}: the {simulator} board bench wrote no result; see {sim_log}")
    raw = json.loads(result.read_text())
    raw.update(simulator=simulator, seconds=round(time.perf_counter() - start, 1),
               bit_exact=raw["mismatches"] == 0 and raw["outputs_compared"] > 0 and not raw["overrun"]
               and not raw["framing_error"])
    return raw
