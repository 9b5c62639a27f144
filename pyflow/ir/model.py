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
``acc·m[o] + b[o]`` as int32 logits (with ``relu``, a model ending in ReLU: ``max(acc·m[o] + b[o], 0)``).
Average pooling sums its window and requantizes with scalar
``m, b, shift``; max pooling compares. ``shift`` is one per layer (the requantizer is a constant shift
in hardware); per-channel precision is carried by ``m``.

Graphs (schema version 2). The layers are a DAG in topological order: each layer names the layer(s) it
reads in ``inputs`` (:data:`INPUT` is the network's image; an empty ``inputs`` means the layer before
it, so a chain needs none, and version-1 files, which have no ``inputs``, load as chains). A layer
read by two consumers is a fork. A residual **add** reads two activations of the same shape and
aligns their scales in integers::

    y = clamp((a·m_a + b·m_b + c) >> shift, 0, 2^out_bits − 1)

A hidden matrix layer whose only readers are adds may be ``signed`` (a residual branch ends in
BatchNorm, not ReLU): it returns ``clamp((acc·m + b) >> shift, −2^(out_bits−1), 2^(out_bits−1) − 1)``
in two's complement, and the add reading it says so (``a_signed`` / ``b_signed``). Nothing else reads
a signed activation. The last layer gives the logits and no layer reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyflow.ir import fields

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: a chain, written before graphs
INPUT = "input"  # what ``inputs`` calls the network's image (no layer may take this name)
M_BITS = 16  # signed width of a requantization multiplier
M_MIN, M_MAX = -(1 << (M_BITS - 1)), (1 << (M_BITS - 1)) - 1
MAX_SHIFT = 40
LOGIT_BITS = 32
CODE_ZERO, CODE_PLUS, CODE_INVALID, CODE_MINUS = 0b00, 0b01, 0b10, 0b11
MATRIX_LIMITS = {"out_channels": (1, fields.MAX_CHANNELS), "kernel": (1, fields.MAX_DIM),
                 "stride": (1, fields.MAX_DIM), "padding": (0, fields.MAX_DIM), "pe": (1, fields.MAX_LANES),
                 "simd": (1, fields.MAX_LANES), "in_bits": (1, fields.MAX_ACT_BITS), "out_bits": (1, fields.MAX_BITS),
                 "acc_bits": (1, fields.MAX_ACC_BITS), "shift": (0, MAX_SHIFT)}
ADD_LIMITS = {"in_bits": (1, fields.MAX_ACT_BITS), "out_bits": (1, fields.MAX_ACT_BITS), "m_a": (M_MIN, M_MAX),
              "m_b": (M_MIN, M_MAX), "c": (-fields.MAX_ABS_BIAS, fields.MAX_ABS_BIAS), "shift": (0, MAX_SHIFT)}
POOL_LIMITS = {"kernel": (1, fields.MAX_DIM), "stride": (1, fields.MAX_DIM), "in_bits": (1, fields.MAX_ACT_BITS),
               "m": (M_MIN, M_MAX), "b": (-fields.MAX_ABS_BIAS, fields.MAX_ABS_BIAS),
               "shift": (0, MAX_SHIFT)}


def _fail(layer: str, field_name: str, problem: str) -> fields.FieldError:
    return fields.FieldError(layer, field_name, problem)


def _integers(layer: Any, limits: dict[str, tuple[int, int]]) -> None:
    """Check (and normalise to Python ints) the integer fields named in ``limits``."""
    for key, (low, high) in limits.items():
        object.__setattr__(layer, key, fields.integer(layer.name, key, getattr(layer, key), low, high))


