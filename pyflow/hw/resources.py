"""Analytical resource model of the generated RTL (rtl_templates/): LUT, FF, BRAM36, DSP — all *modelled*.

It follows the structure of the hand-written modules, from the sizing the RTL generator renders
(:func:`pyflow.hw.sizing.network_sizing`):

* ``pf_pe_lanes``: per lane a registered select/negate of ``SUM_W`` bits; per PE a pipelined adder tree
  of ``SIMD − 1`` adders (``SUM_W`` wide), registered every second level;
* the accumulators (``PE × ACC_BITS``) and ``pf_requant`` (per PE one ``acc × m`` multiplier → DSP48,
  ``acc·m`` and ``b`` registered at ``RQ_W`` bits);
* the ROMs: tile words (``n_kept + 1`` × ``2·PE·SIMD``), decoded index (``n_kept + 1`` × 48), row
  pointers and requant parameters (``out_folds + 1`` rows) — BRAM when large, LUT ROM when small;
* ``pf_fmap_buf``: ``2^LB`` lane memories of ``banks`` image banks each (two, more for a skip) — block
  RAM when large, else LUT RAM (RAM32M: 32 rows × 6 bits in 4 LUTs) — and two rotators that turn only by
  the accesses' alignment steps;
* ``pf_add_layer``: per lane two constant multipliers (DSP48) and a sum, shift and clamp;
* per engine a fixed control cost (walker counters, the 32-bit cycle/busy counters, handshakes).

Yosys measures the real netlist (``yosys.json``); the report prints the two side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyflow.boards import Board
from pyflow.hw.engines import add_lanes, engines
from pyflow.hw.sizing import IDX_ENTRY_BITS, BufferSizing, EngineSizing, NetworkSizing, clog2, tree_width
from pyflow.ir.model import M_BITS, AddLayer, MatrixLayer, Network, PoolLayer

BRAM36_BITS = 36 * 1024
BRAM36_SHAPES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
ROM_IN_LUTS_MAX_BITS = 4096  # smaller ROMs become LUT logic (64 bits per LUT6)
PE_ARRAY_SHARE = 0.6  # share of the board's LUTs the folding may give to PE lanes
MATRIX_CONTROL = (300, 400)  # (LUT, FF) of the walker, counters and handshakes of one matrix engine
POOL_CONTROL = (60, 270)
ADD_CONTROL = (60, 300)
STREAM_PORTS = (130, 100)  # pf_stream_in + pf_stream_out
LUTRAM_ROWS, LUTRAM_BITS, LUTRAM_LUTS = 32, 6, 4  # RAM32M: 32 rows x 6 bits, one write + one read port
BUF_CONTROL = (40, 4)  # bank flags and offsets of one pf_fmap_buf


@dataclass(frozen=True)
class Estimate:
    lut: int
    ff: int
    bram36: float
    dsp: int

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.lut + other.lut, self.ff + other.ff, self.bram36 + other.bram36, self.dsp + other.dsp)


ZERO = Estimate(0, 0, 0.0, 0)


def lane_luts(in_bits: int, simd: int) -> int:
    """LUTs per ``PE × SIMD`` lane: its select/negate plus one adder-tree input (both tree-width wide)."""
    return 2 * tree_width(in_bits, simd)


def lane_budget(board: Board, in_bits: int = 8, simd: int = 8) -> int:
    """``PE·SIMD`` lanes the board's LUTs hold, leaving a share for buffers, ROMs and control."""
    return int(board.resources.lut * PE_ARRAY_SHARE) // lane_luts(in_bits, simd)


def bram36_for(depth: int, width: int) -> float:
    """RAMB36 count of a ``depth × width`` memory; 0.5 when one RAMB18 holds it."""
    if depth <= 0 or width <= 0:
        return 0.0
    best = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in BRAM36_SHAPES)
    return 0.5 if best == 1 and depth * width <= BRAM36_BITS // 2 else float(best)


def rom_estimate(depth: int, width: int) -> Estimate:
    bits = depth * width
    if bits <= ROM_IN_LUTS_MAX_BITS:
        return Estimate(math.ceil(bits / 64), 0, 0.0, 0)
    return Estimate(0, 0, bram36_for(depth, width), 0)


def dsp_for(a_bits: int, b_bits: int) -> int:
    """DSP48 slices of a signed ``a_bits × b_bits`` multiplier (25 × 18 per slice)."""
    return math.ceil(a_bits / 25) * math.ceil(b_bits / 18)


def index_rom_bits(layer: MatrixLayer) -> int:
    """The RTL's index ROMs: decoded entries (48 bits, plus a sentinel) and the row-pointer ROM."""
    return (layer.n_kept + 1) * IDX_ENTRY_BITS + (layer.out_folds + 1) * max(1, clog2(layer.n_kept + 1))


def requant_rom_bits(layer: MatrixLayer, rq_w: int) -> int:
    """The requant ROM: per output fold, per PE lane ``{b (RQ_W), m (M_BITS)}``."""
    return layer.out_folds * layer.pe * (M_BITS + rq_w)


def weight_rom_bits(layer: MatrixLayer) -> int:
    return layer.n_kept * layer.word_bits


