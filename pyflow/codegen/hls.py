"""The HLS C++ backend: render hls_templates/ into a Vitis-HLS-ready project folder.

Project layout (written atomically, byte-identical for the same IR and board)::

    run_hls.tcl          Vitis HLS: csim, csynth, cosim, export_design for the board's part and clock
    src/pyflow_hls.h     the hand-written layer library (copied verbatim)
    src/layers.h         one configuration struct per layer
    src/weights.h        packed weight ROMs, CSR index ROMs, requantization tables
    src/top.h, top.cpp   the DATAFLOW top function
    tb/tb.cpp            C testbench: input + golden files in, exit status 0 only if all outputs match
    tb_data/             a few seeded vectors so `vitis_hls -f run_hls.tcl` has data for its csim
    ir/                  a copy of the IR, so `pyflow csim` computes golden vectors from the project alone

Templates see the dicts of :mod:`pyflow.codegen.context` plus the few HLS-only keys added here
(ROM rows split into 64-bit chunks, C types of the index ROMs, buffer names).
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
from pyflow.ir.io import load, save
from pyflow.ir.model import Network
from pyflow.util import atomic_folder

TEMPLATE_DIR = project_root() / "hls_templates"
LIBRARY = "pyflow_hls.h"
MARKER_KIND = "hls"
TB_VECTORS, TB_SEED = 4, 0  # the project's own tb_data (pyflow csim writes its own vectors)
CONFIG_TEMPLATES = {"conv": "layer_matrix.h.j2", "linear": "layer_matrix.h.j2", "maxpool": "layer_pool.h.j2",
                    "avgpool": "layer_pool.h.j2", "flatten": "layer_flatten.h.j2"}
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
    buffers = [{"name": f"buf{i + 1}", "producer": layer["ident"], "lanes": _read_lanes(layers, i + 1)}
               for i, layer in enumerate(layers[:-1])]
    for i, layer in enumerate(layers):
        layer["in_buf"] = "image" if i == 0 else f"buf{i}"
        layer["out_buf"] = "logits" if i == len(layers) - 1 else f"buf{i + 1}"
    return {**context, "layers": layers, "buffers": buffers,
            "rom_layers": [layer for layer in layers if "word_rows" in layer],
            "first_ident": layers[0]["ident"], "last_ident": layers[-1]["ident"],
            "board_name": board.name, "part": board.part, "clock_mhz": board.clock_mhz,
            "clock_period_ns": f"{1000.0 / board.clock_mhz:.3f}"}


def _read_lanes(layers: list[dict[str, Any]], consumer: int) -> int:
    """Cyclic partition factor of a feature buffer: its reader takes SIMD channels per cycle."""
    return layers[consumer].get("simd", 1)


def _layer_extras(layer: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {"config_template": CONFIG_TEMPLATES[layer["kind"]]}
    if "words" in layer:
        chunks = -(-layer["word_bits"] // 64)
        rows = [_chunk_literals(word, chunks) for word in layer["words"]]
        extras.update(word_chunks=chunks, rom_rows=max(layer["n_kept"], 1),
                      word_rows=rows or [_chunk_literals(0, chunks)],  # a C array needs one row
                      col_rom=layer["col_idx"] or [0],
                      index_ctype=_index_ctype(max(layer["n_kept"], layer["col_folds"])),
                      b_literals=[f"{value}LL" for value in layer["b"]])
    return extras


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
