"""The accelerator IR: plain frozen data, the only thing that crosses from export to the backends.

Layout — written down here once; every other module (packing, golden model, HLS, RTL) follows it.

* Feature maps are HWC: pixel ``(y, x)`` major, channel innermost. The user's NCHW uint8 input is
  transposed on entry. ``Flatten`` of an ``(C, H, W)`` map therefore keeps memory as it is and
  yields the vector ``(y, x, c)`` of length ``H·W·C`` (shape ``(H·W·C, 1, 1)``); export permutes a
  torch Linear's columns from torch's ``(c, y, x)`` order to match.
* A matrix layer (conv or linear) is ``W[M, N]`` with ``M = C_out`` and ``N = k·k·C_in_pad``;
  column ``n = (k_y·k + k_x)·C_in_pad + c`` (``c`` innermost). ``C_in`` is padded with zero channels
  to a multiple of ``SIMD`` and ``M`` with zero rows to a multiple of ``PE``, so a tile never
  straddles two kernel positions. A linear layer is the special case ``k = 1`` on a ``1×1`` map.
* Tile ``(r, f)`` holds rows ``r·PE … r·PE+PE−1`` and columns ``f·SIMD … f·SIMD+SIMD−1``:
  ``r`` is the output fold, ``f`` the column fold, and column fold ``f`` reads kernel position
  ``f // chunks`` (``k_y = pos // k``, ``k_x = pos % k``) and channel chunk ``f % chunks``,
  ``chunks = C_in_pad / SIMD``.
* A kept tile is one ``PE·SIMD·2``-bit word: the code of PE lane ``p``, SIMD lane ``j`` sits at bits
  ``2·(p·SIMD + j)``. Codes: ``00 → 0``, ``01 → +1``, ``11 → −1``; ``10`` is invalid. A word is
  stored as ``ceil(PE·SIMD/4)`` little-endian bytes (lane ``i`` in byte ``i // 4``, bits
  ``2·(i % 4)``), unused high bits zero.
* The tile index is CSR over output folds: the kept tiles of fold ``r`` are
  ``words[row_ptr[r]:row_ptr[r+1]]`` with column folds ``col_idx[row_ptr[r]:row_ptr[r+1]]``,
  strictly ascending — the order the engine walks them.

Integer contract (DESIGN §2): ``acc[o] = Σ t[o,i]·x[i]`` over kept tiles; a hidden layer returns
``clamp((acc·m[o] + b[o]) >> shift, 0, 2^out_bits − 1)`` (arithmetic shift), the output layer returns
``acc·m[o] + b[o]`` as int32 logits. Average pooling sums its window and requantizes with scalar
``m, b, shift``; max pooling compares. ``shift`` is one per layer (the requantizer is a constant shift
in hardware); per-channel precision is carried by ``m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyflow.errors import PyflowError

SCHEMA_VERSION = 1
M_BITS = 16  # signed width of a requantization multiplier
MAX_SHIFT = 40
LOGIT_BITS = 32
CODE_ZERO, CODE_PLUS, CODE_INVALID, CODE_MINUS = 0b00, 0b01, 0b10, 0b11


def _fail(layer: str, field_name: str, problem: str) -> PyflowError:
    return PyflowError(f"layer {layer!r}: {field_name}: {problem}")


def _positive(layer: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise _fail(layer, key, f"must be a positive integer, got {value!r}")


def _frozen_array(values: Any, dtype: type) -> np.ndarray:
    array = np.array(values, dtype=dtype)  # a copy: never alias (or freeze) the caller's array
    array.setflags(write=False)
    return array


def accumulator_bits(fan_in: int, in_bits: int) -> int:
    """Signed width that holds any ``Σ t·x`` over ``fan_in`` inputs of ``in_bits`` unsigned bits."""
    return (fan_in * ((1 << in_bits) - 1)).bit_length() + 1


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True, eq=False)
class MatrixLayer:
    """A convolution or linear layer, its ternary tiles packed, and its requantization."""

    name: str
    kind: str  # "conv" or "linear"
    in_shape: tuple[int, int, int]  # (C, H, W)
    out_channels: int
    kernel: int
    stride: int
    padding: int
    pe: int
    simd: int
    in_bits: int
    out_bits: int  # activation bits, or LOGIT_BITS for the output layer
    acc_bits: int
    shift: int
    m: np.ndarray  # int64 [out_channels]
    b: np.ndarray  # int64 [out_channels]
    words: np.ndarray  # uint8 [n_kept, word_bytes]
    row_ptr: np.ndarray  # int64 [out_folds + 1]
    col_idx: np.ndarray  # int64 [n_kept]
    is_output: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "linear"):
            raise _fail(self.name, "kind", f"must be 'conv' or 'linear', got {self.kind!r}")
        _positive(self.name, out_channels=self.out_channels, kernel=self.kernel, stride=self.stride,
                  pe=self.pe, simd=self.simd, in_bits=self.in_bits, out_bits=self.out_bits,
                  acc_bits=self.acc_bits)
        if self.padding < 0 or self.padding >= self.kernel:
            raise _fail(self.name, "padding", f"must be in [0, kernel), got {self.padding}")
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        for key, dtype in (("m", np.int64), ("b", np.int64), ("words", np.uint8),
                           ("row_ptr", np.int64), ("col_idx", np.int64)):
            object.__setattr__(self, key, _frozen_array(getattr(self, key), dtype))

    @property
    def c_in(self) -> int:
        return self.in_shape[0]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        size = (conv_out_size(h, self.kernel, self.stride, self.padding),
                conv_out_size(w, self.kernel, self.stride, self.padding))
        return (self.out_channels, *size)

    @property
    def c_in_pad(self) -> int:
        return -(-self.c_in // self.simd) * self.simd

    @property
    def chunks(self) -> int:
        """SIMD-wide channel chunks per kernel position."""
        return self.c_in_pad // self.simd

    @property
    def m_pad(self) -> int:
        return self.out_folds * self.pe

    @property
    def n_pad(self) -> int:
        return self.kernel * self.kernel * self.c_in_pad

    @property
    def fan_in(self) -> int:
        return self.kernel * self.kernel * self.c_in

    @property
    def out_folds(self) -> int:
        return -(-self.out_channels // self.pe)

    @property
    def col_folds(self) -> int:
        return self.kernel * self.kernel * self.chunks

    @property
    def tiles_total(self) -> int:
        return self.out_folds * self.col_folds

    @property
    def n_kept(self) -> int:
        return int(self.col_idx.shape[0])

    @property
    def word_bits(self) -> int:
        return 2 * self.pe * self.simd

    @property
    def word_bytes(self) -> int:
        return -(-self.pe * self.simd // 4)

    @property
    def out_pixels(self) -> int:
        _, h, w = self.out_shape
        return h * w


@dataclass(frozen=True, eq=False)
class PoolLayer:
    """Max pooling (integer compare) or average pooling (window sum, then scalar requantization)."""

    name: str
    kind: str  # "maxpool" or "avgpool"
    in_shape: tuple[int, int, int]
    kernel: int
    stride: int
    in_bits: int
    m: int = 1
    b: int = 0
    shift: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("maxpool", "avgpool"):
            raise _fail(self.name, "kind", f"must be 'maxpool' or 'avgpool', got {self.kind!r}")
        _positive(self.name, kernel=self.kernel, stride=self.stride, in_bits=self.in_bits)
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        _, h, w = self.in_shape
        if self.kernel > min(h, w):
            raise _fail(self.name, "kernel", f"{self.kernel} is larger than the {h}x{w} input")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return (c, conv_out_size(h, self.kernel, self.stride, 0), conv_out_size(w, self.kernel, self.stride, 0))

    @property
    def out_bits(self) -> int:
        return self.in_bits

    @property
    def sum_bits(self) -> int:
        """Unsigned width of an average-pool window sum."""
        return (self.kernel * self.kernel * ((1 << self.in_bits) - 1)).bit_length()


@dataclass(frozen=True, eq=False)
class FlattenLayer:
    """``(C, H, W)`` → ``(H·W·C, 1, 1)``: in HWC memory order this moves no data."""

    name: str
    in_shape: tuple[int, int, int]
    in_bits: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (math.prod(self.in_shape), 1, 1)

    @property
    def out_bits(self) -> int:
        return self.in_bits


Layer = MatrixLayer | PoolLayer | FlattenLayer


@dataclass(frozen=True, eq=False)
class Network:
    """A chain of layers from a uint8 ``input_shape`` (C, H, W) image to int32 logits."""

    name: str
    input_shape: tuple[int, int, int]
    a_bits: int
    layers: tuple[Layer, ...]
    input_bits: int = 8
    meta: dict = field(default_factory=dict)  # free-form JSON data: provenance, class names, …

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def matrix_layers(self) -> list[MatrixLayer]:
        return [layer for layer in self.layers if isinstance(layer, MatrixLayer)]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_shape[0]
