"""Verilog RTL backend: the hand-written engines of rtl_templates/ plus a thin generated top and ROM files.

Project layout (``OUT``)::

    Makefile            make sim SIM=icarus|verilator   (runs `pyflow sim` on this folder)
    ir/                 a copy of the IR, so a simulation can compute golden vectors from the project alone
    sizing.json         every width, depth and modelled cycle count the top was built with (pyflow.hw)
    verilog/            pf_*.v (copied library), pyflow_top.v (generated), *.mem ($readmemh ROMs)

Every number comes from :func:`pyflow.hw.sizing.network_sizing`; this module only turns it into a
plain list of wires and configured instances, which ``pyflow_top.v.j2`` writes out in a loop.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pyflow.artifacts import SIZING_FILE, project_root, write_json
from pyflow.codegen.context import environment
from pyflow.errors import PyflowError
from pyflow.hw import cycles
from pyflow.hw.engines import add_lanes, engines, readers
from pyflow.hw.sizing import (
    COUNTER_BITS,
    IDX_FIELD_BITS,
    BufferSizing,
    EngineSizing,
    NetworkSizing,
    addr_bits,
    clog2,
    network_sizing,
)
from pyflow.ir.io import save
from pyflow.ir.model import INPUT, M_BITS, AddLayer, MatrixLayer, Network, PoolLayer
from pyflow.ir.packing import word_values
from pyflow.util import atomic_folder

TOP = "pyflow_top"
SOURCE_DIR = "verilog"
LIBRARY = ("pf_adder_tree.v", "pf_pe_lanes.v", "pf_requant.v", "pf_fmap_buf.v", "pf_matrix_layer.v",
           "pf_pool_layer.v", "pf_add_layer.v", "pf_stream_in.v", "pf_stream_out.v")
WRITE_PORTS = ("wr_en", "wr_base", "wr_mask", "wr_data", "wr_done")
BUFFER_PORTS = ("wr_free", "wr_en", "wr_base", "wr_mask", "wr_data", "wr_done", "rd_full", "rd_base", "rd_data",
                "rd_done")
# Declaration order of a buffer's wires: handshakes, addresses, then data.
FEATURE_WIRES = ("wr_free", "wr_en", "wr_done", "rd_full", "rd_done", "wr_base", "rd_base", "rd_data", "wr_mask",
                 "wr_data")
LOGIT_WIRES = ("wr_free", "wr_en", "wr_done", "rd_full", "rd_done", "wr_base", "rd_base", "wr_mask", "wr_data",
               "rd_data")


def template_dir() -> Path:
    return project_root() / "rtl_templates"


def _hex(value: int, bits: int) -> str:
    return f"{value & ((1 << bits) - 1):0{-(-bits // 4)}x}"


def _range(bits: int) -> str:
    return f"[{bits - 1}:0] "


def _literal(value: int, bits: int) -> str:
    """A signed Verilog literal of ``bits`` bits."""
    return f"{'-' if value < 0 else ''}{bits}'sd{abs(value)}"


def ident(network: Network, layer: MatrixLayer | PoolLayer | AddLayer) -> str:
    """The instance / ROM-file stem of a layer: its position in the IR and its name."""
    return f"l{network.layers.index(layer)}_{layer.name}"


def _buffer_wires(prefix: str, buffer: BufferSizing, fixed: dict[str, str] | None = None,
                  order: tuple[str, ...] = FEATURE_WIRES) -> list[dict[str, str]]:
    """The wires of one buffer's ports, declared in ``order``; ``fixed`` ties some of them to a constant."""
    widths = {"wr_base": buffer.aw, "rd_base": buffer.aw, "wr_mask": buffer.wr_lanes,
              "wr_data": buffer.wr_lanes * buffer.bits, "rd_data": buffer.rd_lanes * buffer.bits}
    return [{"range": _range(widths[port]) if port in widths else "", "name": f"{prefix}_{port}",
             "value": (fixed or {}).get(port, "")} for port in order]


