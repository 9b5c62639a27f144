"""cocotb unit benches of the hand-written modules against NumPy/Python integers on random vectors.

Parameters come from the build (Verilog parameters) and are read back from the DUT's handles; the
expected latency comes from pyflow.hw.sizing and pyflow.hw.cycles, so these benches also pin the cycle model.
PYFLOW_CORRUPT=1 falsifies one expected value (the bench must then fail).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from pyflow.hw.cycles import POOL_FILL
from pyflow.hw.engines import REQUANT_LATENCY, pe_latency, tree_latency

CYCLES = 40


def _param(name: str) -> int:
    return int(os.environ[f"PYFLOW_P_{name}"])


def _corrupt() -> int:
    return int(os.environ.get("PYFLOW_CORRUPT", "0"))


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _pack(values, bits: int) -> int:
    word = 0
    for index, value in enumerate(values):
        word |= (int(value) & ((1 << bits) - 1)) << (index * bits)
    return word


def _unpack(word: int, count: int, bits: int) -> list[int]:
    return [_signed(word >> (i * bits), bits) for i in range(count)]


async def _pipeline(dut, drive, read, latency: int) -> None:
    """Drive a fresh random input every cycle; check the output ``latency`` cycles later with ==."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    expected, checked = [], 0
    for cycle in range(CYCLES + latency):
        await RisingEdge(dut.clk)
        expected.append(drive(cycle) if cycle < CYCLES else None)
        await ReadOnly()
        if cycle >= latency and expected[cycle - latency] is not None:
            want = expected[cycle - latency]
            if checked == 3 and _corrupt():
                want = [want[0] + 1, *want[1:]]
            assert read() == want, f"cycle {cycle}: got {read()}, expected {want}"
            checked += 1
    assert checked == CYCLES


@cocotb.test()
async def pe_lanes(dut) -> None:
    pe, simd, in_bits, sum_w = _param("PE"), _param("SIMD"), _param("IN_BITS"), _param("SUM_W")
    rng = np.random.default_rng(pe * 100 + simd)
    codes_of = {-1: 0b11, 0: 0b00, 1: 0b01}

    def drive(cycle: int) -> list[int]:
        x = rng.integers(0, 1 << in_bits, size=simd)
        t = rng.integers(-1, 2, size=(pe, simd))
        dut.x.value = _pack(x, in_bits)
        dut.w.value = _pack([codes_of[int(v)] for v in t.reshape(-1)], 2)  # lane (p, j) at bits 2(p·SIMD+j)
        return [int(v) for v in t.astype(np.int64) @ x.astype(np.int64)]

    await _pipeline(dut, drive, lambda: _unpack(int(dut.sums.value.to_unsigned()), pe, sum_w), pe_latency(simd))


@cocotb.test()
async def adder_tree(dut) -> None:
    n, w = _param("N"), _param("W")
    rng = np.random.default_rng(n)

    def drive(cycle: int) -> list[int]:
        leaves = rng.integers(-(1 << (w - 4)), 1 << (w - 4), size=n)
        dut.leaves.value = _pack(leaves, w)
        return [int(leaves.sum())]

    await _pipeline(dut, drive, lambda: [_signed(int(dut.sum.value.to_unsigned()), w)], tree_latency(n))


@cocotb.test()
async def requant(dut) -> None:
    lanes, acc_bits, m_bits = _param("LANES"), _param("ACC_BITS"), _param("M_BITS")
    rq_w, shift, out_bits, is_output = _param("RQ_W"), _param("SHIFT"), _param("OUT_BITS"), _param("IS_OUTPUT")
    rng = np.random.default_rng(acc_bits)

    def drive(cycle: int) -> list[int]:
        acc = [int(v) for v in rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), size=lanes)]
        m = [int(v) for v in rng.integers(-(1 << (m_bits - 1)), 1 << (m_bits - 1), size=lanes)]
        b = [int(v) for v in rng.integers(-(1 << (acc_bits + m_bits - 3)), 1 << (acc_bits + m_bits - 3), size=lanes)]
        dut.acc.value = _pack(acc, acc_bits)
        dut.m.value = _pack(m, m_bits)
        dut.b.value = _pack(b, rq_w)
        if is_output:
            return [_signed(a * k + c, out_bits) for a, k, c in zip(acc, m, b, strict=True)]
        return [min(max((a * k + c) >> shift, 0), (1 << out_bits) - 1) for a, k, c in zip(acc, m, b, strict=True)]

    def read() -> list[int]:
        word = int(dut.y.value.to_unsigned())
        values = [(word >> (i * out_bits)) & ((1 << out_bits) - 1) for i in range(lanes)]
        return [_signed(v, out_bits) for v in values] if is_output else values

    await _pipeline(dut, drive, read, REQUANT_LATENCY)


@cocotb.test()
async def pool(dut) -> None:
    c, h, w, k, s = _param("C"), _param("H_IN"), _param("W_IN"), _param("KERNEL"), _param("STRIDE")
    is_max, m, b, shift, bits = _param("IS_MAX"), _param("M"), _param("B"), _param("SHIFT"), _param("BITS")
    h_out, w_out = (h - k) // s + 1, (w - k) // s + 1
    rng = np.random.default_rng(c * 10 + h)
    fmap = rng.integers(0, 1 << bits, size=(h, w, c))
    windows = np.lib.stride_tricks.sliding_window_view(fmap, (k, k), axis=(0, 1))[::s, ::s]
    if is_max:
        want = windows.max(axis=(3, 4))
    else:
        want = np.clip((windows.sum(axis=(3, 4)) * m + b) >> shift, 0, (1 << bits) - 1)
    if _corrupt():
        want[0, 0, 0] += 1
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.in_en.value, dut.in_done.value = 1, 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for address, value in enumerate(fmap.reshape(-1)):  # HWC order
        dut.in_en.value, dut.in_addr.value, dut.in_data.value = 1, address, int(value)
        dut.in_done.value = int(address == fmap.size - 1)
        await RisingEdge(dut.clk)
    dut.in_en.value, dut.in_done.value = 0, 0
    got = np.full((h_out * w_out, c), -1)
    for _ in range(10 * h_out * w_out * k * k + 50):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if dut.wr_en.value:
            pixel = int(dut.wr_base.value.to_unsigned()) // c
            got[pixel] = [(int(dut.wr_data.value.to_unsigned()) >> (i * bits)) & ((1 << bits) - 1) for i in range(c)]
        if dut.out_done.value:
            break
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert got.tolist() == want.reshape(h_out * w_out, c).tolist()
    assert int(dut.cycles.value.to_unsigned()) == h_out * w_out * k * k + POOL_FILL
