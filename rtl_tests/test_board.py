"""cocotb bench of the board wrapper (pyflow_board, built with PYFLOW_NO_PLL): sends images over the UART line
bit by bit, decodes the logits the wrapper sends back (pyflow.hw.link), and compares each with the golden
model using ==. The LEDs must show no overrun and no framing error.

Configured by environment variables (set by pyflow.sim.board_sim): PYFLOW_PROJECT (the RTL project, holding
ir/), PYFLOW_VECTORS, PYFLOW_SEED, PYFLOW_CLKS (clock cycles per UART bit), PYFLOW_RESULT (JSON file the
result goes to), PYFLOW_CORRUPT (index of one expected logit to falsify: the bench must then fail).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from pyflow import golden
from pyflow.hw.link import LOGIT_BYTES, image_bytes, logits_from_bytes
from pyflow.ir import load


async def send_byte(dut, value: int, clks: int) -> None:
    for bit in [0, *((value >> i) & 1 for i in range(8)), 1]:  # start, data LSB first, stop
        dut.uart_rx.value = bit
        await ClockCycles(dut.clk_osc, clks)


async def receive_bytes(dut, count: int, clks: int, out: list[int]) -> None:
    """Sample the transmit line at the middle of every bit of ``count`` frames into ``out``."""
    while len(out) < count:
        await FallingEdge(dut.uart_tx)
        await ClockCycles(dut.clk_osc, clks // 2)
        assert int(dut.uart_tx.value) == 0, "uart_tx: a start bit that does not stay low"
        value = 0
        for i in range(8):
            await ClockCycles(dut.clk_osc, clks)
            value |= int(dut.uart_tx.value) << i
        await ClockCycles(dut.clk_osc, clks)
        assert int(dut.uart_tx.value) == 1, f"uart_tx: byte {len(out)}: the stop bit is low"
        out.append(value)


@cocotb.test()
async def board_round_trips_images(dut) -> None:
    project = Path(os.environ["PYFLOW_PROJECT"])
    vectors, seed = int(os.environ.get("PYFLOW_VECTORS", "2")), int(os.environ.get("PYFLOW_SEED", "0"))
    clks, corrupt = int(os.environ.get("PYFLOW_CLKS", "8")), int(os.environ.get("PYFLOW_CORRUPT", "-1"))
    network = load(project / "ir")
    images = np.random.default_rng(seed).integers(0, 256, size=(vectors, *network.input_shape), dtype=np.uint8)
    expected = golden.run(network, images).reshape(vectors, -1).astype(np.int64)
    if corrupt >= 0:
        expected.flat[corrupt] += 1
    logits = expected.shape[1]
    cocotb.start_soon(Clock(dut.clk_osc, 10, unit="ns").start())
    dut.uart_rx.value = 1
    await ClockCycles(dut.clk_osc, 200)  # past the power-on reset
    received, mismatches, first_bad = [], 0, None
    for index, image in enumerate(images):
        reply: list[int] = []
        listener = cocotb.start_soon(receive_bytes(dut, logits * LOGIT_BYTES, clks, reply))
        for value in image_bytes(image):
            await send_byte(dut, value, clks)
        await listener  # stop and wait: every logit of this image before the next image
        got = logits_from_bytes(bytes(reply), logits)
        received.append(got)
        for k, (g, e) in enumerate(zip(got, expected[index].tolist(), strict=True)):
            if g != e:
                mismatches += 1
                first_bad = first_bad or {"image": index, "logit": k, "got": g, "expected": e}
    await RisingEdge(dut.clk_osc)
    leds = int(dut.led.value) if hasattr(dut, "led") else 0
    result = {"vectors": vectors, "outputs_compared": int(expected.size), "mismatches": mismatches,
              "first_mismatch": first_bad, "overrun": bool(leds & 1), "framing_error": bool(leds >> 3 & 1),
              "clocks_per_bit": clks}
    Path(os.environ.get("PYFLOW_RESULT", "board_result.json")).write_text(json.dumps(result, indent=1))
    assert mismatches == 0, f"{mismatches} logits differ from the golden model; first: {first_bad}"
    assert not result["overrun"] and not result["framing_error"], f"LEDs show an error: {leds:04b}"
