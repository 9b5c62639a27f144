"""cocotb bench of a generated network top (pyflow_top): streams images in, logits out, both with random
stalls, compares every logit with the golden model using ==, and reads the hardware cycle counters.

Configured by environment variables (set by pyflow.sim.rtl.run_sim or by rtl_tests/Makefile):
PYFLOW_PROJECT (the generated project, holding ir/), PYFLOW_VECTORS, PYFLOW_SEED, PYFLOW_STALL (probability
of a stall cycle on each side), PYFLOW_RESULT (JSON file the measurements go to), PYFLOW_CORRUPT (index of
one expected logit to falsify: the bench must then fail).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer

from pyflow import golden
from pyflow.hw.cycles import modelled_cycles
from pyflow.ir import load


def _config() -> dict:
    project = Path(os.environ["PYFLOW_PROJECT"])
    return {
        "project": project,
        "vectors": int(os.environ.get("PYFLOW_VECTORS", "4")),
        "seed": int(os.environ.get("PYFLOW_SEED", "0")),
        "stall": float(os.environ.get("PYFLOW_STALL", "0.2")),
        "result": Path(os.environ.get("PYFLOW_RESULT", "bench_result.json")),
        "corrupt": int(os.environ.get("PYFLOW_CORRUPT", "-1")),
    }


def _words(value, count: int) -> list[int]:
    bits = int(value.to_unsigned())
    return [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(count)]


async def _idle(dut, input_pending: bool, timeout_cycles: int) -> None:
    """Drop both handshakes and wait for in_ready or out_valid to rise (or a timeout); no beat moves meanwhile."""
    await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    await ReadOnly()
    if dut.out_valid.value or (input_pending and dut.in_ready.value):
        return
    wakers = [RisingEdge(dut.out_valid), Timer(10 * timeout_cycles, unit="ns")]
    wakers += [RisingEdge(dut.in_ready)] if input_pending else []
    await First(*wakers)


class Scoreboard:
    """Compares every logit beat with the golden model (==) and records the cycle counters per image."""

    def __init__(self, expected: np.ndarray, layers: int) -> None:
        self.expected, self.layers = expected, layers
        self.compared = self.mismatches = 0
        self.first_bad: dict | None = None
        self.first_beat: list[int] = []
        self.last_beat: list[int] = []
        self.layer_cycles: list[list[int]] = []
        self.layer_busy: list[list[int]] = []

    @property
    def done(self) -> bool:
        return self.compared == self.expected.size

    def _fail(self, **what) -> None:
        self.mismatches += 1
        self.first_bad = self.first_bad or what

    def logit(self, dut) -> None:
        image, index = divmod(self.compared, self.expected.shape[1])
        last = index == self.expected.shape[1] - 1
        unknown = [name for name in ("out_data", "out_last") if not getattr(dut, name).value.is_resolvable]
        if unknown:  # an X or Z would make to_signed() raise: a one-line mismatch instead
            self._fail(image=image, logit=index, problem="X/Z", message=f"image {image}, logit {index}: "
                       f"{' and '.join(f'{name}={getattr(dut, name).value}' for name in unknown)} holds X/Z "
                       f"on {cocotb.SIM_NAME}")
        else:
            value, want = int(dut.out_data.value.to_signed()), int(self.expected[image, index])
            if value != want:
                self._fail(image=image, logit=index, got=value, expected=want)
            if bool(dut.out_last.value) != last:
                self._fail(image=image, logit=index, problem="out_last misplaced")
        if last:
            self.last_beat.append(int(dut.cycle_count.value.to_unsigned()))
            self.layer_cycles.append(_words(dut.layer_cycles.value, self.layers))
            self.layer_busy.append(_words(dut.layer_busy.value, self.layers))
        self.compared += 1

    def result(self, dut, names: list[str]) -> dict:
        return {
            "vectors": len(self.expected), "outputs_compared": self.compared,
            "mismatches": self.mismatches + self.expected.size - self.compared, "first_mismatch": self.first_bad,
            "first_beat": self.first_beat, "last_beat": self.last_beat, "layer_names": names,
            "layer_cycles": self.layer_cycles, "layer_busy": self.layer_busy,
            "total_cycles": int(dut.cycle_count.value.to_unsigned()),
        }


async def _reset(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def _stream(dut, beats: np.ndarray, board: Scoreboard, stall: float, rng, limit: int) -> None:
    """Offer the input beats and accept logits, each side stalling with probability ``stall``."""
    sent, per_image = 0, beats.shape[1]
    flat = beats.reshape(-1)
    while not board.done and int(dut.cycle_count.value.to_unsigned()) < limit:
        await RisingEdge(dut.clk)
        offer = sent < len(flat) and rng.random() >= stall
        dut.in_valid.value = int(offer)
        if offer:
            dut.in_data.value = int(flat[sent])
        take = rng.random() >= stall
        dut.out_ready.value = int(take)
        await ReadOnly()
        if not dut.out_valid.value and (sent == len(flat) or not dut.in_ready.value):
            await _idle(dut, sent < len(flat), limit)  # nothing can move: sleep until something can (fast)
            continue
        if offer and dut.in_ready.value:
            if sent % per_image == 0:
                board.first_beat.append(int(dut.cycle_count.value.to_unsigned()))
            sent += 1
        if take and dut.out_valid.value:
            board.logit(dut)


@cocotb.test()
async def network_matches_golden(dut) -> None:
    cfg = _config()
    network = load(cfg["project"] / "ir")
    rng = np.random.default_rng(cfg["seed"])
    images = rng.integers(0, 256, size=(cfg["vectors"], *network.input_shape), dtype=np.uint8)
    expected = golden.run(network, images)
    if cfg["corrupt"] >= 0:
        expected.reshape(-1)[cfg["corrupt"]] += 1
    hardware = [layer for layer in network.layers if layer.__class__.__name__ != "FlattenLayer"]
    limit = 100_000 + 50 * cfg["vectors"] * sum(modelled_cycles(layer) + 100 for layer in hardware)
    board = Scoreboard(expected, len(hardware))
    await _reset(dut)
    await _stream(dut, images.transpose(0, 2, 3, 1).reshape(len(images), -1), board, cfg["stall"], rng, limit)
    result = board.result(dut, [layer.name for layer in hardware])
    cfg["result"].write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    assert board.done, f"timeout: {board.compared} of {expected.size} logits after {limit} cycles"
    assert board.mismatches == 0, f"{board.mismatches} logits differ from the golden model; first: {board.first_bad}"
