"""Verilog RTL backend: the hand-written engines of rtl_templates/ plus a thin generated top and ROM files.

Project layout (``OUT``)::

    Makefile            make sim SIM=icarus|verilator   (runs `pyflow sim` on this folder)
    ir/                 a copy of the IR, so a simulation can compute golden vectors from the project alone
    verilog/            pf_*.v (copied library), pyflow_top.v (generated), *.mem ($readmemh ROMs)

Every number the top needs is computed here, once, into the per-layer dict of
:func:`pyflow.codegen.context.layer_context` extended with an ``rtl`` entry; the templates only loop.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from pyflow.codegen.context import environment, network_context, project_root
from pyflow.errors import PyflowError
from pyflow.ir.model import M_BITS, FlattenLayer, MatrixLayer, Network, PoolLayer
from pyflow.sim.cycles import pe_latency
from pyflow.util import atomic_folder

TOP = "pyflow_top"
SOURCE_DIR = "verilog"
LIBRARY = ("pf_adder_tree.v", "pf_pe_lanes.v", "pf_requant.v", "pf_fmap_buf.v", "pf_matrix_layer.v",
           "pf_pool_layer.v", "pf_stream_in.v", "pf_stream_out.v")
IDX_FIELD_BITS = 16  # k_y, k_x, channel chunk: 16 bits each in an index ROM word


def template_dir() -> Path:
    return project_root() / "rtl_templates"


def clog2(value: int) -> int:
    return max(0, int(value - 1).bit_length())


def addr_bits(depth: int) -> int:
    return max(1, clog2(depth))


def _hex(value: int, bits: int) -> str:
    return f"{value & ((1 << bits) - 1):0{-(-bits // 4)}x}"


def engines(network: Network) -> list[MatrixLayer | PoolLayer]:
    """The layers that become hardware (flatten is a no-op in HWC memory order)."""
    return [layer for layer in network.layers if not isinstance(layer, FlattenLayer)]


def read_lanes(layer: MatrixLayer | PoolLayer) -> int:
    return layer.simd if isinstance(layer, MatrixLayer) else layer.in_shape[0]


def write_lanes(layer: MatrixLayer | PoolLayer) -> int:
    return layer.pe if isinstance(layer, MatrixLayer) else layer.in_shape[0]


def in_channels_stored(layer: MatrixLayer | PoolLayer) -> int:
    """Elements per input pixel in the layer's input buffer (C_in padded to SIMD for a matrix layer)."""
    return layer.c_in_pad if isinstance(layer, MatrixLayer) else layer.in_shape[0]


def buffer_depth(layer: MatrixLayer | PoolLayer) -> int:
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


def write_steps(layer: MatrixLayer | PoolLayer, stride: int) -> list[int]:
    """Address steps of a layer's writes into its consumer's buffer: pixels, then (matrix) output folds."""
    pixels = layer.out_shape[1] * layer.out_shape[2]
    steps = [stride if pixels > 1 else 0]
    if isinstance(layer, MatrixLayer):
        steps.append(layer.pe if layer.out_folds > 1 else 0)
    return steps


def read_steps(layer: MatrixLayer | PoolLayer) -> list[int]:
    """Address steps of a layer's reads from its input buffer: input pixels, then (matrix) SIMD chunks."""
    _, h, w = layer.in_shape
    steps = [in_channels_stored(layer) if h * w > 1 else 0]
    if isinstance(layer, MatrixLayer):
        steps.append(layer.simd if layer.chunks > 1 else 0)
    return steps


def out_stride(layer: MatrixLayer | PoolLayer, consumer: MatrixLayer | PoolLayer | None) -> int:
    """Elements between two output pixels in the consumer's buffer (a flatten in between packs them)."""
    channels = layer.out_shape[0]
    if consumer is None or consumer.in_shape != layer.out_shape:
        return channels
    return in_channels_stored(consumer)


def rq_bits(layer: MatrixLayer | PoolLayer) -> int:
    """Signed width holding acc·m + b (matrix) or sum·m + b (average pool), with a spare bit."""
    if isinstance(layer, PoolLayer):
        return layer.sum_bits + M_BITS + 2
    return max(layer.acc_bits + M_BITS + 1, layer.out_bits + 2)


def _rtl_matrix(layer: MatrixLayer, consumer: MatrixLayer | PoolLayer | None, out_depth: int) -> dict[str, Any]:
    rom_depth = layer.n_kept + 1
    return {
        "engine": "matrix", "pe_lat": pe_latency(layer.simd),
        "sum_w": min(layer.in_bits + 1 + clog2(layer.simd), layer.acc_bits), "rq_w": rq_bits(layer),
        "pw": clog2(layer.out_folds + 1), "rom_depth": rom_depth, "tw": addr_bits(rom_depth),
        "out_stride": out_stride(layer, consumer), "out_aw": addr_bits(out_depth),
        "wr_lanes": layer.pe, "out_elem_bits": layer.out_bits,
    }


def _rtl_pool(layer: PoolLayer, consumer: MatrixLayer | PoolLayer | None, out_depth: int) -> dict[str, Any]:
    m_literal = f"{'-' if layer.m < 0 else ''}{M_BITS}'sd{abs(layer.m)}"
    b_literal = f"{'-' if layer.b < 0 else ''}{rq_bits(layer)}'sd{abs(layer.b)}"
    return {
        "engine": "pool", "is_max": int(layer.kind == "maxpool"), "rq_w": rq_bits(layer),
        "m_literal": m_literal, "b_literal": b_literal, "out_stride": out_stride(layer, consumer),
        "out_aw": addr_bits(out_depth), "wr_lanes": layer.in_shape[0], "out_elem_bits": layer.out_bits,
    }


