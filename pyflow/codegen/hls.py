"""The HLS C++ backend: render hls_templates/ into a Vitis-HLS-ready project folder.

Project layout (written atomically, byte-identical for the same IR and board)::

    run_hls.tcl          Vitis HLS: csim, csynth, cosim, export_design for the board's part and clock
    src/pyflow_hls.h     the hand-written layer library (copied verbatim)
    src/layers.h         one configuration struct per layer
    src/weights.h        packed weight ROMs, CSR index ROMs, requantization tables
    src/top.h, top.cpp   the DATAFLOW top function: the layers in topological order, each reading its input
                         array(s) by name from the DAG, a fork process per extra reader of a layer
    tb/tb.cpp            C testbench: input + golden files in, exit status 0 only if all outputs match
    tb_data/             a few seeded vectors so `vitis_hls -f run_hls.tcl` has data for its csim
    ir/                  a copy of the IR, so `pyflow csim` computes golden vectors from the project alone

Templates see the dicts of :mod:`pyflow.codegen.context` plus the few HLS-only keys added here
(ROM rows split into 64-bit chunks, C types of the index ROMs and activations, the feature arrays and
the dataflow processes).

Feature arrays: layer ``i``'s output is ``buf{i+1}`` (the image is ``image``, the logits ``logits``).
DATAFLOW wants one producer and one consumer per array, so an array read by N layers feeds a chain of
N - 1 fork processes, reader ``k`` reading ``buf{i+1}_{k}``. An array an add reads holds as many images
as the RTL's cycle model gives that add input (:func:`pyflow.hw.cycles.bank_plan`; the skip, which
arrives first, needs more than a ping-pong pair): a ``STREAM type=pipo depth`` pragma, derivation beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pyflow import golden
from pyflow.artifacts import project_root
from pyflow.boards import Board
from pyflow.codegen.context import environment, network_context
from pyflow.hw.cycles import bank_plan
from pyflow.ir.io import load, save
from pyflow.ir.model import INPUT, AddLayer, Network
from pyflow.util import atomic_folder

TEMPLATE_DIR = project_root() / "hls_templates"
LIBRARY = "pyflow_hls.h"
MARKER_KIND = "hls"
TB_VECTORS, TB_SEED = 4, 0  # the project's own tb_data (pyflow csim writes its own vectors)
CONFIG_TEMPLATES = {"conv": "layer_matrix.h.j2", "linear": "layer_matrix.h.j2", "maxpool": "layer_pool.h.j2",
                    "avgpool": "layer_pool.h.j2", "flatten": "layer_flatten.h.j2", "add": "layer_add.h.j2"}
ACTIVATION_TYPE = "pyflow::activation<OUT_BITS, IS_OUTPUT>::type"  # a signed layer's out_t is ap_int<OUT_BITS>
RENDERED = {"layers.h.j2": "src/layers.h", "weights.h.j2": "src/weights.h", "top.h.j2": "src/top.h",
            "top.cpp.j2": "src/top.cpp", "tb.cpp.j2": "tb/tb.cpp", "run_hls.tcl.j2": "run_hls.tcl"}


def generate(network: Network, board: Board, out: Path) -> Path:
    """Write the HLS project of ``network`` for ``board`` to ``out`` (atomically) and return ``out``."""
    out = Path(out)
    context = hls_context(network, board)
    env = environment(TEMPLATE_DIR)
    with atomic_folder(out, MARKER_KIND) as tmp:
        for folder in ("src", "tb", "tb_data"):
            (tmp / folder).mkdir()
        shutil.copyfile(TEMPLATE_DIR / LIBRARY, tmp / "src" / LIBRARY)
        for template, target in RENDERED.items():
            (tmp / target).write_text(env.get_template(template).render(context))
        write_vectors(network, tmp / "tb_data", TB_VECTORS, TB_SEED)
        save(network, tmp / "ir")
    return out


def hls_context(network: Network, board: Board) -> dict[str, Any]:
    """The network dict of :func:`network_context` with the HLS-only keys the templates use."""
    context = network_context(network)
    layers = [{**layer, **_layer_extras(layer)} for layer in context["layers"]]
    buffers, processes = _dataflow(network, layers)
    first = layers[0]
    return {**context, "layers": layers, "buffers": buffers, "processes": processes,
            "rom_layers": [layer for layer in layers if "word_rows" in layer],
            "first_ident": first["ident"], "last_ident": layers[-1]["ident"],
            "image_type": f"{first['ident']}::{'in_a_t' if first['kind'] == 'add' else 'in_t'}",
            "board_name": board.name, "part": board.part, "clock_mhz": board.clock_mhz,
            "clock_period_ns": f"{1000.0 / board.clock_mhz:.3f}"}


def _dataflow(network: Network, layers: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The feature arrays the top declares and its processes (layer calls and forks), in topological order."""
    by_name = {layer["name"]: layer for layer in layers}
    reads: dict[tuple[str, int], str] = {}  # (layer, input slot) -> the array it reads
    forks: dict[str, list[dict[str, Any]]] = {}  # source -> the fork processes after it
    arrays: list[tuple[str, str, str]] = []  # (name, element type, size), in declaration order
    for source, array, ctype, size in _sources(layers):
        readers = _readers(network, source)
        chain_reads, chain = _fork_chain(array, readers)
        reads.update(chain_reads)
        comment = f"{source} is read by {', '.join(name for name, _ in readers)}: one fork per extra reader"
        forks[source] = [_process("pyflow::fork", f"{ctype}, {size}", list(fork),
                                  [comment] if k == 0 else [])
                         for k, fork in enumerate(chain)]
        arrays += [(name, ctype, size) for name in [array, *(name for fork in chain for name in fork[1:])]]
    processes = list(forks[INPUT])
    for layer in network.layers:
        function = "pyflow::add_layer" if isinstance(layer, AddLayer) else "pyflow::run_layer"
        ins = [reads[layer.name, slot] for slot in range(len(network.inputs_of(layer)))]
        processes.append(_process(function, by_name[layer.name]["ident"], [*ins, _output_array(layers, layer.name)]))
        processes += forks.get(layer.name, [])
    reader = {array: by_name[name] for (name, _), array in reads.items()}  # a fork's input has no reader here
    streams = _skip_streams(network, reads)
    buffers = [{"name": name, "type": ctype, "size": size, "lanes": reader.get(name, {}).get("simd", 1),
                "streams": streams.get(name, [])} for name, ctype, size in arrays if name != "image"]
    return buffers, processes


