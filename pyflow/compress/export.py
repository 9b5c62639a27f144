"""Compressed ChainNet → accelerator IR (DESIGN §2): fold BN and α into integer m, b, shift; pack kept tiles.

Real values are ``scale·integer``: the input has scale ``1/255``; a hidden layer's output scale ``s_out``
is its activation quantizer's (calibrated) step. For output channel ``o`` with BN gain ``g`` and shift
``h``: ``y/s_out = A·acc + B`` with ``A = g·α·s_in/s_out`` and ``B = (g·bias + h)/s_out``; then
``m = round(A·2^shift)``, ``b = round(B·2^shift) + 2^(shift−1)`` (round half up), with the largest shift that
keeps ``m`` within 16 signed bits. The output layer gives ``acc·m + b`` = ``2^L·logits`` (no shift), with
``L`` the largest power keeping ``m`` in 16 bits and the logits in int32 (argmax is unchanged).

Graphs: a matrix layer read only by adds has a signed quantizer and becomes a ``signed`` IR layer (same
requantizer, clamped to ``±2^(a−1)``); an add with input steps ``s_a, s_b`` and output step ``s_y`` (its ReLU's)
becomes an AddLayer with :func:`pyflow.compress.chain.add_requant`'s ``m_a, m_b, c, shift`` — the very integers
the torch model's QAdd computes with. A layer's ``inputs`` is written only when it does not read the layer
right before it, so a chain exports exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pyflow.compress.chain import INPUT_SCALE, ActQuant, ChainNet, add_requant, avgpool_requant
from pyflow.compress.graph import INPUT_OP, MATRIX
from pyflow.compress.ternary import TernaryMatrix, ir_matrix
from pyflow.errors import PyflowError
from pyflow.ir.check import check_network
from pyflow.ir.model import (
    INPUT,
    LOGIT_BITS,
    M_BITS,
    M_MAX,
    MAX_SHIFT,
    AddLayer,
    FlattenLayer,
    Layer,
    MatrixLayer,
    Network,
    PoolLayer,
    accumulator_bits,
)
from pyflow.ir.packing import nonzero_tiles, pack


def _bn_affine(bn: nn.Module | None, channels: int) -> tuple[np.ndarray, np.ndarray]:
    if bn is None:
        return np.ones(channels), np.zeros(channels)
    std = np.sqrt(bn.running_var.double().numpy() + bn.eps)
    gain = bn.weight.detach().double().numpy() / std
    return gain, bn.bias.detach().double().numpy() - gain * bn.running_mean.double().numpy()


def _hidden_requant(a: np.ndarray, b: np.ndarray, acc_bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    b_limit = 1 << (acc_bits + M_BITS - 2)
    for shift in range(MAX_SHIFT, -1, -1):
        m = np.round(a * 2.0**shift)
        bias = np.round(b * 2.0**shift) + (1 << shift >> 1)
        if np.abs(m).max(initial=0) <= M_MAX and np.abs(bias).max(initial=0) < b_limit:
            return m.astype(np.int64), bias.astype(np.int64), shift
    raise PyflowError("requantization multipliers do not fit 16 bits even with shift 0")


def _output_requant(a: np.ndarray, b: np.ndarray, acc_bits: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    for power in range(MAX_SHIFT, -MAX_SHIFT, -1):
        m, bias = np.round(a * 2.0**power), np.round(b * 2.0**power)
        worst = (1 << (acc_bits - 1)) * np.abs(m).max(initial=0) + np.abs(bias).max(initial=0)
        if np.abs(m).max(initial=0) <= M_MAX and worst < 1 << (LOGIT_BITS - 1):
            return m.astype(np.int64), bias.astype(np.int64)
    raise PyflowError(f"layer {name!r}: logits cannot be scaled into int32")


def _tiles(layer: TernaryMatrix) -> tuple[Any, dict[str, int]]:
    geom, pe, simd = layer.geom, layer.pe, layer.simd
    matrix = ir_matrix(layer.codes().numpy(), geom, pe, simd)
    mask = layer.tile_mask.numpy()
    nonzero = nonzero_tiles(matrix, pe, simd)
    counts = {"tiles_masked": int((~mask).sum()), "tiles_all_zero": int((mask & ~nonzero).sum())}
    return pack(matrix, mask & nonzero, pe, simd), counts


def _matrix_layer(layer: TernaryMatrix, bn: nn.Module | None, act: ActQuant | None, s_in: float,
                  in_bits: int, a_bits: int, inputs: tuple[str, ...] = (), relu: bool = False
                  ) -> tuple[MatrixLayer, dict[str, int], float]:
    geom = layer.geom
    packed, counts = _tiles(layer)
    gain, shift_h = _bn_affine(bn, geom.c_out)
    bias = layer.bias.detach().double().numpy() if layer.bias is not None else np.zeros(geom.c_out)
    a = gain * float(layer.alpha()) * s_in
    b = gain * bias + shift_h
    in_shape = geom.in_shape if geom.kind == "conv" else (geom.c_in, 1, 1)
    acc_bits = accumulator_bits(geom.kernel * geom.kernel * geom.c_in, in_bits)
    if act is None:
        m, bq = _output_requant(a, b, acc_bits, geom.name)
        shift, out_bits, s_out = 0, LOGIT_BITS, 0.0
    else:
        s_out = float(act.scale)
        if s_out <= 0:
            raise PyflowError(f"layer {geom.name!r}: activation scale is not calibrated")
        m, bq, shift = _hidden_requant(a / s_out, b / s_out, acc_bits)
        out_bits = a_bits
    ir = MatrixLayer(name=geom.name, kind=geom.kind, in_shape=in_shape, out_channels=geom.c_out,
                     kernel=geom.kernel, stride=geom.stride, padding=geom.padding, pe=layer.pe, simd=layer.simd,
                     in_bits=in_bits, out_bits=out_bits, acc_bits=acc_bits, shift=shift, m=m, b=bq,
                     words=packed.words, row_ptr=packed.row_ptr, col_idx=packed.col_idx, is_output=act is None,
                     signed=act is not None and act.signed, relu=relu and act is None, inputs=inputs)
    return ir, counts, s_out


def _avgpool(op: dict[str, Any], shape: tuple[int, int, int], bits: int, inputs: tuple[str, ...]) -> PoolLayer:
    m, b, shift = avgpool_requant(op["kernel"])
    return PoolLayer(op["name"], "avgpool", shape, op["kernel"], op["stride"], bits, m=m, b=b, shift=shift,
                     inputs=inputs)


@dataclass(frozen=True)
class _Out:
    """What an op's output is in the IR: the layer computing it, its shape, bits, step and signedness."""

    name: str
    shape: tuple[int, int, int]
    bits: int
    scale: float
    signed: bool = False