def _instance(module: str, name: str, comment: str, params: dict[str, Any], ports: dict[str, str],
              wires: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """One configured instance, with the wires declared just before it."""
    return {"module": module, "name": name, "comment": comment, "wires": wires or [],
            "params": [{"name": k, "value": str(v)} for k, v in params.items()],
            "ports": [{"name": k, "signal": v} for k, v in ports.items()]}


def _buffer_instance(prefix: str, name: str, comment: str, buffer: BufferSizing,
                     fixed: dict[str, str] | None = None, order: tuple[str, ...] = FEATURE_WIRES) -> dict[str, Any]:
    params = {"BITS": buffer.bits, "WR_LANES": buffer.wr_lanes, "RD_LANES": buffer.rd_lanes, "AW": buffer.aw,
              "LB": buffer.lb, "RW": buffer.rw, "WR_AB": buffer.wr_ab, "RD_AB": buffer.rd_ab}
    if not buffer.registered:  # the module's default is a registered read; Yosys names a module by the
        params["REG_READ"] = 0  # parameters given, and its results move a little with those names
    if buffer.banks != 2:  # likewise the default ping-pong pair
        params.update(BANKS=buffer.banks, BB=max(1, clog2(buffer.banks)))
    ports = {"clk": "clk", "rst": "rst", **{port: f"{prefix}_{port}" for port in BUFFER_PORTS}}
    return _instance("pf_fmap_buf", name, comment, params, ports, _buffer_wires(prefix, buffer, fixed, order))


def _matrix_params(network: Network, layer: MatrixLayer, sized: EngineSizing) -> dict[str, Any]:
    _, h_in, w_in = layer.in_shape
    _, h_out, w_out = layer.out_shape
    stem = ident(network, layer)
    return {"C_IN_PAD": layer.c_in_pad, "H_IN": h_in, "W_IN": w_in, "H_OUT": h_out, "W_OUT": w_out,
            "STRIDE": layer.stride, "PAD": layer.padding, "PE": layer.pe, "SIMD": layer.simd,
            "IN_BITS": layer.in_bits, "OUT_BITS": layer.out_bits, "ACC_BITS": layer.acc_bits, "SUM_W": sized.sum_w,
            "PE_LAT": sized.pe_lat, "M_BITS": M_BITS, "RQ_W": sized.rq_w, "SHIFT": layer.shift,
            "IS_OUTPUT": int(layer.is_output), **({"SIGNED": 1} if layer.signed else {}),
            **({"RELU": 1} if layer.relu else {}),
            "OUT_FOLDS": layer.out_folds, "PW": sized.pw,
            "OUT_CHANNELS": layer.out_channels, "OUT_STRIDE": sized.out_stride, "ROM_DEPTH": sized.rom_depth,
            "TW": sized.tw, "IN_AW": sized.in_buffer.aw, "OUT_AW": sized.out_aw, "MEM_DIR": "MEM_DIR",
            **{key: f'"{stem}_{suffix}.mem"' for key, suffix in
               (("W_FILE", "w"), ("IDX_FILE", "idx"), ("PTR_FILE", "ptr"), ("RQ_FILE", "rq"))}}


def _pool_params(layer: PoolLayer, sized: EngineSizing) -> dict[str, Any]:
    c, _, w_in = layer.in_shape
    _, h_out, w_out = layer.out_shape
    return {"C": c, "W_IN": w_in, "H_OUT": h_out, "W_OUT": w_out, "KERNEL": layer.kernel, "STRIDE": layer.stride,
            "BITS": layer.in_bits, "IS_MAX": int(layer.kind == "maxpool"), "SUM_BITS": layer.sum_bits,
            "M_BITS": M_BITS, "RQ_W": sized.rq_w, "M": _literal(layer.m, M_BITS), "B": _literal(layer.b, sized.rq_w),
            "SHIFT": layer.shift, "OUT_STRIDE": sized.out_stride, "IN_AW": sized.in_buffer.aw,
            "OUT_AW": sized.out_aw}


def _add_params(layer: AddLayer, sized: EngineSizing) -> dict[str, Any]:
    c, h, w = layer.in_shape
    return {"C": c, "PIXELS": h * w, "LANES": add_lanes(layer), "BITS": layer.in_bits,
            "A_SIGNED": int(layer.a_signed), "B_SIGNED": int(layer.b_signed), "M_BITS": M_BITS, "SUM_W": sized.rq_w,
            "M_A": _literal(layer.m_a, M_BITS), "M_B": _literal(layer.m_b, M_BITS), "CC": _literal(layer.c, sized.rq_w),
            "SHIFT": layer.shift, "OUT_STRIDE": sized.out_stride, "IN_AW": sized.in_buffer.aw, "OUT_AW": sized.out_aw}


def buffer_name(sized: EngineSizing, slot: int) -> str:
    """The wire prefix of an engine's input buffer: ``b<position>``, ``b<position>_<slot>`` for an add's second."""
    return f"b{sized.position}" if slot == 0 else f"b{sized.position}_{slot}"


def destinations(network: Network, sizing: NetworkSizing, source: str) -> list[str]:
    """The buffers ``source`` (an engine or INPUT) writes each image into: one per reader (a fork: several),
    in declaration order; the last engine writes the logit buffer."""
    found = [buffer_name(sizing.engine(consumer.name), slot) for consumer, slot in readers(network, source)]
    return found or ["lg"]


def _write_ports(network: Network, sizing: NetworkSizing, source: str) -> dict[str, str]:
    """The write side of ``source``: it drives the first destination's wires (the others copy them) and
    waits until every destination has a free bank."""
    targets = destinations(network, sizing, source)
    return {"out_free": " & ".join(f"{t}_wr_free" for t in targets),
            **{port: f"{targets[0]}_{port}" for port in WRITE_PORTS}}


def _engine_instance(network: Network, layer: MatrixLayer | PoolLayer | AddLayer, sized: EngineSizing,
                     sizing: NetworkSizing) -> dict[str, Any]:
    low = COUNTER_BITS * sized.position
    counter = f"[{low + COUNTER_BITS - 1}:{low}]"
    write = _write_ports(network, sizing, layer.name)
    ports = {"clk": "clk", "rst": "rst"}
    if isinstance(layer, AddLayer):
        a, b = buffer_name(sized, 0), buffer_name(sized, 1)
        ports |= {"a_full": f"{a}_rd_full", "b_full": f"{b}_rd_full", "rd_base": f"{a}_rd_base",
                  "a_data": f"{a}_rd_data", "b_data": f"{b}_rd_data", "in_done": f"{a}_rd_done"}
    else:
        source = buffer_name(sized, 0)
        ports |= {"in_full": f"{source}_rd_full", "rd_base": f"{source}_rd_base", "rd_data": f"{source}_rd_data",
                  "in_done": f"{source}_rd_done"}
    ports |= {"out_free": write["out_free"], "wr_en": write["wr_en"], "wr_base": write["wr_base"],
              "wr_mask": write["wr_mask"], "wr_data": write["wr_data"], "out_done": write["wr_done"],
              "cycles": f"layer_cycles{counter}", "busy": f"layer_busy{counter}"}
    comment = f"layer {sized.position}: {layer.name} ({getattr(layer, 'kind', 'add')})"
    if isinstance(layer, MatrixLayer):
        return _instance("pf_matrix_layer", f"u_{ident(network, layer)}", comment,
                         _matrix_params(network, layer, sized), ports)
    if isinstance(layer, AddLayer):
        return _instance("pf_add_layer", f"u_{ident(network, layer)}", comment, _add_params(layer, sized), ports)
    return _instance("pf_pool_layer", f"u_{ident(network, layer)}", comment, _pool_params(layer, sized), ports)


def _copied_writes(network: Network, sizing: NetworkSizing) -> dict[str, dict[str, str]]:
    """For every buffer after the first of a fork: its write wires, tied to the first destination's."""
    copies = {}
    for source in [INPUT, *(layer.name for layer in engines(network))]:
        first, *others = destinations(network, sizing, source)
        for target in others:
            copies[target] = {port: f"{first}_{port}" for port in WRITE_PORTS}
    return copies


def top_context(network: Network, sizing: NetworkSizing) -> dict[str, Any]:
    """The top as plain data: its ports' widths and its configured instances (with their wires), in file order."""
    hardware = engines(network)
    logits = sizing.logits
    c, h, w = network.input_shape
    copies = _copied_writes(network, sizing)
    instances = []
    for layer, sized in zip(hardware, sizing.engines, strict=True):
        for slot, buffer in enumerate(sized.in_buffers):
            name = buffer_name(sized, slot)
            fixed = dict(copies.get(name, {}))
            if buffer.source == INPUT and name not in copies:  # the input stream writes one element per beat
                fixed["wr_mask"] = "1'b1"
            if slot:  # an add reads both its buffers at one address and frees them together
                fixed |= {port: f"{buffer_name(sized, 0)}_{port}" for port in ("rd_base", "rd_done")}
            banks = f", {buffer.banks} banks: {buffer.banks_why}" if buffer.banks != 2 else ""
            instances.append(_buffer_instance(
                name, f"u_buf{name[1:]}", f"buffer {name[1:]}: input {slot} of {layer.name}, from {buffer.source} "
                f"({buffer.depth} x {buffer.bits}-bit elements per bank{banks})", buffer, fixed))
    instances.append(_buffer_instance("lg", "u_buf_logits", f"logit buffer ({logits.depth} x {logits.bits}-bit "
                                      "per bank)", logits, order=LOGIT_WIRES))
    stream = _write_ports(network, sizing, INPUT)
    first_input = destinations(network, sizing, INPUT)[0]
    consumer, slot = readers(network, INPUT)[0]
    instances.append(_instance(
        "pf_stream_in", "u_in", f"input stream -> {', '.join(destinations(network, sizing, INPUT))}",
        {"C": c, "H": h, "W": w, "C_PAD": sizing.input_stride, "BITS": sizing.input_bits,
         "AW": sizing.engine(consumer.name).in_buffers[slot].aw},
        {"clk": "clk", "rst": "rst", "in_valid": "in_valid", "in_ready": "in_ready", "in_data": "in_data",
         "wr_free": stream["out_free"], **{port: f"{first_input}_{port}" for port in ("wr_en", "wr_base", "wr_data",
                                                                                      "wr_done")}}))
    instances.append(_instance(
        "pf_stream_out", "u_out", "logit buffer -> output stream",
        {"N": logits.depth, "BITS": logits.bits, "AW": logits.aw},
        {"clk": "clk", "rst": "rst", **{port: f"lg_{port}" for port in ("rd_full", "rd_base", "rd_data", "rd_done")},
         "out_valid": "out_valid", "out_ready": "out_ready", "out_data": "out_data", "out_last": "out_last"}))
    for layer, sized in zip(hardware, sizing.engines, strict=True):
        instances.append(_engine_instance(network, layer, sized, sizing))
    return {"top": TOP, "name": network.name, "c_in": c, "h_in": h, "w_in": w, "logits": logits.depth,
            "in_range": _range(sizing.input_bits), "out_range": _range(sizing.logit_bits),
            "counter_bits": COUNTER_BITS, "counters_range": _range(COUNTER_BITS * len(hardware)),
            "done_range": _range(len(hardware)), "instances": instances,
            "done": [{"index": e.position, "signal": f"b{e.position}_rd_done"} for e in sizing.engines]}


def rom_files(layer: MatrixLayer, stem: str, rq_w: int) -> dict[str, list[str]]:
    """The four $readmemh ROMs of a matrix layer, as lists of hex words (index ROM: col_idx decoded)."""
    sentinel = "0" * -(-layer.word_bits // 4)
    weights = [_hex(word, layer.word_bits) for word in word_values(layer)]
    index = []
    for col in layer.col_idx.tolist():
        position, chunk = divmod(col, layer.chunks)
        k_y, k_x = divmod(position, layer.kernel)
        index.append(_hex(chunk << 2 * IDX_FIELD_BITS | k_x << IDX_FIELD_BITS | k_y, 3 * IDX_FIELD_BITS))
    ptr_bits = addr_bits(layer.n_kept + 1)
    pointers = [_hex(v, ptr_bits) for v in layer.row_ptr.tolist()]
    return {
        f"{stem}_w.mem": [*weights, sentinel],
        f"{stem}_idx.mem": [*index, "0" * (3 * IDX_FIELD_BITS // 4)],
        f"{stem}_ptr.mem": pointers,
        f"{stem}_rq.mem": [*_rq_words(layer, rq_w), _hex(0, layer.pe * (M_BITS + rq_w))],
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


def sizing_json(network: Network, sizing: NetworkSizing) -> dict[str, Any]:
    """sizing.json: the sizing plus each engine's modelled cycles and the pipeline interval (pyflow.hw)."""
    model = {layer.name: {"modelled": cycles.modelled_cycles(layer), "dense": cycles.dense_cycles(layer),
                          "busy": cycles.busy_cycles(layer),
                          "walk": cycles.walk_cycles(layer) if isinstance(layer, MatrixLayer) else None}
             for layer in engines(network)}
    stream_in, stream_out = cycles.stream_cycles(network)
    return {"network": network.name, **sizing.to_json(),
            "cycles": {"layers": model, "interval": cycles.interval_cycles(network),
                       "latency": cycles.latency_cycles(network), "stream_in": stream_in, "stream_out": stream_out,
                       "start_cycles": cycles.START_CYCLES}}


def render(network: Network, folder: Path) -> None:
    """Write verilog/ (library, top, ROMs), sizing.json and the Makefile into ``folder``."""
    env = environment(template_dir())
    sizing = network_sizing(network)
    context = top_context(network, sizing)
    source = folder / SOURCE_DIR
    source.mkdir(parents=True)
    for name in LIBRARY:
        shutil.copyfile(template_dir() / name, source / name)
    (source / f"{TOP}.v").write_text(env.get_template("pyflow_top.v.j2").render(**context))
    rom = env.get_template("rom.mem.j2")
    for layer, sized in zip(engines(network), sizing.engines, strict=True):
        if isinstance(layer, MatrixLayer):
            for name, words in rom_files(layer, ident(network, layer), sized.rq_w).items():
                (source / name).write_text(rom.render(name=name, layer=layer.name, words=words))
    (folder / "Makefile").write_text(env.get_template("Makefile.j2").render(**context))
    write_json(folder / SIZING_FILE, sizing_json(network, sizing))
    save(network, folder / "ir")


def generate(network: Network, board: Any, out: str | Path) -> Path:
    """Write the RTL project of ``network`` to ``out`` atomically; byte-identical for the same input."""
    if not engines(network):
        raise PyflowError(f"network {network.name!r}: nothing to generate (no conv, linear or pool layer)")
    with atomic_folder(out, kind="rtl") as tmp:
        render(network, tmp)
    return Path(out)
