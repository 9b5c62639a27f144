"""The golden integer model: executes the IR with integers only — the single oracle of every backend.

Everything is int64 inside; the integer contract and data layout are in ``pyflow.ir.model``.
A matrix layer is im2col plus one integer matmul per output fold over that fold's kept tiles, so its
cost follows the kept tiles, exactly like the hardware's.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pyflow.errors import PyflowError
from pyflow.ir.model import INPUT, AddLayer, FlattenLayer, Layer, MatrixLayer, Network, PoolLayer
from pyflow.ir.packing import layer_codes


def run(network: Network, images: np.ndarray) -> np.ndarray:
    """Logits ``[B, classes]`` (int64 holding int32 values) for uint8 ``images`` ``[B, C, H, W]``."""
    return trace(network, images)[-1].reshape(len(images), -1)


def trace(network: Network, images: np.ndarray) -> list[np.ndarray]:
    """Every layer's output, HWC ``[B, H, W, C]`` int64, in layer order (the DAG's topological order)."""
    values = {INPUT: _input(network, images)}
    for layer in network.layers:
        values[layer.name] = run_layer(layer, *(values[name] for name in network.inputs_of(layer)))
    return [values[layer.name] for layer in network.layers]


def run_layer(layer: Layer, x: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """One layer on HWC ``[B, H, W, C]`` int64 batches (``other``: an add's second input)."""
    if isinstance(layer, MatrixLayer):
        return requantize(layer, accumulate(layer, x))
    if isinstance(layer, PoolLayer):
        return _pool(layer, x)
    if isinstance(layer, FlattenLayer):
        return x.reshape(len(x), 1, 1, -1)
    if isinstance(layer, AddLayer):
        return np.clip((x * layer.m_a + other * layer.m_b + layer.c) >> layer.shift, 0, (1 << layer.out_bits) - 1)
    raise PyflowError(f"golden model: unsupported layer type {type(layer).__name__}")


def _input(network: Network, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != network.input_shape:
        raise PyflowError(f"input batch has shape {images.shape}, the network takes [B, *{network.input_shape}]")
    if images.dtype != np.uint8:
        raise PyflowError(f"input batch has dtype {images.dtype}, the network takes uint8 pixels")
    return images.transpose(0, 2, 3, 1).astype(np.int64)


def im2col(layer: MatrixLayer, x: np.ndarray) -> np.ndarray:
    """``[B·H_out·W_out, N_pad]`` input columns in the IR's ``(k_y, k_x, c)`` order, zero in the padding."""
    batch, p = len(x), layer.padding
    padded = np.zeros((batch, x.shape[1] + 2 * p, x.shape[2] + 2 * p, layer.c_in_pad), dtype=np.int64)
    padded[:, p:p + x.shape[1], p:p + x.shape[2], :layer.c_in] = x
    windows = sliding_window_view(padded, (layer.kernel, layer.kernel), axis=(1, 2))
    windows = windows[:, ::layer.stride, ::layer.stride]  # [B, Ho, Wo, C, ky, kx]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, layer.n_pad)


def accumulate(layer: MatrixLayer, x: np.ndarray) -> np.ndarray:
    """``acc = Σ t·x`` over kept tiles: ``[B, H_out, W_out, C_out]`` int64."""
    columns = im2col(layer, x)
    codes = layer_codes(layer).astype(np.int64)  # [n_kept, pe, simd]
    acc = np.zeros((len(columns), layer.m_pad), dtype=np.int64)
    for fold in range(layer.out_folds):
        kept = slice(layer.row_ptr[fold], layer.row_ptr[fold + 1])
        folds = layer.col_idx[kept]
        if len(folds) == 0:
            continue
        weights = codes[kept].transpose(1, 0, 2).reshape(layer.pe, -1)  # [pe, kept·simd]
        acc[:, fold * layer.pe:(fold + 1) * layer.pe] = _kept_columns(columns, folds, layer.simd) @ weights.T
    _, h, w = layer.out_shape
    return acc[:, :layer.out_channels].reshape(len(x), h, w, layer.out_channels)


def _kept_columns(columns: np.ndarray, folds: np.ndarray, simd: int) -> np.ndarray:
    """The input columns of the kept column folds: a view when they are contiguous (no copy)."""
    if folds[-1] - folds[0] == len(folds) - 1:
        return columns[:, folds[0] * simd:(folds[-1] + 1) * simd]
    return np.take(columns, (folds[:, None] * simd + np.arange(simd)).ravel(), axis=1)  # take: 3x faster than []


def requantize(layer: MatrixLayer, acc: np.ndarray) -> np.ndarray:
    """Hidden layer: ``clamp((acc·m + b) >> shift, 0, 2^out_bits − 1)`` (signed: to ±2^(out_bits−1));
    output layer: ``acc·m + b``."""
    scaled = acc * layer.m + layer.b
    if layer.is_output:
        return np.maximum(scaled, 0) if layer.relu else scaled
    if layer.signed:
        half = 1 << (layer.out_bits - 1)
        return np.clip(scaled >> layer.shift, -half, half - 1)
    return np.clip(scaled >> layer.shift, 0, (1 << layer.out_bits) - 1)


def _pool(layer: PoolLayer, x: np.ndarray) -> np.ndarray:
    windows = sliding_window_view(x, (layer.kernel, layer.kernel), axis=(1, 2))
    windows = windows[:, ::layer.stride, ::layer.stride]  # [B, Ho, Wo, C, ky, kx]
    if layer.kind == "maxpool":
        return windows.max(axis=(4, 5))
    sums = windows.sum(axis=(4, 5))
    return np.clip((sums * layer.m + layer.b) >> layer.shift, 0, (1 << layer.out_bits) - 1)


def predict(network: Network, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Class predictions (argmax of the logits, lowest index on ties), in batches."""
    return np.concatenate([run(network, images[i:i + batch]).argmax(axis=1) for i in range(0, len(images), batch)])
