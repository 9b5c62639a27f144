"""Every width, depth, lane bank, alignment and latency of the RTL engines (rtl_templates/pf_*.v).

:func:`network_sizing` sizes one network once; the RTL generator renders it (and writes it to
``rtl/sizing.json``), the resource model and the report read it. Flatten is no hardware: in HWC memory
order it moves no data, so the engines are the matrix and pool layers.

Feature buffers (``pf_fmap_buf``) hold one element per lane-memory word in ``2^LB`` lane memories of
``2^RW`` rows per image bank; an access of ``L`` consecutive elements at base ``a`` touches lanes
``a mod 2^LB …``, so its rotator only turns by multiples of ``2^AB`` where ``2^AB`` divides every base.

Graphs: every engine has one buffer per input (an add has two). A producer writes each image into the
buffers of all its readers at once (a fork: the same writes, so the readers must store a pixel alike)
and starts an image only when every one of them has a free bank. How many image banks each buffer has
comes from the cycle model (:func:`pyflow.hw.cycles.buffer_banks`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pyflow.errors import PyflowError
from pyflow.hw import cycles
from pyflow.hw.engines import (
    Engine,
    add_lanes,
    engine_inputs,
    engines,
    pe_latency,
    read_lanes,
    readers,
    write_lanes,
)
from pyflow.ir.model import INPUT, LOGIT_BITS, M_BITS, AddLayer, MatrixLayer, Network, PoolLayer

IDX_FIELD_BITS = 16  # k_y, k_x, channel chunk: 16 bits each in a decoded index-ROM entry
IDX_ENTRY_BITS = 3 * IDX_FIELD_BITS
COUNTER_BITS = 32  # the per-layer cycle and busy counters of the top


def clog2(value: int) -> int:
    return max(0, int(value - 1).bit_length())


def addr_bits(depth: int) -> int:
    """Address width of a memory of ``depth`` rows (at least one bit)."""
    return max(1, clog2(depth))


def tree_width(in_bits: int, simd: int) -> int:
    """Signed width of a sum of ``simd`` inputs of ``±(2^in_bits − 1)``."""
    return in_bits + 1 + clog2(simd)


def sum_width(layer: MatrixLayer) -> int:
    """SUM_W of a layer's PE lanes: its adder-tree width, never wider than its accumulator."""
    return min(tree_width(layer.in_bits, layer.simd), layer.acc_bits)


def rq_bits(layer: Engine) -> int:
    """Signed width holding acc·m + b (matrix), sum·m + b (average pool) or a·m_a + b·m_b + c (add)."""
    if isinstance(layer, PoolLayer):
        return layer.sum_bits + M_BITS + 2
    if isinstance(layer, AddLayer):
        return layer.sum_bits
    return max(layer.acc_bits + M_BITS + 1, layer.out_bits + 2)


def in_channels_stored(layer: Engine) -> int:
    """Elements per input pixel in the layer's input buffer (C_in padded to SIMD for a matrix layer)."""
    return layer.c_in_pad if isinstance(layer, MatrixLayer) else layer.in_shape[0]


def buffer_depth(layer: Engine) -> int:
    _, h, w = layer.in_shape
    return h * w * in_channels_stored(layer)


