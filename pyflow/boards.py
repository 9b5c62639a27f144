"""Boards: one YAML per board in boards/, parsed here (and only here) into a frozen, validated Board.

A board with an ``open_flow`` section (an ECP5 part) can be placed and routed with no vendor tool
(`pyflow pnr`): the section names the device as nextpnr-ecp5 spells it, the oscillator the PLL multiplies,
and the pins of the board wrapper (UART in and out, LEDs). Every value in it reaches a command line or
the LPF constraints file, so each is checked against a strict pattern here.
"""

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
SITE = re.compile(r"[A-Z]{1,2}[0-9]{1,2}")  # a ball of a BGA package, e.g. G2 or AB12
ECP5_DEVICES = ("25k", "45k", "85k", "um-25k", "um-45k", "um-85k", "um5g-25k", "um5g-45k", "um5g-85k")
ECP5_PACKAGES = ("CABGA256", "CABGA381", "CABGA554", "CABGA756", "CSFBGA285")
ECP5_SPEEDS = (6, 7, 8)
IO_TYPES = ("LVCMOS33", "LVCMOS25", "LVCMOS18")


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
class Pins:
    clk: str  # the oscillator
    uart_rx: str  # the FPGA receives (the USB-serial bridge's TXD)
    uart_tx: str  # the FPGA transmits
    led: tuple[str, ...] = ()  # led[0] input overrun, led[1] image in flight, led[2] PLL locked, led[3] framing


@dataclass(frozen=True)
class OpenFlow:
    """What nextpnr-ecp5 and the board wrapper need: device, package, speed grade, oscillator, pins."""

    family: str
    device: str
    package: str
    speed: int
    oscillator_mhz: float
    pins: Pins
    io_type: str = "LVCMOS33"
    baud: int = 115200


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    clock_mhz: float
    resources: Resources
    default_folding: Folding
    open_flow: OpenFlow | None = None  # boards with an open place-and-route flow (ECP5)


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
    open_flow = _open_flow(raw["open_flow"], f"{source}: open_flow") if raw.get("open_flow") is not None else None
    return Board(name=raw["name"], part=raw["part"], clock_mhz=float(clock),
                 resources=Resources(**{k: integer(v, f"{source}: resources.{k}", 0) for k, v in res.items()}),
                 default_folding=Folding(**{k: integer(v, f"{source}: default_folding.{k}", 1)
                                            for k, v in fold.items()}),
                 open_flow=open_flow)


def _choice(value: Any, allowed: tuple[Any, ...], where: str) -> Any:
    if value not in allowed:
        raise PyflowError(f"{where}: must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def _site(value: Any, where: str) -> str:
    if not isinstance(value, str) or not SITE.fullmatch(value):
        raise PyflowError(f"{where}: must be a package ball such as G2 (letters then digits), got {value!r}")
    return value


def _open_flow(data: Any, where: str) -> OpenFlow:
    raw = check_keys(OpenFlow, data, where)
    _choice(raw["family"], ("ecp5",), f"{where}.family")
    pins = check_keys(Pins, raw["pins"], f"{where}.pins")
    leds = pins.get("led", [])
    if not isinstance(leds, list) or len(leds) > 8:
        raise PyflowError(f"{where}.pins.led: must be a list of at most 8 package balls, got {leds!r}")
    sites = [_site(pins[key], f"{where}.pins.{key}") for key in ("clk", "uart_rx", "uart_tx")]
    sites += [_site(ball, f"{where}.pins.led[{i}]") for i, ball in enumerate(leds)]
    if len(set(sites)) != len(sites):
        raise PyflowError(f"{where}.pins: a ball is used twice ({', '.join(sites)})")
    oscillator = raw["oscillator_mhz"]
    if isinstance(oscillator, bool) or not isinstance(oscillator, int | float) or not 8 <= oscillator <= 400:
        raise PyflowError(f"{where}.oscillator_mhz: must be a number in [8, 400], got {oscillator!r}")
    baud = integer(raw.get("baud", 115200), f"{where}.baud", 1200)
    return OpenFlow(family="ecp5", device=_choice(raw["device"], ECP5_DEVICES, f"{where}.device"),
                    package=_choice(raw["package"], ECP5_PACKAGES, f"{where}.package"),
                    speed=_choice(raw["speed"], ECP5_SPEEDS, f"{where}.speed"), oscillator_mhz=float(oscillator),
                    pins=Pins(clk=sites[0], uart_rx=sites[1], uart_tx=sites[2], led=tuple(sites[3:])),
                    io_type=_choice(raw.get("io_type", "LVCMOS33"), IO_TYPES, f"{where}.io_type"), baud=baud)


def open_flow_boards() -> list[str]:
    return [name for name in board_names() if load_board(name).open_flow is not None]


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
          f"{'DSP':>6s}  PExSIMD  open place and route")
    for name in board_names():
        b = load_board(name)
        r = b.resources
        print(f"{b.name:12s} {b.part:24s} {b.clock_mhz:5.0f} {r.lut:8d} {r.ff:8d} {r.bram36:6d} {r.uram:5d} "
              f"{r.dsp:6d}  {b.default_folding.pe}x{b.default_folding.simd:<5d}  "
              f"{'nextpnr-' + b.open_flow.family if b.open_flow else '-'}")
    return 0