def rtl_context(network: Network) -> dict[str, Any]:
    """network_context plus, per hardware layer, its ``rtl`` numbers and its input buffer."""
    context = network_context(network)
    hardware = engines(network)
    by_name = {layer["name"]: layer for layer in context["layers"]}
    layers = []
    for position, layer in enumerate(hardware):
        consumer = hardware[position + 1] if position + 1 < len(hardware) else None
        out_depth = buffer_depth(consumer) if consumer else _logits(network)
        build = _rtl_matrix if isinstance(layer, MatrixLayer) else _rtl_pool
        rtl = build(layer, consumer, out_depth)
        producer = hardware[position - 1] if position else None
        lb, rw = lane_banks(buffer_depth(layer), max(write_lanes(producer) if producer else 1, read_lanes(layer)))
        # the input stream writes element by element (one lane: any offset)
        wr_steps = write_steps(producer, layers[position - 1]["rtl"]["out_stride"]) if producer else [1]
        rtl.update(position=position, in_depth=buffer_depth(layer), in_aw=addr_bits(buffer_depth(layer)),
                   rd_lanes=read_lanes(layer), in_lb=lb, in_rw=rw, in_wr_ab=alignment_bits(wr_steps, lb),
                   in_rd_ab=alignment_bits(read_steps(layer), lb), in_stored=in_channels_stored(layer))
        layers.append({**by_name[layer.name], "rtl": rtl})
    logits = _logits(network)
    logit_lb, logit_rw = lane_banks(logits, write_lanes(hardware[-1]))
    logit_wr_ab = alignment_bits(write_steps(hardware[-1], layers[-1]["rtl"]["out_stride"]), logit_lb)
    first = hardware[0]
    # the input stream writes pixel after pixel at this stride: a flatten before the first engine packs them
    in_stored = in_channels_stored(first) if first.in_shape == network.input_shape else network.input_shape[0]
    context.update(top=TOP, engines=layers, n_engines=len(layers), logits=logits, logit_aw=addr_bits(logits),
                   logit_lb=logit_lb, logit_rw=logit_rw, logit_wr_ab=logit_wr_ab,
                   in_stored=in_stored, m_bits=M_BITS)
    return context


def _logits(network: Network) -> int:
    c, h, w = network.layers[-1].out_shape
    return c * h * w


def rom_files(layer: MatrixLayer, ident: str, rq_w: int) -> dict[str, list[str]]:
    """The four $readmemh ROMs of a matrix layer, as lists of hex words (index ROM: col_idx decoded)."""
    sentinel = "0" * -(-layer.word_bits // 4)
    weights = [_hex(int.from_bytes(word.tobytes(), "little"), layer.word_bits) for word in layer.words]
    index = []
    for col in layer.col_idx.tolist():
        position, chunk = divmod(col, layer.chunks)
        k_y, k_x = divmod(position, layer.kernel)
        index.append(_hex(chunk << 2 * IDX_FIELD_BITS | k_x << IDX_FIELD_BITS | k_y, 3 * IDX_FIELD_BITS))
    ptr_bits = addr_bits(layer.n_kept + 1)
    pointers = [_hex(v, ptr_bits) for v in layer.row_ptr.tolist()]
    return {
        f"{ident}_w.mem": [*weights, sentinel],
        f"{ident}_idx.mem": [*index, "0" * 12],
        f"{ident}_ptr.mem": pointers,
        f"{ident}_rq.mem": [*_rq_words(layer, rq_w), _hex(0, layer.pe * (M_BITS + rq_w))],
    }


def _rq_words(layer: MatrixLayer, rq_w: int) -> list[str]:
    lane_bits = M_BITS + rq_w
    words = []
    for fold in range(layer.out_folds):
        word = 0
        for lane in range(layer.pe):
            channel = fold * layer.pe + lane
            m, b = (int(layer.m[channel]), int(layer.b[channel])) if channel < layer.out_channels else (0, 0)
            word |= ((m & ((1 << M_BITS) - 1)) | (b & ((1 << rq_w) - 1)) << M_BITS) << lane * lane_bits
        words.append(_hex(word, layer.pe * lane_bits))
    return words


def render(network: Network, folder: Path) -> None:
    """Write verilog/ (library, top, ROMs) and the Makefile into ``folder``."""
    from pyflow.ir.io import save

    env = environment(template_dir())
    context = rtl_context(network)
    source = folder / SOURCE_DIR
    source.mkdir(parents=True)
    for name in LIBRARY:
        shutil.copyfile(template_dir() / name, source / name)
    (source / f"{TOP}.v").write_text(env.get_template("pyflow_top.v.j2").render(**context))
    rom = env.get_template("rom.mem.j2")
    for layer, item in zip(engines(network), context["engines"], strict=True):
        if isinstance(layer, MatrixLayer):
            for name, words in rom_files(layer, item["ident"], item["rtl"]["rq_w"]).items():
                (source / name).write_text(rom.render(name=name, layer=item["name"], words=words))
    (folder / "Makefile").write_text(env.get_template("Makefile.j2").render(**context))
    save(network, folder / "ir")


def generate(network: Network, board: Any, out: str | Path) -> Path:
    """Write the RTL project of ``network`` to ``out`` atomically; byte-identical for the same input."""
    if not engines(network):
        raise PyflowError(f"network {network.name!r}: nothing to generate (no conv, linear or pool layer)")
    with atomic_folder(out, kind="rtl") as tmp:
        render(network, tmp)
    return Path(out)
