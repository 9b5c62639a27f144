"""Analytical resource model of the generated RTL (rtl_templates/): LUT, FF, BRAM36, DSP — all *modelled*.

It follows the structure of the hand-written modules, from the numbers the RTL generator itself
uses (``pyflow.codegen.rtl.rtl_context``):

* ``pf_pe_lanes``: per lane a registered select/negate of ``SUM_W`` bits; per PE a pipelined adder tree
  of ``SIMD − 1`` adders (``SUM_W`` wide), registered every second level;
* the accumulators (``PE × ACC_BITS``) and ``pf_requant`` (per PE one ``acc × m`` multiplier → DSP48,
  ``acc·m`` and ``b`` registered at ``RQ_W`` bits);
* the ROMs: tile words (``n_kept + 1`` × ``2·PE·SIMD``), decoded index (``n_kept + 1`` × 48), row
  pointers and requant parameters (``out_folds + 1`` rows) — BRAM when large, LUT ROM when small;
* ``pf_fmap_buf``: ``2^LB`` lane memories of two image banks each — block RAM when large, else LUT RAM
  (RAM32M: 32 rows × 6 bits in 4 LUTs) — and two rotators that turn only by the accesses' alignment steps;
* per engine a fixed control cost (walker counters, the 32-bit cycle/busy counters, handshakes).

Yosys measures the real netlist (``yosys.json``); the report prints the two side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pyflow.boards import Board
from pyflow.ir.model import M_BITS, MatrixLayer, Network

BRAM36_BITS = 36 * 1024
BRAM36_SHAPES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
ROM_IN_LUTS_MAX_BITS = 4096  # smaller ROMs become LUT logic (64 bits per LUT6)
IDX_ENTRY_BITS = 48  # pf_matrix_layer's idx_rom: {chunk, k_x, k_y}, 16 bits each
PE_ARRAY_SHARE = 0.6  # share of the board's LUTs the folding may give to PE lanes
MATRIX_CONTROL = (300, 400)  # (LUT, FF) of the walker, counters and handshakes of one matrix engine
POOL_CONTROL = (60, 270)
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


def clog2(value: int) -> int:
    return max(0, int(value - 1).bit_length())


def sum_width(in_bits: int, simd: int) -> int:
    return in_bits + 1 + clog2(simd)


def lane_luts(in_bits: int, simd: int) -> int:
    """LUTs per ``PE × SIMD`` lane: its select/negate plus one adder-tree input (both ``SUM_W`` wide)."""
    return 2 * sum_width(in_bits, simd)


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


def rtl_index_bits(layer: MatrixLayer) -> int:
    """The RTL's index ROMs: decoded entries (48 bits, plus a sentinel) and the row-pointer ROM."""
    return (layer.n_kept + 1) * IDX_ENTRY_BITS + (layer.out_folds + 1) * max(1, clog2(layer.n_kept + 1))


def requant_bits(layer: MatrixLayer, rq_w: int) -> int:
    """The requant ROM: per output fold, per PE lane ``{b (RQ_W), m (M_BITS)}``."""
    return layer.out_folds * layer.pe * (M_BITS + rq_w)


def weight_bits(layer: MatrixLayer) -> int:
    return layer.n_kept * layer.word_bits