def rom_shapes(layer: MatrixLayer, sizing: EngineSizing) -> tuple[tuple[int, int], ...]:
    """(depth, width) of the weight, index, row-pointer and requant ROMs of a matrix engine."""
    return ((sizing.rom_depth, layer.word_bits), (sizing.rom_depth, IDX_ENTRY_BITS),
            (layer.out_folds + 1, sizing.tw), (layer.out_folds + 1, layer.pe * (M_BITS + sizing.rq_w)))


def rom_bram36(layer: MatrixLayer, sizing: EngineSizing) -> float:
    """BRAM36 of the weight, index and requant ROMs (the row pointers are always small)."""
    weights, index, _, requant = rom_shapes(layer, sizing)
    return sum(rom_estimate(depth, width).bram36 for depth, width in (weights, index, requant))


def matrix_estimate(layer: MatrixLayer, sizing: EngineSizing) -> Estimate:
    """One pf_matrix_layer with its PE lanes, requantizer and ROMs."""
    pe, simd, sum_w, acc = layer.pe, layer.simd, sizing.sum_w, layer.acc_bits
    tree_regs = max(1, simd // 2)  # registered adder-tree nodes per PE (every second level)
    out_bits = min(layer.out_bits, 32)
    lut = pe * simd * sum_w + pe * (simd - 1) * sum_w + pe * acc + 2 * pe * out_bits + MATRIX_CONTROL[0]
    ff = pe * simd * sum_w + pe * tree_regs * sum_w + pe * acc + pe * out_bits + MATRIX_CONTROL[1]
    roms = sum((rom_estimate(depth, width) for depth, width in rom_shapes(layer, sizing)), ZERO)
    return roms + Estimate(lut, ff, 0.0, pe * dsp_for(acc, M_BITS))


def pool_estimate(layer: PoolLayer, sizing: EngineSizing) -> Estimate:
    """One pf_pool_layer: per channel a window max (compare) or sum, and for avgpool a requant multiplier."""
    channels, bits = layer.in_shape[0], layer.in_bits
    if layer.kind == "maxpool":
        return Estimate(2 * channels * bits + POOL_CONTROL[0], 2 * channels * bits + POOL_CONTROL[1], 0.0, 0)
    lut = channels * (layer.sum_bits + sizing.rq_w) + POOL_CONTROL[0]
    ff = channels * (layer.sum_bits + 2 * sizing.rq_w + bits) + POOL_CONTROL[1]
    return Estimate(lut, ff, 0.0, channels * dsp_for(layer.sum_bits, M_BITS))


def add_estimate(layer: AddLayer, sizing: EngineSizing) -> Estimate:
    """One pf_add_layer: per lane two products, their sum with the constant, the shift and the clamp."""
    lanes, bits = add_lanes(layer), layer.in_bits
    lut = lanes * (2 * sizing.rq_w + bits) + ADD_CONTROL[0]
    ff = lanes * (2 * sizing.rq_w + bits) + ADD_CONTROL[1]
    return Estimate(lut, ff, 0.0, 2 * lanes * dsp_for(bits + 1, M_BITS))


def buffer_estimate(buffer: BufferSizing) -> Estimate:
    """A pf_fmap_buf: per lane memory ``banks`` banks of ``2^RW`` rows — block RAM when registered and at
    least ``ROM_IN_LUTS_MAX_BITS`` bits, else LUT RAM — and a row adder; the rotators are ``2^(LB − AB)``:1
    multiplexers, a LUT6 per 4:1."""
    lanes, rows, bits = 1 << buffer.lb, buffer.banks << buffer.rw, buffer.bits
    if buffer.registered and rows * bits >= ROM_IN_LUTS_MAX_BITS:
        memory = Estimate(0, lanes * bits, lanes * bram36_for(rows, bits), 0)
    else:
        lutram = lanes * math.ceil(rows / LUTRAM_ROWS) * math.ceil(bits / LUTRAM_BITS) * LUTRAM_LUTS
        memory = Estimate(lutram, lanes * bits if buffer.registered else 0, 0.0, 0)
    write_mux = lanes * bits * math.ceil((buffer.lb - buffer.wr_ab) / 2)
    read_mux = buffer.rd_lanes * bits * math.ceil((buffer.lb - buffer.rd_ab) / 2)
    adders = 2 * lanes * buffer.rw if buffer.lb else 0
    return memory + Estimate(write_mux + read_mux + adders + BUF_CONTROL[0], BUF_CONTROL[1], 0.0, 0)


def engine_estimates(network: Network, sizing: NetworkSizing) -> dict[str, Estimate]:
    """Per engine (flatten has none): its core plus its input buffers; the logit buffer and the stream
    ports go to the last engine."""
    out = {}
    for layer, sized in zip(engines(network), sizing.engines, strict=True):
        if isinstance(layer, MatrixLayer):
            core = matrix_estimate(layer, sized)
        elif isinstance(layer, AddLayer):
            core = add_estimate(layer, sized)
        else:
            core = pool_estimate(layer, sized)
        out[layer.name] = sum((buffer_estimate(buffer) for buffer in sized.in_buffers), core)
    last = sizing.engines[-1].name
    out[last] = out[last] + buffer_estimate(sizing.logits) + Estimate(*STREAM_PORTS, 0.0, 0)
    return out


def network_estimate(network: Network, sizing: NetworkSizing) -> Estimate:
    return sum(engine_estimates(network, sizing).values(), ZERO)
