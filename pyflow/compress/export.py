"""Compressed ChainNet → accelerator IR (DESIGN §2): fold BN and α into integer m, b, shift; pack kept tiles.

Real values are ``scale·integer``: the input has scale ``1/255``; a hidden layer's output scale ``s_out``
is its activation quantizer's (calibrated) step. For output channel ``o`` with BN gain ``g`` and shift
``h``: ``y/s_out = A·acc + B`` with ``A = g·α·s_in/s_out`` and ``B = (g·bias + h)/s_out``; then
``m = round(A·2^shift)``, ``b = round(B·2^shift) + 2^(shift−1)`` (round half up), with the largest shift that
keeps ``m`` within 16 signed bits. The output layer gives ``acc·m + b`` = ``2^L·logits`` (no shift), with
``L`` the largest power keeping ``m`` in 16 bits and the logits in int32 (argmax is unchanged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pyflow.compress.chain import ActQuant, ChainNet, avgpool_requant
from pyflow.compress.ternary import TernaryMatrix, ir_matrix
from pyflow.errors import PyflowError
from pyflow.ir.check import check_network
from pyflow.ir.model import (
    LOGIT_BITS,
    M_BITS,
    M_MAX,
    MAX_SHIFT,
    FlattenLayer,
    Layer,
    MatrixLayer,
    Network,
    PoolLayer,
    accumulator_bits,
)
from pyflow.ir.packing import nonzero_tiles, pack

INPUT_SCALE = 1.0 / 255.0


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
                  in_bits: int, a_bits: int) -> tuple[MatrixLayer, dict[str, int], float]:
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
                     words=packed.words, row_ptr=packed.row_ptr, col_idx=packed.col_idx, is_output=act is None)
    return ir, counts, s_out


def _avgpool(op: dict[str, Any], shape: tuple[int, int, int], bits: int) -> PoolLayer:
    m, b, shift = avgpool_requant(op["kernel"])
    return PoolLayer(op["name"], "avgpool", shape, op["kernel"], op["stride"], bits, m=m, b=b, shift=shift)


def to_network(model: ChainNet, name: str, input_shape: tuple[int, int, int], requested: dict[str, float],
               meta: dict[str, Any]) -> Network:
    """The IR of a calibrated ChainNet; ``requested`` is the kept fraction asked per layer."""
    model.eval()
    layers: list[Layer] = []
    report: dict[str, dict[str, Any]] = {}
    shape, bits, scale = tuple(input_shape), 8, INPUT_SCALE
    names, ops = model.names, model.ops
    for index, (module_name, op) in enumerate(zip(names, ops, strict=True)):
        kind = op["op"]
        if kind in ("conv", "linear"):
            follow = [getattr(model, n) for n in names[index + 1:index + 3]]
            bn = follow[0] if follow and isinstance(follow[0], nn.BatchNorm1d | nn.BatchNorm2d) else None
            act = next((f for f in follow if isinstance(f, ActQuant)), None)
            layer, counts, s_out = _matrix_layer(getattr(model, module_name), bn, act, scale, bits, model.a_bits)
            report[layer.name] = {**counts, "requested_keep": requested.get(layer.name)}
            layers.append(layer)
            scale, bits = s_out, layer.out_bits
        elif kind == "maxpool":
            layers.append(PoolLayer(op["name"], "maxpool", shape, op["kernel"], op["stride"], bits))
        elif kind == "avgpool":
            layers.append(_avgpool(op, shape, bits))
        elif kind == "flatten":
            layers.append(FlattenLayer(op["name"], shape, bits))
        else:
            continue  # bn and activations are folded into the matrix layer before them
        shape = layers[-1].out_shape
    meta = {**meta, "compression": {"layers": report}, "input_scale": INPUT_SCALE}
    return check_network(Network(name=name, input_shape=tuple(input_shape), a_bits=model.a_bits,
                                 layers=tuple(layers), meta=meta))


def torch_logits(model: ChainNet, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """The torch model's logits for uint8 NCHW ``images`` (it sees ``x/255``)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(torch.from_numpy(images[i:i + batch]).float() / 255.0)
                          for i in range(0, len(images), batch)])
