"""The one plain dict per layer that every template (HLS and RTL) is rendered from.

Built by one function from the IR, so both backends see the same numbers (the RTL top adds the
sizing of :mod:`pyflow.hw.sizing`). Templates are rendered with
``jinja2.StrictUndefined``: a key missing here fails at render time, not in a compiler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from pyflow.ir.model import AddLayer, FlattenLayer, Layer, MatrixLayer, Network, PoolLayer
from pyflow.ir.packing import word_values


def layer_context(layer: Layer, index: int, inputs: tuple[str, ...]) -> dict[str, Any]:
    """Everything a template needs about one layer, as plain Python values; ``inputs`` are the names it reads
    (``Network.inputs_of``)."""
    c_in, h_in, w_in = layer.in_shape
    c_out, h_out, w_out = layer.out_shape
    context: dict[str, Any] = {
        "index": index, "name": layer.name, "ident": f"l{index}_{layer.name}", "inputs": list(inputs),
        "c_in": c_in, "h_in": h_in, "w_in": w_in, "c_out": c_out, "h_out": h_out, "w_out": w_out,
        "in_bits": layer.in_bits, "out_bits": layer.out_bits,
    }
    if isinstance(layer, MatrixLayer):
        context.update(_matrix_context(layer))
    elif isinstance(layer, PoolLayer):
        context.update(kind=layer.kind, kernel=layer.kernel, stride=layer.stride, padding=0, m=layer.m,
                       b=layer.b, shift=layer.shift, sum_bits=layer.sum_bits)
    elif isinstance(layer, FlattenLayer):
        context.update(kind="flatten")
    elif isinstance(layer, AddLayer):
        context.update(kind="add", a_signed=layer.a_signed, b_signed=layer.b_signed, m_a=layer.m_a, m_b=layer.m_b,
                       c=layer.c, shift=layer.shift, sum_bits=layer.sum_bits)
    return context


def _matrix_context(layer: MatrixLayer) -> dict[str, Any]:
    pad = layer.m_pad - layer.out_channels
    return {
        "kind": layer.kind, "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
        "pe": layer.pe, "simd": layer.simd, "chunks": layer.chunks, "c_in_pad": layer.c_in_pad,
        "m_pad": layer.m_pad, "out_folds": layer.out_folds, "col_folds": layer.col_folds,
        "tiles_total": layer.tiles_total, "n_kept": layer.n_kept, "word_bits": layer.word_bits,
        "acc_bits": layer.acc_bits, "shift": layer.shift, "is_output": layer.is_output, "signed": layer.signed,
        "relu": layer.relu,
        "m": [int(v) for v in layer.m] + [0] * pad,  # padded to m_pad: padded lanes output b = 0
        "b": [int(v) for v in layer.b] + [0] * pad,
        "words": word_values(layer),  # one integer per kept tile (pyflow.ir.packing)
        "row_ptr": [int(v) for v in layer.row_ptr],
        "col_idx": [int(v) for v in layer.col_idx],
    }


def network_context(network: Network) -> dict[str, Any]:
    c, h, w = network.input_shape
    return {
        "name": network.name, "c_in": c, "h_in": h, "w_in": w, "input_bits": network.input_bits,
        "a_bits": network.a_bits, "num_classes": network.num_classes,
        "layers": [layer_context(layer, index, network.inputs_of(layer))
                   for index, layer in enumerate(network.layers)],
    }


def environment(template_dir: Path) -> jinja2.Environment:
    """Jinja environment for a backend's templates: strict, no autoescape, stable whitespace."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