def _inputs(layer: Any, count: tuple[int, ...]) -> None:
    """``inputs``: a list of ``count`` layer names (or INPUT); normalised to a tuple of str."""
    value = layer.inputs
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__len__") or len(value) not in count:
        wanted = " or ".join(str(n) for n in count)
        raise _fail(layer.name, "inputs", f"must be a list of {wanted} layer names, got {fields.shown(value)}")
    names = tuple(name if name == INPUT else fields.layer_name(name) for name in value)
    object.__setattr__(layer, "inputs", names)


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
    signed: bool = False  # a residual branch's end: a two's-complement output read only by adds
    relu: bool = False  # the output layer only: logits max(acc·m + b, 0), for a model whose forward ends in ReLU
    inputs: tuple[str, ...] = ()  # () = the layer before

    def __post_init__(self) -> None:
        fields.layer_name(self.name)
        fields.choice(self.name, "kind", self.kind, ("conv", "linear"))
        object.__setattr__(self, "in_shape", fields.shape3(self.name, "in_shape", self.in_shape))
        _integers(self, MATRIX_LIMITS)
        object.__setattr__(self, "is_output", fields.boolean(self.name, "is_output", self.is_output))
        object.__setattr__(self, "signed", fields.boolean(self.name, "signed", self.signed))
        object.__setattr__(self, "relu", fields.boolean(self.name, "relu", self.relu))
        _inputs(self, (0, 1))
        if self.padding >= self.kernel:
            raise _fail(self.name, "padding", f"must be in [0, kernel), got {self.padding}")
        if self.pe * self.simd > fields.MAX_WORD_LANES:
            raise _fail(self.name, "pe", f"PE={self.pe} x SIMD={self.simd} exceeds {fields.MAX_WORD_LANES} lanes")
        outputs = math.prod(max(0, v) for v in self.out_shape)
        if self.m_pad * self.n_pad > fields.MAX_WEIGHTS or outputs > fields.MAX_MAP:
            raise _fail(self.name, "out_channels", f"{self.out_channels} outputs of kernel {self.kernel} on "
                                                   f"{self.in_shape}: more than {fields.MAX_WEIGHTS} weights or "
                                                   f"{fields.MAX_MAP} outputs")
        self._set_arrays()

    def _set_arrays(self) -> None:
        """The arrays, in this order: each shape below depends only on fields checked before it."""
        self._set_array("m", np.int64, (self.out_channels,), M_MIN, M_MAX)
        self._set_array("b", np.int64, (self.out_channels,), -fields.MAX_ABS_BIAS, fields.MAX_ABS_BIAS)
        shape = np.shape(self.col_idx)
        if len(shape) != 1 or shape[0] > self.tiles_total:
            raise fields.FieldError(self.name, "col_idx", f"shape {shape}, expected (n_kept,) with n_kept <= "
                                                     f"{self.tiles_total}", array=True)
        n_kept = shape[0]
        self._set_array("col_idx", np.int64, (n_kept,), 0, fields.MAX_WEIGHTS)
        self._set_array("row_ptr", np.int64, (self.out_folds + 1,), 0, fields.MAX_WEIGHTS,
                        f" for {self.out_channels} outputs at PE={self.pe}")
        self._set_array("words", np.uint8, (n_kept, self.word_bytes), 0, 255,
                        f" for PE={self.pe} x SIMD={self.simd}")

    def _set_array(self, key: str, dtype: type, shape: tuple[int, ...], low: int, high: int, why: str = "") -> None:
        array = fields.int_array(self.name, key, getattr(self, key), dtype, shape, low, high, why)
        object.__setattr__(self, key, array)

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
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        fields.layer_name(self.name)
        fields.choice(self.name, "kind", self.kind, ("maxpool", "avgpool"))
        object.__setattr__(self, "in_shape", fields.shape3(self.name, "in_shape", self.in_shape))
        _integers(self, POOL_LIMITS)
        _inputs(self, (0, 1))
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
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        fields.layer_name(self.name)
        object.__setattr__(self, "in_shape", fields.shape3(self.name, "in_shape", self.in_shape))
        _integers(self, {"in_bits": (1, fields.MAX_ACT_BITS)})
        _inputs(self, (0, 1))

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (math.prod(self.in_shape), 1, 1)

    @property
    def out_bits(self) -> int:
        return self.in_bits


@dataclass(frozen=True, eq=False)
class AddLayer:
    """Residual add of two ``in_shape`` activations: ``clamp((a·m_a + b·m_b + c) >> shift, 0, 2^out_bits − 1)``."""

    name: str
    in_shape: tuple[int, int, int]
    in_bits: int  # both inputs
    inputs: tuple[str, ...]  # (a, b)
    a_signed: bool
    b_signed: bool
    m_a: int
    m_b: int
    c: int
    shift: int
    out_bits: int

    def __post_init__(self) -> None:
        fields.layer_name(self.name)
        object.__setattr__(self, "in_shape", fields.shape3(self.name, "in_shape", self.in_shape))
        _integers(self, ADD_LIMITS)
        for key in ("a_signed", "b_signed"):
            object.__setattr__(self, key, fields.boolean(self.name, key, getattr(self, key)))
        _inputs(self, (2,))

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.in_shape

    @property
    def kind(self) -> str:
        return "add"

    @property
    def signed_inputs(self) -> tuple[bool, bool]:
        return (self.a_signed, self.b_signed)

    @property
    def sum_bits(self) -> int:
        """Signed width of ``a·m_a + b·m_b + c`` for any inputs of ``in_bits`` bits (c checked to fit)."""
        return self.in_bits + M_BITS + 3


