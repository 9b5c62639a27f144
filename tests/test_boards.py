"""Boards: every shipped YAML loads; each bad field gives a one-line error naming file and field."""

import pytest

from pyflow.boards import board_names, load_board
from pyflow.errors import PyflowError

GOOD = """name: test
part: xc7z020clg400-1
clock_mhz: 100
resources: {lut: 1, ff: 1, bram36: 1, uram: 0, dsp: 0}
default_folding: {pe: 4, simd: 4}
"""
OPEN_FLOW = """open_flow:
  family: ecp5
  device: 85k
  package: CABGA381
  speed: 6
  oscillator_mhz: 25
  pins: {clk: G2, uart_rx: M1, uart_tx: L4, led: [B2, C2, C1, D2]}
"""


def with_open_flow(old: str, new: str):
    """An edit of GOOD with an open_flow section (an ECP5 board's)."""
    return lambda t: (t + OPEN_FLOW).replace(old, new)


def test_shipped_boards_load():
    assert board_names() == ["alveo-u250", "kv260", "pynq-z2", "ultra96-v2", "ulx3s", "zcu104"]
    for name in board_names():
        board = load_board(name)
        assert board.name == name and board.resources.lut > 0 and board.clock_mhz > 0


@pytest.mark.parametrize("edit,message", [
    (lambda t: t + "colour: red\n", r"unknown field 'colour'"),
    (lambda t: t.replace("clock_mhz: 100\n", ""), r"missing field 'clock_mhz'"),
    (lambda t: t.replace("lut: 1,", "lut: -5,"), r"resources.lut: must be an integer >= 0, got -5"),
    (lambda t: t.replace("pe: 4", "pe: 0"), r"default_folding.pe: must be an integer >= 1, got 0"),
    (lambda t: t.replace("dsp: 0}", "dsp: 0, luts: 3}"), r"resources: unknown field 'luts'"),
    (lambda t: t.replace("clock_mhz: 100", "clock_mhz: fast"), r"clock_mhz: must be a number"),
    (lambda t: "name: [", r"invalid YAML"),
    # name and part are rendered into run_hls.tcl: a newline or a Tcl bracket must never get there
    (lambda t: t.replace("part: xc7z020clg400-1", 'part: "xc7z020\\n]; exec rm -rf ~; #"'),
     r"part: must be 1-64 letters"),
    (lambda t: t.replace("name: test", 'name: "../../etc"'), r"name: must be 1-64 letters"),
    (lambda t: t.replace("name: test", "name: 12"), r"name: must be 1-64 letters"),
    (with_open_flow("device: 85k", "device: 99k"), r"open_flow.device: must be one of"),
    (with_open_flow("speed: 6", "speed: 9"), r"open_flow.speed: must be one of 6, 7, 8"),
    (with_open_flow("family: ecp5", "family: ice40"), r"open_flow.family: must be one of ecp5"),
    # pins reach the LPF file: a quote or a semicolon must never get there
    (with_open_flow("clk: G2", 'clk: "G2\\"; BLOCK"'), r"open_flow.pins.clk: must be a package ball"),
    (with_open_flow("led: [B2,", "led: [B2; X,"), r"open_flow.pins.led\[0\]: must be a package ball"),
    (with_open_flow("uart_tx: L4", "uart_tx: G2"), r"a ball is used twice"),
    (with_open_flow("oscillator_mhz: 25", "oscillator_mhz: 0"), r"oscillator_mhz: must be a number"),
    (with_open_flow("speed: 6\n", "speed: 6\n  voltage: 1\n"), r"open_flow: unknown field 'voltage'"),
    (with_open_flow("  pins: {clk: G2, ", "  pins: {"), r"open_flow.pins: missing field 'clk'"),
])
def test_bad_board_yaml(tmp_path, edit, message):
    path = tmp_path / "board.yaml"
    path.write_text(edit(GOOD))
    with pytest.raises(PyflowError, match=message) as info:
        load_board(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_board_names_the_known_ones():
    with pytest.raises(PyflowError, match=r"unknown board 'nope' \(known: alveo-u250, kv260, pynq-z2"):
        load_board("nope")
