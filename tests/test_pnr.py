"""Open place and route (ECP5): the PLL settings, the board wrapper and its constraints, nextpnr's report
read into pnr.json, the wrapper's bench bit-exact over the UART, and (marker pnr) a real place and route."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from test_boards import GOOD, OPEN_FLOW

from pyflow.boards import load_board
from pyflow.cli import main
from pyflow.codegen.board import lpf_text, render_board
from pyflow.codegen.rtl import generate
from pyflow.errors import PyflowError
from pyflow.hw.link import image_bytes, logit_bytes, logits_from_bytes
from pyflow.hw.pll import ecp5_pll
from pyflow.random_ir import random_network
from pyflow.sim.pnr import critical_path, engine_of, summarize
from pyflow.tools import tool_env

BOARD = GOOD + OPEN_FLOW  # an ECP5 board


def tiny_network():
    return random_network("conv8k3,maxpool2,linear10", input_shape=(1, 8, 8), pe=4, simd=4, seed=3)


# ecppll (Project Trellis) output for a 25 MHz oscillator: CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE
@pytest.mark.parametrize("mhz,expected", [(100, (1, 4, 6, 2)), (87, (2, 7, 7, 3)), (50, (1, 2, 12, 5)),
                                          (120, (5, 24, 5, 2)), (65, (5, 13, 9, 4)), (104, (6, 25, 6, 2)),
                                          (33, (3, 4, 18, 8)), (200, (1, 8, 3, 1))])
def test_pll_matches_ecppll(mhz, expected):
    setting = ecp5_pll(25, mhz)
    assert (setting.clki_div, setting.clkfb_div, setting.clkop_div, setting.clkop_cphase) == expected
    assert 400 <= setting.vco_mhz <= 800 and setting.pfd_mhz >= 3.125


def test_pll_refuses_what_it_cannot_make():
    with pytest.raises(PyflowError, match=r"outside the ECP5 PLL's output range"):
        ecp5_pll(25, 500)


@pytest.mark.pnr
@pytest.mark.parametrize("mhz", [96.5, 73.3, 150])
def test_pll_gives_ecppll_frequency(mhz, tmp_path):
    """Against the tool itself: the same dividers in and feedback, the same output frequency."""
    run = subprocess.run(["yowasp-ecppll", "-i", "25", "-o", str(mhz), "-f", "pll.v"], cwd=tmp_path, env=tool_env(),
                         capture_output=True, text=True, check=True, timeout=600)
    values = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    setting = ecp5_pll(25, mhz)
    assert (setting.clki_div, setting.clkfb_div) == (int(values["Refclk divisor"]), int(values["Feedback divisor"]))
    assert abs(setting.f_out_mhz - float(values["clkout0 frequency"].split()[0])) < 1e-3


def test_ulx3s_board_has_an_open_flow():
    board = load_board("ulx3s")
    assert board.open_flow is not None and board.open_flow.device == "85k"
    assert (board.open_flow.pins.clk, board.open_flow.pins.uart_rx, board.open_flow.pins.uart_tx) == ("G2", "M1", "L4")
    assert load_board("pynq-z2").open_flow is None


def test_lpf_and_wrapper(tmp_path):
    (tmp_path / "b.yaml").write_text(BOARD)
    board = load_board(tmp_path / "b.yaml")
    lpf = lpf_text(board.open_flow, 4)
    assert 'LOCATE COMP "uart_rx" SITE "M1";' in lpf and 'FREQUENCY PORT "clk_osc" 25 MHZ;' in lpf
    assert 'LOCATE COMP "led[3]" SITE "D2";' in lpf
    design = render_board(tiny_network(), board, tmp_path / "board", clock_mhz=50)
    top = (tmp_path / "board" / "pyflow_board.v").read_text()
    assert ".CLKOP_DIV(12)" in top and ".CLKFB_DIV(2)" in top and f"CLKS = {design.clks_per_bit}" in top
    assert design.clks_per_bit == round(50e6 / 115200)


def test_link_round_trip():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2)
    assert image_bytes(image) == bytes([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])  # HWC: channel innermost
    logits = [0, -1, 2**31 - 1, -(2**31), 1234567]
    assert logits_from_bytes(logit_bytes(logits), 5) == logits
    with pytest.raises(PyflowError, match=r"expected 20 bytes for 5 logits, got 19"):
        logits_from_bytes(logit_bytes(logits)[:-1], 5)


def _step(kind, delay, a, b):
    return {"type": kind, "delay": delay, "from": {"cell": a, "loc": [0, 0], "port": "Q"},
            "to": {"cell": b, "loc": [0, 0], "port": "D"}}


REPORT = {
    "fmax": {"$glbnet$clk": {"achieved": 103.25, "constraint": 100.0}},
    "utilization": {"TRELLIS_COMB": {"used": 13112, "available": 83640}, "DCCA": {"used": 1, "available": 56},
                    "TRELLIS_IO": {"used": 0, "available": 365}},
    "critical_paths": [{"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": [
        _step("clk-to-q", 5.6, "u_top.u_l5_fc0.idx_rom.0.0", "u_top.u_l5_fc0.idx_rom.0.0"),
        _step("routing", 1.4, "u_top.u_l5_fc0.idx_rom.0.0", "$nextpnr_CCU2C_145$CCU2_COMB0"),
        _step("logic", 0.4, "$nextpnr_CCU2C_145$CCU2_COMB0", "u_top.u_buf4.g_lane[29].g_reg.row_q_TRELLIS_FF_Q_1"),
        _step("setup", 0.1, "u_top.u_buf4.g_lane[29].g_reg.row_q_TRELLIS_FF_Q_1",
              "u_top.u_buf4.g_lane[29].g_reg.row_q_TRELLIS_FF_Q_1")]}],
}


def test_nextpnr_report_summary():
    summary = summarize(REPORT, 100.0)
    assert summary["fmax_mhz"] == 103.25 and summary["meets_clock"] is True
    assert summary["utilization"] == {"DCCA": {"used": 1, "available": 56},
                                      "TRELLIS_COMB": {"used": 13112, "available": 83640}}  # unused types dropped
    path = summary["critical_path"]
    assert path["engines"] == ["fc0 (IR layer 5)", "feature buffer 4"]
    assert path["delay_ns"] == 7.5 and path["routing_ns"] == 1.4 and path["logic_ns"] == 6.1
    failing = {**REPORT, "fmax": {"$glbnet$clk": {"achieved": 95.8, "constraint": 100.0}}}
    assert summarize(failing, 100.0)["meets_clock"] is False
    with pytest.raises(PyflowError, match=r"no clock was timed"):
        summarize({"fmax": {}}, 100.0)
    assert critical_path({"critical_paths": []}, "clk") is None


@pytest.mark.parametrize("cell,engine", [("u_top.u_l2_conv1.walker_t_TRELLIS_FF_Q", "conv1 (IR layer 2)"),
                                         ("u_l0_conv0.rq_pix3", "conv0 (IR layer 0)"),
                                         ("u_top.u_buf_logits.g_lane[0].mem", "logit buffer"),
                                         ("u_io.u_rx.count_TRELLIS_FF_Q", "board I/O (UART)"),
                                         ("$nextpnr_CCU2C_1", "glue")])
def test_engine_of_cell(cell, engine):
    assert engine_of(cell) == engine


def test_pnr_refuses_a_board_without_open_flow(tmp_path, capsys):
    project = generate(tiny_network(), None, tmp_path / "rtl")
    assert main(["pnr", str(project), "--board", "pynq-z2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyflow: error: board 'pynq-z2' (xc7z020clg400-1) has no open place and route flow")
    assert "ulx3s" in err and "\n" not in err and not (project / "pnr").exists()
    assert main(["pnr", str(tmp_path / "nothing"), "--board", "ulx3s"]) == 2
    assert "not an RTL project" in capsys.readouterr().err


@pytest.mark.rtl
def test_board_wrapper_round_trips_bit_exact(tmp_path):
    """Images in over the UART line, logits back over it: == the golden model; a falsified logit fails."""
    from pyflow.sim.board_sim import run_board_bench

    project = generate(tiny_network(), None, tmp_path / "rtl")
    result = run_board_bench(project, load_board("ulx3s"), "verilator", vectors=2, seed=4)
    assert result["bit_exact"] is True and result["outputs_compared"] == 20 and result["mismatches"] == 0
    assert result["overrun"] is False and result["framing_error"] is False
    planted = run_board_bench(project, load_board("ulx3s"), "verilator", vectors=2, seed=4, corrupt=7)
    assert planted["bit_exact"] is False and planted["mismatches"] == 1
    assert planted["first_mismatch"]["image"] == 0 and planted["first_mismatch"]["logit"] == 7


@pytest.mark.slow
@pytest.mark.pnr
def test_place_and_route_a_small_design(tmp_path, capsys):
    """The real thing on a small network: synth_ecp5, nextpnr-ecp5, ecppack; pnr.json and the bitstream."""
    project = generate(tiny_network(), None, tmp_path / "rtl")
    code = main(["pnr", str(project), "--board", "ulx3s", "--clock", "50"])
    doc = json.loads((project / "pnr" / "pnr.json").read_text())
    assert code == (0 if doc["meets_clock"] else 1)
    assert doc["constraint_mhz"] == 50 and doc["fmax_mhz"] > 0 and doc["pll"]["CLKOP_DIV"] == 12
    assert doc["utilization"]["EHXPLLL"] == {"used": 1, "available": 4}
    assert doc["utilization"]["TRELLIS_IO"]["used"] == 7  # clock, UART in and out, 4 LEDs
    bitstream = project / "pnr" / doc["bitstream"]["file"]
    assert bitstream.stat().st_size == doc["bitstream"]["bytes"] > 100_000
    assert doc["critical_path"]["delay_ns"] > 0 and doc["seconds"]["pnr"] > 0
    assert "Fmax" in capsys.readouterr().out
    shutil.rmtree(project / "pnr")


class FakeBoard:
    """The far end of a pty: reads images as the wrapper does and answers with the golden model's logits
    (``wrong``: one logit of one image off by one, a planted bug the host must catch)."""

    def __init__(self, network, wrong: tuple[int, int] | None = None) -> None:
        import os
        import pty
        import threading

        from pyflow import golden

        self.master, self.slave = pty.openpty()  # the slave stays open: a master with none reads EIO
        self.port = os.ttyname(self.slave)
        self.network, self.wrong, self.golden = network, wrong, golden
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import os

        size, image = int(np.prod(self.network.input_shape)), 0
        buffer = bytearray()
        while True:
            try:
                buffer += os.read(self.master, 4096)
            except OSError:
                return
            while len(buffer) >= size:
                c, h, w = self.network.input_shape
                pixels = np.frombuffer(bytes(buffer[:size]), dtype=np.uint8).reshape(h, w, c).transpose(2, 0, 1)
                del buffer[:size]
                logits = self.golden.run(self.network, pixels[None]).reshape(-1).astype(np.int64)
                if self.wrong and self.wrong[0] == image:
                    logits[self.wrong[1]] += 1
                os.write(self.master, logit_bytes(logits.tolist()))
                image += 1


@pytest.mark.parametrize("wrong", [None, (2, 4)])
def test_serial_host_against_a_fake_board(tmp_path, capsys, wrong):
    network = tiny_network()
    project = generate(network, None, tmp_path / "rtl")
    board = FakeBoard(network, wrong)
    code = main(["serial", str(project), "--port", board.port, "--images", "4", "--timeout", "10"])
    out = capsys.readouterr().out
    if wrong is None:
        assert code == 0 and out.startswith(f"PASS: {board.port}: 40 logits of 4 images compared, 0 mismatches")
    else:
        assert code == 1 and "1 mismatches" in out and "'image': 2, 'logit': 4" in out


def test_serial_host_errors(tmp_path, capsys):
    project = generate(tiny_network(), None, tmp_path / "rtl")
    assert main(["serial", str(project), "--port", str(tmp_path / "ttyNONE")]) == 2
    assert "cannot open the serial port" in capsys.readouterr().err
    (tmp_path / "plain").write_text("")
    assert main(["serial", str(project), "--port", str(tmp_path / "plain")]) == 2
    assert "not a serial port" in capsys.readouterr().err
    assert main(["serial", str(project), "--port", "/dev/null", "--baud", "12345"]) == 2
    assert "not a standard rate" in capsys.readouterr().err
    import os
    import pty

    master, slave = pty.openpty()  # a board that never answers
    try:
        assert main(["serial", str(project), "--port", os.ttyname(slave), "--images", "1", "--timeout", "0.3"]) == 2
        err = capsys.readouterr().err
        assert "image 0: got 0 of 40 bytes after 0.3 s" in err
    finally:
        os.close(master)
        os.close(slave)


def test_a_failing_seed_stops_the_others(tmp_path, monkeypatch):
    """One nextpnr failing cancels the seeds still placing (they would route for minutes) and its error is
    the one raised, not the cancellation's."""
    import threading

    from pyflow.sim import pnr

    cancelled = threading.Event()

    def fake_tool(command, cwd, log, what, outputs, limits, cancel):
        if "--seed" in command and command[command.index("--seed") + 1] == "1":
            assert cancel.wait(10), "the failure did not cancel this seed"
            cancelled.set()
            raise PyflowError(f"{cwd}: {what} was stopped because another synthesis job failed")
        raise PyflowError(f"{cwd}: {what} failed: ERROR: placement failed")

    monkeypatch.setattr(pnr, "run_tool", fake_tool)
    monkeypatch.setattr(pnr.os, "cpu_count", lambda: 2)  # the two seeds side by side, as on two cores
    flow = load_board("ulx3s").open_flow
    with pytest.raises(PyflowError, match=r"\(seed 2\) failed: ERROR: placement failed"):
        pnr._place_seeds(tmp_path, flow, [1, 2], 100.0, pnr.Limits())
    assert cancelled.is_set()


def test_serial_host_reads_the_baud_of_pnr_json(tmp_path, capsys):
    project = generate(tiny_network(), None, tmp_path / "rtl")
    (project / "pnr").mkdir()
    (project / "pnr" / "pnr.json").write_text("{not json")
    assert main(["serial", str(project), "--port", "/dev/null"]) == 2
    assert "pnr.json: unreadable or without uart.baud: pass --baud" in capsys.readouterr().err
    (project / "pnr" / "pnr.json").write_text(json.dumps({"uart": {"baud": 12345}}))
    assert main(["serial", str(project), "--port", "/dev/null"]) == 2
    assert "--baud: 12345 is not a standard rate" in capsys.readouterr().err