Layer = MatrixLayer | PoolLayer | FlattenLayer | AddLayer
LAYER_CLASSES = (MatrixLayer, PoolLayer, FlattenLayer, AddLayer)


def signed_output(layer: Layer | None) -> bool:
    """Whether ``layer`` (None: the image) returns two's-complement activations."""
    return isinstance(layer, MatrixLayer) and layer.signed


def _layers(layers: Any) -> tuple[Layer, ...]:
    """A tuple of at most MAX_LAYERS layer objects with distinct names (names key the NPZ and the ROM files)."""
    if isinstance(layers, str | bytes | dict) or not hasattr(layers, "__iter__"):
        raise fields.FieldError(None, "layers", f"must be a list of layers, got {fields.shown(layers)}")
    layers = tuple(layers)
    if len(layers) > fields.MAX_LAYERS:
        raise fields.FieldError(None, "layers", f"{len(layers)} layers, at most {fields.MAX_LAYERS} are supported")
    names: set[str] = set()
    for position, layer in enumerate(layers):
        if not isinstance(layer, LAYER_CLASSES):
            raise fields.FieldError(None, f"layers[{position}]", f"{type(layer).__name__} is not an IR layer")
        if layer.name == INPUT:
            raise _fail(layer.name, "name", f"{INPUT!r} names the network's input")
        if layer.name in names:
            raise _fail(layer.name, "name", "used twice")
        names.add(layer.name)
    return layers


@dataclass(frozen=True, eq=False)
class Network:
    """A DAG of layers (topological order) from a uint8 ``input_shape`` (C, H, W) image to int32 logits."""

    name: str
    input_shape: tuple[int, int, int]
    a_bits: int
    layers: tuple[Layer, ...]
    input_bits: int = 8
    meta: dict = field(default_factory=dict)  # free-form JSON data: provenance, class names, …

    def __post_init__(self) -> None:
        fields.network_name(self.name)
        object.__setattr__(self, "input_shape", fields.shape3(None, "input_shape", self.input_shape))
        object.__setattr__(self, "a_bits", fields.integer(None, "a_bits", self.a_bits, 1, fields.MAX_ACT_BITS))
        input_bits = fields.integer(None, "input_bits", self.input_bits, 1, fields.MAX_INPUT_BITS)
        object.__setattr__(self, "input_bits", input_bits)
        object.__setattr__(self, "layers", _layers(self.layers))
        fields.meta(self.meta)
        previous, sources = INPUT, {}
        for layer in self.layers:  # an empty ``inputs`` reads the layer before
            sources[layer.name] = layer.inputs or (previous,)
            previous = layer.name
        object.__setattr__(self, "_sources", sources)
        object.__setattr__(self, "_by_name", {layer.name: layer for layer in self.layers})

    def inputs_of(self, layer: Layer) -> tuple[str, ...]:
        """The names ``layer`` reads (INPUT for the image), resolved for chains."""
        return self._sources[layer.name]

    def producer(self, name: str) -> Layer | None:
        """The layer called ``name``; None for INPUT. (:func:`pyflow.ir.check.check_network` has made sure
        every name read exists.)"""
        return None if name == INPUT else self._by_name[name]

    def consumers(self, name: str) -> list[Layer]:
        """The layers reading ``name`` (a layer or INPUT), in order; an add reading it twice counts twice."""
        return [layer for layer in self.layers for source in self._sources[layer.name] if source == name]

    @property
    def is_chain(self) -> bool:
        return all(not isinstance(layer, AddLayer) and len(self.consumers(layer.name)) <= 1
                   for layer in self.layers)

    @property
    def matrix_layers(self) -> list[MatrixLayer]:
        return [layer for layer in self.layers if isinstance(layer, MatrixLayer)]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_shape[0]
