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
ROM_IN_LUTS_MAX_BITS = 4096  # smaller feature-buffer lane memories become LUT RAM
# Yosys 0.70 maps an initialised ROM of up to one RAMB36's bits into LUTs (measured on VGG-small: a
# 257 x 128 weight ROM in LUTs, 289 x 128 in 2 RAMB36); constant bits are dropped first, hence the index
# ROM's width is the bits its (k_y, k_x, chunk) entries use, not the 48 the RTL declares.
ROM_IN_BRAM_MIN_BITS = BRAM36_BITS
PE_ARRAY_SHARE = 0.6  # share of the board's LUTs the folding may give to PE lanes
ADD_CONTROL = (60, 300)
STREAM_PORTS = (130, 100)  # pf_stream_in + pf_stream_out
LUTRAM_ROWS, LUTRAM_BITS, LUTRAM_LUTS = 32, 6, 4  # RAM32M: 32 rows x 6 bits, one write + one read port


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
    if bits <= ROM_IN_BRAM_MIN_BITS:
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


def index_bits_used(layer: MatrixLayer) -> int:
    """Bits of a decoded index entry that are not constant: k_y, k_x and the channel chunk."""
    return 2 * clog2(layer.kernel) + clog2(layer.c_in_pad // layer.simd)


def rom_shapes(layer: MatrixLayer, sizing: EngineSizing) -> tuple[tuple[int, int], ...]:
    """(depth, width) of the weight, index (its used bits), row-pointer and requant ROMs of a matrix engine."""
    return ((sizing.rom_depth, layer.word_bits), (sizing.rom_depth, max(1, index_bits_used(layer))),
            (layer.out_folds + 1, sizing.tw), (layer.out_folds + 1, layer.pe * (M_BITS + sizing.rq_w)))


def rom_bram36(layer: MatrixLayer, sizing: EngineSizing) -> float:
    """BRAM36 of the weight, index and requant ROMs (the row pointers are always small)."""
    weights, index, _, requant = rom_shapes(layer, sizing)
    return sum(rom_estimate(depth, width).bram36 for depth, width in (weights, index, requant))


# Coefficients of the structural terms (the *_features functions), per LUT / FF, fitted to Yosys 0.70's
# counts (synth_xilinx -noiopad, out of context) by non-negative least squares over every engine and feature
# buffer of 8 designs (VGG-small, digits, a CIFAR 2-conv net, LeNet-5, TFC, fuzz seeds 15-17):
#   .venv/bin/python benchmarks/resource_fit.py --fuzz 3
# which also prints each design's error after the fit (VGG-small: LUT -0.1 %, FF -2.4 %, BRAM36 0 %; refitted
# 2026-12-04 for the five-stage requantizer, whose delay registers Yosys packs into SRL16 LUTs: acc's LUT weight).
# Collinear terms (a lane's and the tree's width) share their weight as the fit chose; a term the fit gave 0
# is kept at 0 so the model is the one measured. A term the fit never saw (the add engine) is not here.
FIT = {
    "matrix": {"lut_lanes": 0.0, "lut_tree": 1.7461, "lut_acc": 8.9198, "lut_out": 0.0, "lut_rom": 1.7323,
               "lut_const": 0.0, "ff_lanes": 0.0, "ff_tree": 3.4453, "ff_acc": 2.4023, "ff_out": 0.0424,
               "ff_const": 299.112},
    "pool": {"lut_cmp": 0.9367, "lut_avg": 2.0392, "lut_const": 66.0176, "ff_cmp": 0.9966, "ff_avg": 0.217,
             "ff_const": 153.7458},
    "buffer": {"lut_lutram": 1.0866, "lut_mux": 0.2704, "lut_adders": 0.3696, "lut_const": 28.5743,
               "ff_regs": 0.9368, "ff_const": 0.0},
}


def _apply(kind: str, features: dict[str, float], fit: dict[str, float] | None) -> tuple[int, int]:
    """(LUT, FF) of a component: each feature times its coefficient (``fit``'s ``"kind.term"`` overrides FIT)."""
    override = {key.split(".", 1)[1]: value for key, value in (fit or {}).items() if key.startswith(kind + ".")}
    coefficients = {**FIT[kind], **override}
    lut = sum(coefficients.get(name, 1.0) * value for name, value in features.items() if name.startswith("lut_"))
    ff = sum(coefficients.get(name, 1.0) * value for name, value in features.items() if name.startswith("ff_"))
    return round(lut), round(ff)


def matrix_features(layer: MatrixLayer, sizing: EngineSizing) -> dict[str, float]:
    """The structural terms of one pf_matrix_layer: lane select/negate, adder tree, accumulators, requantizer
    output, LUT ROMs, and a constant for the walker, counters and handshakes."""
    pe, simd, sum_w, acc = layer.pe, layer.simd, sizing.sum_w, layer.acc_bits
    tree_regs = max(1, simd // 2)  # registered adder-tree nodes per PE (every second level)
    out_bits = min(layer.out_bits, 32)
    rom_luts = sum(rom_estimate(depth, width).lut for depth, width in rom_shapes(layer, sizing))
    return {"lut_lanes": pe * simd * sum_w, "lut_tree": pe * (simd - 1) * sum_w, "lut_acc": pe * acc,
            "lut_out": 2 * pe * out_bits, "lut_rom": rom_luts, "lut_const": 1,
            "ff_lanes": pe * simd * sum_w, "ff_tree": pe * tree_regs * sum_w, "ff_acc": pe * acc,
            "ff_out": pe * out_bits, "ff_const": 1}


def matrix_estimate(layer: MatrixLayer, sizing: EngineSizing, fit: dict[str, float] | None = None) -> Estimate:
    """One pf_matrix_layer with its PE lanes, requantizer and ROMs."""
    lut, ff = _apply("matrix", matrix_features(layer, sizing), fit)
    bram = sum(rom_estimate(depth, width).bram36 for depth, width in rom_shapes(layer, sizing))
    return Estimate(lut, ff, bram, layer.pe * dsp_for(layer.acc_bits, M_BITS))


def pool_features(layer: PoolLayer, sizing: EngineSizing) -> dict[str, float]:
    """Max-pool: per channel a window compare and its register; average-pool: a sum and a requantizer."""
    channels, bits = layer.in_shape[0], layer.in_bits
    if layer.kind == "maxpool":
        return {"lut_cmp": 2 * channels * bits, "lut_const": 1, "ff_cmp": 2 * channels * bits, "ff_const": 1}
    return {"lut_avg": channels * (layer.sum_bits + sizing.rq_w), "lut_const": 1,
            "ff_avg": channels * (layer.sum_bits + 2 * sizing.rq_w + bits), "ff_const": 1}


def pool_estimate(layer: PoolLayer, sizing: EngineSizing, fit: dict[str, float] | None = None) -> Estimate:
    """One pf_pool_layer: per channel a window max (compare) or sum, and for avgpool a requant multiplier."""
    lut, ff = _apply("pool", pool_features(layer, sizing), fit)
    dsp = 0 if layer.kind == "maxpool" else layer.in_shape[0] * dsp_for(layer.sum_bits, M_BITS)
    return Estimate(lut, ff, 0.0, dsp)


def add_estimate(layer: AddLayer, sizing: EngineSizing) -> Estimate:
    """One pf_add_layer: per lane two products, their sum with the constant, the shift and the clamp."""
    lanes, bits = add_lanes(layer), layer.in_bits
    lut = lanes * (2 * sizing.rq_w + bits) + ADD_CONTROL[0]
    ff = lanes * (2 * sizing.rq_w + bits) + ADD_CONTROL[1]
    return Estimate(lut, ff, 0.0, 2 * lanes * dsp_for(bits + 1, M_BITS))


def _buffer_memory(buffer: BufferSizing) -> tuple[bool, int]:
    """(in block RAM, LUTs of LUT RAM) of a pf_fmap_buf's lane memories."""
    lanes, rows, bits = 1 << buffer.lb, buffer.banks << buffer.rw, buffer.bits
    if buffer.registered and rows * bits >= ROM_IN_LUTS_MAX_BITS:
        return True, 0
    return False, lanes * math.ceil(rows / LUTRAM_ROWS) * math.ceil(bits / LUTRAM_BITS) * LUTRAM_LUTS


def buffer_features(buffer: BufferSizing) -> dict[str, float]:
    """A pf_fmap_buf: LUT RAM (when not block RAM), the write and read rotators (``2^(LB − AB)``:1
    multiplexers, a LUT6 per 4:1), the row adders, the registered read, and a constant."""
    lanes, bits = 1 << buffer.lb, buffer.bits
    _, lutram = _buffer_memory(buffer)
    write_mux = lanes * bits * math.ceil((buffer.lb - buffer.wr_ab) / 2)
    read_mux = buffer.rd_lanes * bits * math.ceil((buffer.lb - buffer.rd_ab) / 2)
    return {"lut_lutram": lutram, "lut_mux": write_mux + read_mux, "lut_adders": 2 * lanes * buffer.rw if buffer.lb
            else 0, "lut_const": 1, "ff_regs": lanes * bits if buffer.registered else 0, "ff_const": 1}


def buffer_estimate(buffer: BufferSizing, fit: dict[str, float] | None = None) -> Estimate:
    """A pf_fmap_buf: per lane memory ``banks`` banks of ``2^RW`` rows — block RAM when registered and at
    least ``ROM_IN_LUTS_MAX_BITS`` bits, else LUT RAM — with its rotators and row adders."""
    in_bram, _ = _buffer_memory(buffer)
    lut, ff = _apply("buffer", buffer_features(buffer), fit)
    rows = buffer.banks << buffer.rw
    bram = (1 << buffer.lb) * bram36_for(rows, buffer.bits) if in_bram else 0.0
    return Estimate(lut, ff, bram, 0)


def engine_estimates(network: Network, sizing: NetworkSizing, fit: dict[str, float] | None = None
                     ) -> dict[str, Estimate]:
    """Per engine (flatten has none): its core plus its input buffers; the logit buffer and the stream
    ports go to the last engine. ``fit`` (``"kind.term": coefficient``) overrides FIT, for the fit itself."""
    out = {}
    for layer, sized in zip(engines(network), sizing.engines, strict=True):
        if isinstance(layer, MatrixLayer):
            core = matrix_estimate(layer, sized, fit)
        elif isinstance(layer, AddLayer):
            core = add_estimate(layer, sized)
        else:
            core = pool_estimate(layer, sized, fit)
        out[layer.name] = sum((buffer_estimate(buffer, fit) for buffer in sized.in_buffers), core)
    last = sizing.engines[-1].name
    out[last] = out[last] + buffer_estimate(sizing.logits, fit) + Estimate(*STREAM_PORTS, 0.0, 0)
    return out


def network_estimate(network: Network, sizing: NetworkSizing, fit: dict[str, float] | None = None) -> Estimate:
    return sum(engine_estimates(network, sizing, fit).values(), ZERO)