def lane_banks(depth: int, lanes: int) -> tuple[int, int]:
    """A feature buffer's lane memories: log2 of their count (>= the widest access) and their row width."""
    lb = clog2(lanes)
    return lb, addr_bits(-(-depth // (1 << lb)))


def alignment_bits(steps: list[int], lb: int) -> int:
    """log2 of the power of two dividing every access base ``Σ i·step`` (at most ``lb``).

    ``steps`` are the address steps of an engine's loops; a loop of one iteration contributes 0.
    """
    common = math.gcd(*steps)
    return lb if common == 0 else min(lb, (common & -common).bit_length() - 1)


def write_steps(layer: Engine, stride: int) -> list[int]:
    """Address steps of a layer's writes into its consumer's buffer: pixels, then (matrix) output folds
    or (add) channel groups."""
    pixels = layer.out_shape[1] * layer.out_shape[2]
    steps = [stride if pixels > 1 else 0]
    if isinstance(layer, MatrixLayer):
        steps.append(layer.pe if layer.out_folds > 1 else 0)
    if isinstance(layer, AddLayer):
        steps.append(add_lanes(layer) if add_lanes(layer) < layer.in_shape[0] else 0)
    return steps


def read_steps(layer: Engine) -> list[int]:
    """Address steps of a layer's reads from its input buffer: input pixels, then (matrix) SIMD chunks
    or (add) channel groups."""
    _, h, w = layer.in_shape
    steps = [in_channels_stored(layer) if h * w > 1 else 0]
    if isinstance(layer, MatrixLayer):
        steps.append(layer.simd if layer.chunks > 1 else 0)
    if isinstance(layer, AddLayer):
        steps.append(add_lanes(layer) if add_lanes(layer) < layer.in_shape[0] else 0)
    return steps


def pixel_stride(out_shape: tuple[int, int, int], consumer: Engine | None) -> int:
    """Elements between two written pixels in the consumer's buffer; a flatten in between packs them."""
    if consumer is None or consumer.in_shape != out_shape:
        return out_shape[0]
    return in_channels_stored(consumer)


@dataclass(frozen=True)
class BufferSizing:
    """One pf_fmap_buf: ``banks`` images of ``depth`` elements of ``bits`` bits."""

    depth: int
    bits: int
    aw: int
    wr_lanes: int
    rd_lanes: int
    lb: int  # log2 of the lane memories
    rw: int  # row address bits of one lane memory and bank
    wr_ab: int  # write alignment: bases are multiples of 2^wr_ab
    rd_ab: int
    registered: bool  # registered read (block RAM); the logit buffer reads combinationally
    banks: int = 2  # image banks: 2 (ping-pong) unless the cycle model asks for more (a skip)
    source: str = ""  # the engine (or INPUT) writing it
    banks_why: str = ""  # the cycle model's derivation of ``banks``


def buffer_sizing(depth: int, bits: int, wr_lanes: int, rd_lanes: int, wr_steps: list[int],
                  rd_steps: list[int], registered: bool = True, banks: int = 2, source: str = "",
                  banks_why: str = "") -> BufferSizing:
    lb, rw = lane_banks(depth, max(wr_lanes, rd_lanes))
    return BufferSizing(depth=depth, bits=bits, aw=addr_bits(depth), wr_lanes=wr_lanes, rd_lanes=rd_lanes, lb=lb,
                        rw=rw, wr_ab=alignment_bits(wr_steps, lb), rd_ab=alignment_bits(rd_steps, lb),
                        registered=registered, banks=banks, source=source, banks_why=banks_why)


@dataclass(frozen=True)
class EngineSizing:
    """One layer engine (pf_matrix_layer, pf_pool_layer or pf_add_layer) and the buffers in front of it."""

    name: str
    position: int  # pipeline position among the engines (counter slice, buffer number)
    engine: str  # "matrix", "pool" or "add"
    in_buffers: tuple[BufferSizing, ...]  # one per input (an add has two)
    out_stride: int  # elements between two output pixels in the buffers it writes
    out_aw: int
    wr_lanes: int  # elements written per cycle
    rq_w: int
    pe_lat: int = 0  # matrix only: PE lane latency
    sum_w: int = 0  # matrix only: adder-tree width
    pw: int = 0  # matrix only: output-fold counter width
    rom_depth: int = 0  # matrix only: kept tiles + a sentinel row
    tw: int = 0  # matrix only: tile-pointer width

    @property
    def in_buffer(self) -> BufferSizing:
        return self.in_buffers[0]


@dataclass(frozen=True)
class NetworkSizing:
    """The whole top: the engines in order, the input stream and the logit buffer."""

    engines: tuple[EngineSizing, ...]
    input_bits: int
    input_stride: int  # elements between two input pixels in the buffers the input stream writes
    logit_bits: int
    logits: BufferSizing

    def engine(self, name: str) -> EngineSizing:
        return next(e for e in self.engines if e.name == name)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> NetworkSizing:
        """The sizing as ``rtl/sizing.json`` carries it (the fields of :meth:`to_json`; others are ignored)."""
        sized = tuple(EngineSizing(**{**item, "in_buffers": tuple(BufferSizing(**b) for b in item["in_buffers"])})
                      for item in doc["engines"])
        return cls(engines=sized, input_bits=doc["input_bits"], input_stride=doc["input_stride"],
                   logit_bits=doc["logit_bits"], logits=BufferSizing(**doc["logits"]))


def _engine_sizing(layer: Engine, position: int, in_buffers: tuple[BufferSizing, ...], out_stride: int,
                   out_depth: int) -> EngineSizing:
    common = dict(name=layer.name, position=position, in_buffers=in_buffers, out_stride=out_stride,
                  out_aw=addr_bits(out_depth), wr_lanes=write_lanes(layer), rq_w=rq_bits(layer))
    if isinstance(layer, PoolLayer):
        return EngineSizing(engine="pool", **common)
    if isinstance(layer, AddLayer):
        return EngineSizing(engine="add", **common)
    rom_depth = layer.n_kept + 1
    return EngineSizing(engine="matrix", pe_lat=pe_latency(layer.simd), sum_w=sum_width(layer),
                        pw=clog2(layer.out_folds + 1), rom_depth=rom_depth, tw=addr_bits(rom_depth), **common)


def output_stride(network: Network, name: str, out_shape: tuple[int, int, int]) -> int:
    """Elements between two pixels ``name`` (an engine or INPUT) writes; every reader of a fork must agree."""
    strides = {pixel_stride(out_shape, consumer) for consumer, _ in readers(network, name)}
    if len(strides) > 1:
        names = ", ".join(consumer.name for consumer, _ in readers(network, name))
        raise PyflowError(f"layer {name!r} feeds {names}, whose input buffers store a pixel as "
                          f"{' and '.join(map(str, sorted(strides)))} elements: the readers of a fork must pad "
                          "their channels alike (give them the same SIMD, or one dividing the channel count)")
    return strides.pop() if strides else out_shape[0]


def network_sizing(network: Network) -> NetworkSizing:
    """Size every buffer and engine of ``network``'s RTL top."""
    hardware = engines(network)
    logits = math.prod(network.layers[-1].out_shape)
    layers = {layer.name: layer for layer in hardware}
    stride = {INPUT: output_stride(network, INPUT, network.input_shape)}
    stride.update({layer.name: output_stride(network, layer.name, layer.out_shape) for layer in hardware})
    banks = cycles.bank_plan(network)

    def writes(source: str) -> tuple[int, list[int]]:  # the input stream writes element by element
        if source == INPUT:
            return 1, [1]
        return write_lanes(layers[source]), write_steps(layers[source], stride[source])

    sized: list[EngineSizing] = []
    for position, layer in enumerate(hardware):
        in_buffers = []
        for slot, source in enumerate(engine_inputs(network, layer)):
            wr_lanes, wr_steps = writes(source)
            count, why = banks[layer.name, slot]
            in_buffers.append(buffer_sizing(buffer_depth(layer), layer.in_bits, wr_lanes, read_lanes(layer), wr_steps,
                                            read_steps(layer), banks=count, source=source, banks_why=why))
        out_depth = max((buffer_depth(c) for c, _ in readers(network, layer.name)), default=logits)
        sized.append(_engine_sizing(layer, position, tuple(in_buffers), stride[layer.name], out_depth))
    wr_lanes, wr_steps = writes(hardware[-1].name)
    logit_buffer = buffer_sizing(logits, LOGIT_BITS, wr_lanes, 1, wr_steps, [1], registered=False,
                                 source=hardware[-1].name)
    return NetworkSizing(engines=tuple(sized), input_bits=network.input_bits, input_stride=stride[INPUT],
                         logit_bits=LOGIT_BITS, logits=logit_buffer)
