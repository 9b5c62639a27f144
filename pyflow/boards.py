"""Boards: one YAML per board in boards/, parsed here (and only here) into a frozen, validated Board."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflow.artifacts import project_root
from pyflow.config import check_keys, integer, read_yaml
from pyflow.errors import PyflowError

BOARDS_DIR = project_root() / "boards"
SAFE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Resources:
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int


@dataclass(frozen=True)
class Folding:
    pe: int
    simd: int


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    clock_mhz: float
    resources: Resources
    default_folding: Folding


def parse_board(data: Any, source: str) -> Board:
    raw = check_keys(Board, data, source)
    for key in ("name", "part"):  # both are rendered into run_hls.tcl and the report
        if not isinstance(raw[key], str) or not SAFE_TOKEN.fullmatch(raw[key]):
            raise PyflowError(f"{source}: {key}: must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
                              f"letter or digit), got {raw[key]!r}")
    clock = raw["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, int | float) or not 1 <= clock <= 1000:
        raise PyflowError(f"{source}: clock_mhz: must be a number in [1, 1000], got {clock!r}")
    res = check_keys(Resources, raw["resources"], f"{source}: resources")
    fold = check_keys(Folding, raw["default_folding"], f"{source}: default_folding")
    return Board(name=raw["name"], part=raw["part"], clock_mhz=float(clock),
                 resources=Resources(**{k: integer(v, f"{source}: resources.{k}", 0) for k, v in res.items()}),
                 default_folding=Folding(**{k: integer(v, f"{source}: default_folding.{k}", 1)
                                            for k, v in fold.items()}))


def board_names() -> list[str]:
    return sorted(path.stem for path in BOARDS_DIR.glob("*.yaml"))


def load_board(name_or_path: str | Path) -> Board:
    """A board by name (``pynq-z2``) or by the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = BOARDS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise PyflowError(f"unknown board {str(name_or_path)!r} (known: {', '.join(board_names())})")
    data = read_yaml(path)
    return parse_board(data, str(path))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("boards", help="list the boards pyflow knows, with their budgets")
    parser.set_defaults(func=lambda args: _list())


def _list() -> int:
    print(f"{'board':12s} {'part':24s} {'MHz':>5s} {'LUT':>8s} {'FF':>8s} {'BRAM36':>6s} {'URAM':>5s} "
          f"{'DSP':>6s}  PExSIMD")
    for name in board_names():
        b = load_board(name)
        r = b.resources
        print(f"{b.name:12s} {b.part:24s} {b.clock_mhz:5.0f} {r.lut:8d} {r.ff:8d} {r.bram36:6d} {r.uram:5d} "
              f"{r.dsp:6d}  {b.default_folding.pe}x{b.default_folding.simd}")
    return 0