def matrix_estimate(engine: dict[str, Any]) -> Estimate:
    """One pf_matrix_layer with its PE lanes, requantizer and ROMs (``engine``: an rtl_context entry)."""
    rtl, pe, simd = engine["rtl"], engine["pe"], engine["simd"]
    sum_w, acc, rq_w = rtl["sum_w"], engine["acc_bits"], rtl["rq_w"]
    tree_regs = max(1, simd // 2)  # registered adder-tree nodes per PE (every second level)
    out_bits = min(engine["out_bits"], 32)
    lut = pe * simd * sum_w + pe * (simd - 1) * sum_w + pe * acc + 2 * pe * out_bits + MATRIX_CONTROL[0]
    ff = pe * simd * sum_w + pe * tree_regs * sum_w + pe * acc + pe * out_bits + MATRIX_CONTROL[1]
    roms = (rom_estimate(rtl["rom_depth"], engine["word_bits"]), rom_estimate(rtl["rom_depth"], IDX_ENTRY_BITS),
            rom_estimate(engine["out_folds"] + 1, rtl["tw"]),
            rom_estimate(engine["out_folds"] + 1, pe * (M_BITS + rq_w)))
    own = Estimate(lut, ff, 0.0, pe * dsp_for(acc, M_BITS))
    return sum(roms, ZERO) + own


def pool_estimate(engine: dict[str, Any]) -> Estimate:
    """One pf_pool_layer: per channel a window max (compare) or sum, and for avgpool a requant multiplier."""
    rtl, channels, bits = engine["rtl"], engine["c_in"], engine["in_bits"]
    if rtl["is_max"]:
        return Estimate(2 * channels * bits + POOL_CONTROL[0], 2 * channels * bits + POOL_CONTROL[1], 0.0, 0)
    sum_bits = engine["sum_bits"]
    lut = channels * (sum_bits + rtl["rq_w"]) + POOL_CONTROL[0]
    ff = channels * (sum_bits + 2 * rtl["rq_w"] + bits) + POOL_CONTROL[1]
    return Estimate(lut, ff, 0.0, channels * dsp_for(sum_bits, M_BITS))


def buffer_estimate(rtl_buffer: dict[str, int], bits: int, rd_lanes: int, registered: bool = True) -> Estimate:
    """A pf_fmap_buf (``rtl_buffer``: lb, rw, wr_ab, rd_ab as the RTL generator sizes it): per lane memory
    two banks of ``2^RW`` rows — block RAM when registered and at least ``ROM_IN_LUTS_MAX_BITS`` bits, else
    LUT RAM — and a row adder; the rotators are ``2^(LB − AB)``:1 multiplexers, a LUT6 per 4:1."""
    lanes, rows = 1 << rtl_buffer["lb"], 2 << rtl_buffer["rw"]
    if registered and rows * bits >= ROM_IN_LUTS_MAX_BITS:
        memory = Estimate(0, lanes * bits, lanes * bram36_for(rows, bits), 0)
    else:
        lutram = lanes * math.ceil(rows / LUTRAM_ROWS) * math.ceil(bits / LUTRAM_BITS) * LUTRAM_LUTS
        memory = Estimate(lutram, lanes * bits if registered else 0, 0.0, 0)
    write_mux = lanes * bits * math.ceil((rtl_buffer["lb"] - rtl_buffer["wr_ab"]) / 2)
    read_mux = rd_lanes * bits * math.ceil((rtl_buffer["lb"] - rtl_buffer["rd_ab"]) / 2)
    adders = 2 * lanes * rtl_buffer["rw"] if rtl_buffer["lb"] else 0
    return memory + Estimate(write_mux + read_mux + adders + BUF_CONTROL[0], BUF_CONTROL[1], 0.0, 0)


def engine_estimates(network: Network) -> dict[str, Estimate]:
    """Per hardware layer (flatten excluded): its engine plus its input buffer; the logits buffer goes to
    the last layer."""
    from pyflow.codegen.rtl import rtl_context

    context = rtl_context(network)
    engines, out = context["engines"], {}
    for engine in engines:
        rtl = engine["rtl"]
        core = matrix_estimate(engine) if rtl["engine"] == "matrix" else pool_estimate(engine)
        in_buffer = {key: rtl[f"in_{key}"] for key in ("lb", "rw", "wr_ab", "rd_ab")}
        out[engine["name"]] = core + buffer_estimate(in_buffer, engine["in_bits"], rtl["rd_lanes"])
    last = engines[-1]["name"]
    ports = Estimate(*STREAM_PORTS, 0.0, 0)
    logits = {key: context[f"logit_{key}"] for key in ("lb", "rw", "wr_ab")} | {"rd_ab": 0}
    out[last] = out[last] + buffer_estimate(logits, 32, 1, registered=False) + ports
    return out


def network_estimate(network: Network) -> Estimate:
    return sum(engine_estimates(network).values(), ZERO)


def rq_width(network: Network) -> dict[str, int]:
    """RQ_W per matrix layer, as the RTL generator sizes it."""
    from pyflow.codegen.rtl import rq_bits

    return {layer.name: rq_bits(layer) for layer in network.matrix_layers}