def _sources(layers: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """Every array a layer reads before any fork: (source, array, element type, size) for the image and each
    layer but the last."""
    image = (INPUT, "image", "top_in_t", "TOP_IN_SIZE")
    return [image, *((layer["name"], _output_array(layers, layer["name"]), f"{layer['ident']}::out_t",
                      f"{layer['ident']}::OUT_SIZE") for layer in layers[:-1])]


def _output_array(layers: list[dict[str, Any]], name: str) -> str:
    """The array layer ``name`` writes: ``buf{i+1}`` for layer ``i``, ``logits`` for the last."""
    position = next(layer["index"] for layer in layers if layer["name"] == name)
    return "logits" if position == len(layers) - 1 else f"buf{position + 1}"


def _readers(network: Network, source: str) -> list[tuple[str, int]]:
    """The (layer, input slot) pairs reading ``source`` (a layer or INPUT), in topological order."""
    return [(layer.name, slot) for layer in network.layers
            for slot, name in enumerate(network.inputs_of(layer)) if name == source]


def _fork_chain(array: str, readers: list[tuple[str, int]]) -> tuple[dict[tuple[str, int], str],
                                                                      list[tuple[str, str, str]]]:
    """The array each reader of ``array`` reads, and the forks ``(in, first, rest)`` that fill them: reader
    ``k`` of several reads ``{array}_{k}``, the forks passing the rest on through ``{array}_f{k}``."""
    if len(readers) == 1:
        return {readers[0]: array}, []
    reads, chain, feed = {}, [], array
    for k, reader in enumerate(readers[:-1]):
        rest = f"{array}_{k + 1}" if k == len(readers) - 2 else f"{array}_f{k + 1}"
        chain.append((feed, f"{array}_{k}", rest))
        reads[reader] = f"{array}_{k}"
        feed = rest
    reads[readers[-1]] = feed
    return reads, chain


def _skip_streams(network: Network, reads: dict[tuple[str, int], str]) -> dict[str, list[dict[str, Any]]]:
    """The image depth of every array an add reads, from the RTL's bank plan (the same cycle model), with
    its derivation. (Not :func:`pyflow.hw.sizing.network_sizing`: its RTL-only checks, such as a fork's
    readers padding channels alike, do not bind HLS.)"""
    plan, streams = bank_plan(network), {}
    adds = [layer for layer in network.layers if isinstance(layer, AddLayer)]
    for layer in adds:
        for slot in range(2):
            array, (banks, why) = reads[layer.name, slot], plan[layer.name, slot]
            streams[array] = [{"banks": banks, "why": f"{array}, input {slot} of {layer.name}, holds {banks} "
                                                      f"images: {why}"}]
    return streams


def _process(function: str, template: str, args: list[str], comments: list[str] | None = None) -> dict[str, Any]:
    """One call in the DATAFLOW region: ``function<template>(args)``, after its comment lines."""
    return {"function": function, "template": template, "args": args, "comments": comments or []}


def _layer_extras(layer: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {"config_template": CONFIG_TEMPLATES[layer["kind"]]}
    if layer["kind"] == "add":
        extras.update(a_type=_activation_ctype(layer["a_signed"]), b_type=_activation_ctype(layer["b_signed"]))
    if "words" in layer:
        chunks = -(-layer["word_bits"] // 64)
        rows = [_chunk_literals(word, chunks) for word in layer["words"]]
        extras.update(word_chunks=chunks, rom_rows=max(layer["n_kept"], 1),
                      word_rows=rows or [_chunk_literals(0, chunks)],  # a C array needs one row
                      col_rom=layer["col_idx"] or [0],
                      index_ctype=_index_ctype(max(layer["n_kept"], layer["col_folds"])),
                      b_literals=[f"{value}LL" for value in layer["b"]],
                      out_type="ap_int<OUT_BITS>" if layer["signed"] else ACTIVATION_TYPE)
    return extras


def _activation_ctype(signed: bool) -> str:
    """An add input's C type: two's complement for a signed residual branch."""
    return "ap_int<IN_BITS>" if signed else "ap_uint<IN_BITS>"


def _chunk_literals(word: int, chunks: int) -> list[str]:
    """A packed word as 64-bit C literals, low chunk first (wider words do not fit one literal)."""
    return [f"0x{(word >> (64 * k)) & ((1 << 64) - 1):016x}ULL" for k in range(chunks)]


def _index_ctype(largest: int) -> str:
    for ctype, bits in (("unsigned char", 8), ("unsigned short", 16)):
        if largest < 1 << bits:
            return ctype
    return "unsigned int"


def load_ir(project: Path) -> Network:
    """The IR copy a generated project carries (``project/ir``)."""
    return load(Path(project) / "ir")


def random_images(network: Network, count: int, seed: int) -> np.ndarray:
    """Seeded uniform uint8 images ``[count, C, H, W]``."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, *network.input_shape), dtype=np.uint8)


def write_vectors(network: Network, folder: Path, count: int, seed: int) -> tuple[Path, Path]:
    """Write ``input.txt`` (HWC pixels) and ``golden.txt`` (golden logits), one image per line."""
    images = random_images(network, count, seed)
    logits = golden.run(network, images)
    pixels = images.transpose(0, 2, 3, 1).reshape(count, -1)
    paths = folder / "input.txt", folder / "golden.txt"
    for path, rows in zip(paths, (pixels, logits), strict=True):
        path.write_text("".join(" ".join(str(int(v)) for v in row) + "\n" for row in rows))
    return paths
