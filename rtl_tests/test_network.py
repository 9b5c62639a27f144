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
from pyflow.ir import load
from pyflow.sim.cycles import modelled_cycles


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


@cocotb.test()
async def network_matches_golden(dut) -> None:
    cfg = _config()
    network = load(cfg["project"] / "ir")
    rng = np.random.default_rng(cfg["seed"])
    images = rng.integers(0, 256, size=(cfg["vectors"], *network.input_shape), dtype=np.uint8)
    expected = golden.run(network, images)
    if cfg["corrupt"] >= 0:
        expected.reshape(-1)[cfg["corrupt"]] += 1
    beats_in = images.transpose(0, 2, 3, 1).reshape(len(images), -1)
    hardware = [layer for layer in network.layers if layer.__class__.__name__ != "FlattenLayer"]
    limit = 100_000 + 50 * cfg["vectors"] * sum(modelled_cycles(layer) + 100 for layer in hardware)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    n_img, n_out = len(images), expected.shape[1]
    flat_in = beats_in.reshape(-1)
    i_in = i_out = 0
    first_beat, last_beat, got = [], [], np.zeros_like(expected)
    layer_cycles, layer_busy = [], []
    mismatches, first_bad = 0, None
    while int(dut.cycle_count.value.to_unsigned()) < limit:
        await RisingEdge(dut.clk)
        offer = i_in < len(flat_in) and rng.random() >= cfg["stall"]
        dut.in_valid.value = int(offer)
        if offer:
            dut.in_data.value = int(flat_in[i_in])
        take = rng.random() >= cfg["stall"]
        dut.out_ready.value = int(take)
        await ReadOnly()
        if not dut.out_valid.value and (i_in == len(flat_in) or not dut.in_ready.value):
            await _idle(dut, i_in < len(flat_in), limit)  # nothing can move: sleep until something can (fast)
            continue
        if offer and dut.in_ready.value:
            if i_in % beats_in.shape[1] == 0:
                first_beat.append(int(dut.cycle_count.value.to_unsigned()))
            i_in += 1
        if take and dut.out_valid.value:
            image, index = divmod(i_out, n_out)
            value = int(dut.out_data.value.to_signed())
            got[image, index] = value
            if value != int(expected[image, index]):
                mismatches += 1
                first_bad = first_bad or {"image": image, "logit": index, "got": value,
                                          "expected": int(expected[image, index])}
            if bool(dut.out_last.value) != (index == n_out - 1):
                mismatches += 1
                first_bad = first_bad or {"image": image, "logit": index, "problem": "out_last misplaced"}
            if index == n_out - 1:
                last_beat.append(int(dut.cycle_count.value.to_unsigned()))
                layer_cycles.append(_words(dut.layer_cycles.value, len(hardware)))
                layer_busy.append(_words(dut.layer_busy.value, len(hardware)))
            i_out += 1
            if i_out == n_img * n_out:
                break
    result = {
        "vectors": n_img, "outputs_compared": i_out, "mismatches": mismatches + (n_img * n_out - i_out),
        "first_mismatch": first_bad, "first_beat": first_beat, "last_beat": last_beat,
        "layer_names": [layer.name for layer in hardware], "layer_cycles": layer_cycles, "layer_busy": layer_busy,
        "total_cycles": int(dut.cycle_count.value.to_unsigned()),
    }
    cfg["result"].write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    assert i_out == n_img * n_out, f"timeout: {i_out} of {n_img * n_out} logits after {limit} cycles"
    assert mismatches == 0, f"{mismatches} logits differ from the golden model; first: {first_bad}"
