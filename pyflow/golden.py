"""The golden integer model: executes the IR with integers only — the single oracle of every backend.

Activations are int64; the integer contract and data layout are in ``pyflow.ir.model``. A matrix layer
is im2col plus a matmul, and that matmul is integer-exact in floating point (BLAS) when the layer allows:

- every term ``t·x`` is an integer with ``|t·x| ≤ 2^in_bits − 1`` (``t ∈ {−1, 0, +1}``, matrix layers read
  unsigned activations), so any partial sum a BLAS kernel forms — in any order, fused or not — is an
  integer of magnitude at most ``fan_in · (2^in_bits − 1)``, the bound the IR's ``acc_bits`` is checked
  to hold (``ir.model.accumulator_bits``);
- float32 represents every integer of magnitude ≤ 2^24 exactly and float64 every one ≤ 2^53, so each
  addition is exact while the bound stays below them: the float result equals the int64 one, ``==``.

:func:`matmul_dtype` picks float32, float64 or (beyond 2^53) int64 per layer. The float path multiplies
by the dense ternary matrix with the pruned tiles as zeros — one large GEMM is ~8× faster than the
per-fold products over kept tiles on a BLAS (measured on VGG-small, benchmarks/golden_speed.py); the
int64 path keeps the per-fold kept-tile products, whose cost follows the kept tiles like the hardware's.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pyflow.errors import PyflowError
from pyflow.ir.model import INPUT, AddLayer, FlattenLayer, Layer, MatrixLayer, Network, PoolLayer
from pyflow.ir.packing import layer_codes

EXACT_FLOATS = ((np.float32, 1 << 24), (np.float64, 1 << 53))  # every integer of magnitude ≤ this is exact
CHUNK_ELEMENTS = 1 << 23  # im2col columns built at a time (32 MiB of float32): bounds memory for any batch


def run(network: Network, images: np.ndarray, matmul: type | None = None) -> np.ndarray:
    """Logits ``[B, classes]`` (int64 holding int32 values) for uint8 ``images`` ``[B, C, H, W]``.

    ``matmul``: None picks the exact type per layer (:func:`matmul_dtype`); ``np.int64`` is the reference."""
    return trace(network, images, matmul)[-1].reshape(len(images), -1)


def trace(network: Network, images: np.ndarray, matmul: type | None = None) -> list[np.ndarray]:
    """Every layer's output, HWC ``[B, H, W, C]`` int64, in layer order (the DAG's topological order)."""
    values = {INPUT: _input(network, images)}
    for layer in network.layers:
        values[layer.name] = run_layer(layer, *(values[name] for name in network.inputs_of(layer)), matmul=matmul)
    return [values[layer.name] for layer in network.layers]


def run_layer(layer: Layer, x: np.ndarray, other: np.ndarray | None = None,
              matmul: type | None = None) -> np.ndarray:
    """One layer on HWC ``[B, H, W, C]`` int64 batches (``other``: an add's second input)."""
    if isinstance(layer, MatrixLayer):
        return requantize(layer, accumulate(layer, x, matmul))
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


def im2col(layer: MatrixLayer, x: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """``[B·H_out·W_out, N_pad]`` input columns in the IR's ``(k_y, k_x, c)`` order, zero in the padding."""
    batch, p = len(x), layer.padding
    padded = np.zeros((batch, x.shape[1] + 2 * p, x.shape[2] + 2 * p, layer.c_in_pad), dtype=dtype)
    padded[:, p:p + x.shape[1], p:p + x.shape[2], :layer.c_in] = x
    windows = sliding_window_view(padded, (layer.kernel, layer.kernel), axis=(1, 2))
    windows = windows[:, ::layer.stride, ::layer.stride]  # [B, Ho, Wo, C, ky, kx]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, layer.n_pad)


def matmul_dtype(layer: MatrixLayer, x: np.ndarray) -> type:
    """The narrowest type whose matmul is exact for ``layer`` on ``x`` (module docstring): the bound is the
    IR's (``in_bits``), or the input's own maximum if a caller hands in larger values."""
    largest = max((1 << layer.in_bits) - 1, int(np.abs(x).max(initial=0)))
    worst = layer.fan_in * largest
    for dtype, exact_below in EXACT_FLOATS:
        if worst <= exact_below:
            return dtype
    return np.int64


def accumulate(layer: MatrixLayer, x: np.ndarray, matmul: type | None = None) -> np.ndarray:
    """``acc = Σ t·x`` over kept tiles: ``[B, H_out, W_out, C_out]`` int64. ``matmul``: the matmul's type
    (default :func:`matmul_dtype`; ``np.int64`` is the reference path)."""
    dtype = matmul or matmul_dtype(layer, x)
    _, h, w = layer.out_shape
    acc = np.empty((len(x), h, w, layer.out_channels), dtype=np.int64)
    step = max(1, CHUNK_ELEMENTS // (h * w * layer.n_pad))  # images per chunk
    weights = None if dtype is np.int64 else dense_matrix(layer, dtype)[:layer.out_channels].T  # [n_pad, C_out]
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        rows = _accumulate_folds(layer, chunk) if weights is None else im2col(layer, chunk, dtype) @ weights
        acc[i:i + step] = rows.reshape(len(chunk), h, w, -1)  # the float sums are integers: the cast is exact
    return acc


def dense_matrix(layer: MatrixLayer, dtype: type = np.int64) -> np.ndarray:
    """The layer's ternary matrix ``[m_pad, n_pad]``, pruned tiles zero."""
    matrix = np.zeros((layer.out_folds, layer.pe, layer.n_pad // layer.simd, layer.simd), dtype=dtype)
    folds = np.repeat(np.arange(layer.out_folds), np.diff(layer.row_ptr))
    matrix[folds, :, layer.col_idx, :] = layer_codes(layer)  # [n_kept, pe, simd] into (fold, ·, column, ·)
    return matrix.reshape(layer.m_pad, layer.n_pad)


def _accumulate_folds(layer: MatrixLayer, x: np.ndarray) -> np.ndarray:
    """int64 reference: one matmul per output fold over that fold's kept tiles, ``[B·H·W, C_out]``."""
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
    return acc[:, :layer.out_channels]


def _kept_columns(columns: np.ndarray, folds: np.ndarray, simd: int) -> np.ndarray:
    """The input columns of the kept column folds: a view when they are contiguous (no copy)."""
    if folds[-1] - folds[0] == len(folds) - 1:
        return columns[:, folds[0] * simd:(folds[-1] + 1) * simd]
    return np.take(columns, (folds[:, None] * simd + np.arange(simd)).ravel(), axis=1)  # take: 3x faster than []


def requantize(layer: MatrixLayer, acc: np.ndarray) -> np.ndarray:
    """Hidden layer: ``clamp((acc·m + b) >> shift, 0, 2^out_bits − 1)`` (signed: to ±2^(out_bits−1));
    output layer: ``acc·m + b``."""
    scaled = acc * layer.m  # in place from here: a third less memory traffic on large layers
    scaled += layer.b
    if layer.is_output:
        return np.maximum(scaled, 0, out=scaled) if layer.relu else scaled
    scaled >>= layer.shift
    low, high = (-(1 << (layer.out_bits - 1)), (1 << (layer.out_bits - 1)) - 1) if layer.signed else \
        (0, (1 << layer.out_bits) - 1)
    return np.clip(scaled, low, high, out=scaled)


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