class _Builder:
    """Walks the ChainNet's ops in order (a topological order) and appends one IR layer per pyflow layer."""

    def __init__(self, model: ChainNet, input_shape: tuple[int, int, int], requested: dict[str, float]) -> None:
        self.model, self.requested = model, requested
        self.outs: dict[int, _Out] = {INPUT_OP: _Out(INPUT, tuple(input_shape), 8, INPUT_SCALE)}
        self.layers: list[Layer] = []
        self.report: dict[str, dict[str, Any]] = {}

    def inputs(self, names: list[str]) -> tuple[str, ...]:
        """An IR layer's ``inputs``: empty when it reads the layer right before it (a chain stays a chain)."""
        previous = self.layers[-1].name if self.layers else INPUT
        return () if names == [previous] else tuple(names)

    def append(self, index: int, layer: Layer, scale: float, signed: bool = False) -> None:
        self.layers.append(layer)
        self.outs[index] = _Out(layer.name, layer.out_shape, layer.out_bits, scale, signed)

    def build(self) -> list[Layer]:
        model = self.model
        for index, op in enumerate(model.ops):
            if index in self.outs:
                continue  # a BatchNorm or activation, already folded into its matrix layer or add
            sources = [self.outs[source] for source in model.inputs[index]]
            kind, names = op["op"], [source.name for source in sources]
            if kind in MATRIX:
                self.matrix(index, sources[0])
            elif kind == "add":
                self.add(index, op, sources)
            elif kind == "maxpool":
                layer = PoolLayer(op["name"], "maxpool", sources[0].shape, op["kernel"], op["stride"], sources[0].bits,
                                  inputs=self.inputs(names))
                self.append(index, layer, sources[0].scale)
            elif kind == "avgpool":
                layer = _avgpool(op, sources[0].shape, sources[0].bits, self.inputs(names))
                self.append(index, layer, sources[0].scale)
            elif kind == "flatten":
                self.append(index, FlattenLayer(op["name"], sources[0].shape, sources[0].bits, self.inputs(names)),
                            sources[0].scale)
            else:  # a ReLU on activations that are already >= 0 (older checkpoints): the identity
                self.outs[index] = sources[0]
        return self.layers

    def matrix(self, index: int, source: _Out) -> None:
        """The matrix layer of op ``index`` with its BatchNorm and activation (its readers) folded in."""
        model, after = self.model, [index]
        name = model.ops[index]["name"]
        readers = model.readers(index)
        while len(readers) == 1 and model.ops[readers[0]]["op"] in ("bn", "relu", "quant", "logit_relu") and \
                model.owner[readers[0]] == name:
            after.append(readers[0])
            readers = model.readers(readers[0])
        modules = [getattr(model, model.names[i]) for i in after]
        bn = next((m for m in modules if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)), None)
        act = next((m for m in modules if isinstance(m, ActQuant)), None)
        relu = any(model.ops[i]["op"] == "logit_relu" for i in after)
        layer, counts, s_out = _matrix_layer(modules[0], bn, act, source.scale, source.bits, model.a_bits,
                                             self.inputs([source.name]), relu)
        self.report[layer.name] = {**counts, "requested_keep": self.requested.get(layer.name)}
        self.append(index, layer, s_out, layer.signed)
        for i in after[1:]:
            self.outs[i] = self.outs[index]

    def add(self, index: int, op: dict[str, Any], sources: list[_Out]) -> None:
        model = self.model
        relu = model.readers(index)[0]  # the importer makes sure an add is read by its ReLU only
        s_out = float(getattr(model, model.names[relu]).scale)
        if s_out <= 0 or min(source.scale for source in sources) <= 0:
            raise PyflowError(f"layer {op['name']!r}: activation scale is not calibrated")
        m_a, m_b, c, shift = add_requant(sources[0].scale, sources[1].scale, s_out, model.a_bits)
        layer = AddLayer(op["name"], sources[0].shape, model.a_bits, tuple(source.name for source in sources),
                         sources[0].signed, sources[1].signed, m_a, m_b, c, shift, model.a_bits)
        self.append(index, layer, s_out)
        self.outs[relu] = self.outs[index]


def to_network(model: ChainNet, name: str, input_shape: tuple[int, int, int], requested: dict[str, float],
               meta: dict[str, Any]) -> Network:
    """The IR of a calibrated ChainNet (a DAG; IR schema 2); ``requested`` is the kept fraction asked per layer."""
    model.eval()
    builder = _Builder(model, input_shape, requested)
    layers = builder.build()
    meta = {**meta, "compression": {"layers": builder.report}, "input_scale": INPUT_SCALE}
    return check_network(Network(name=name, input_shape=tuple(input_shape), a_bits=model.a_bits,
                                 layers=tuple(layers), meta=meta))


def torch_logits(model: ChainNet, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """The torch model's logits for uint8 NCHW ``images`` (it sees ``x/255``)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(torch.from_numpy(images[i:i + batch]).float() / 255.0)
                          for i in range(0, len(images), batch)])
