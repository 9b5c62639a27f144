"""Field checks of the IR dataclasses: names, integers, shapes, arrays and meta, each against a hard limit.

An IR is a file users exchange, and the backends render its names into C++, Verilog and file names and
size buffers from its numbers. So every field is checked when a layer or network is *built* (from JSON or
from Python), before any derived figure is computed: a name must be a plain identifier (it becomes part
of a C++/Verilog identifier and of ROM file names), a number a real integer inside a sane range (a
``10**30`` kernel or a 100000x100000 map is refused here, not found by a memory blow-up later), an array
an integer array of the exact shape. Cross-field rules (chaining, CSR order, bit widths) stay in
:mod:`pyflow.ir.check`.

This module imports nothing from the rest of the IR, so the dataclasses can use it.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from pyflow.errors import PyflowError

LAYER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# the network name lands in comments (a newline or a trailing backslash would end or extend them) and
# may name a folder: no separators, no leading dot or dash, nothing but these characters
NETWORK_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
MAX_NAME = 64
MAX_LAYERS = 256
MAX_DIM = 4096  # H, W, kernel, stride, padding
MAX_CHANNELS = 1 << 20  # a flatten makes H·W·C channels
MAX_MAP = 1 << 24  # elements of one feature map (C·H·W)
MAX_LANES = 4096  # PE, SIMD
MAX_WORD_LANES = 1 << 16  # PE·SIMD: lanes of one tile word
MAX_WEIGHTS = 1 << 24  # padded weights of one layer (M_pad·N_pad): the checks unpack them densely
MAX_BITS = 32  # activation / logit widths
MAX_ACC_BITS = 48  # acc·m + b must fit the golden model's int64 with M_BITS = 16
MAX_INPUT_BITS = 8  # the input is uint8 pixels
MAX_ACT_BITS = 16
MAX_ABS_BIAS = 1 << 62  # |b|: int64 arithmetic on biases (abs, sums) cannot overflow
MAX_META_DEPTH = 32
MAX_META_ITEMS = 1 << 20
MAX_SHOWN = 40  # characters of a hostile value shown in an error


class FieldError(PyflowError):
    """A bad field: the message is ``layer 'x': field: problem`` (or ``network: field: problem``)."""

    def __init__(self, layer: Any, field: str, problem: str, where: str | None = None, array: bool = False) -> None:
        where = where or ("network" if layer is None else f"layer {shown(layer)}")
        super().__init__(f"{where}: {field}: {problem}")
        self.layer, self.field = layer, field
        self.array = array  # the field is an NPZ array (so `load` names weights.npz, not network.json)


def shown(value: Any) -> str:
    """``repr`` of a value, cut short: a hostile 10 MB name must still give a short one-line error."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def layer_name(name: Any) -> str:
    """A layer name becomes part of C++/Verilog identifiers and ROM file names: an identifier only."""
    if not isinstance(name, str) or not LAYER_NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise FieldError(name, "name", f"{shown(name)} is not a layer name (letters, digits and _, not starting "
                                       f"with a digit, at most {MAX_NAME} characters)", where="layer")
    return name


def network_name(name: Any) -> str:
    if not isinstance(name, str) or not NETWORK_NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise FieldError(None, "name", f"{shown(name)} is not a network name (letters, digits, _ and, inside, "
                                       f"- and .; at most {MAX_NAME} characters)")
    return name


def safe_network_name(text: str) -> str:
    """``text`` made into a valid network name (for names derived from a user's file name)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:MAX_NAME].strip(".-")
    return name if NETWORK_NAME.fullmatch(name) else "network"


def integer(layer: Any, field: str, value: Any, low: int, high: int, where: str | None = None) -> int:
    """A real integer (not bool, float or str) in ``[low, high]``, as a Python int."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise FieldError(layer, field, f"must be an integer in [{low}, {high}], got {shown(value)}", where)
    if not low <= int(value) <= high:
        raise FieldError(layer, field, f"{shown(int(value))} is outside [{low}, {high}]", where)
    return int(value)


def boolean(layer: Any, field: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise FieldError(layer, field, f"must be true or false, got {shown(value)}")
    return bool(value)


def choice(layer: Any, field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise FieldError(layer, field, f"must be one of {', '.join(allowed)}, got {shown(value)}")
    return value


def shape3(layer: Any, field: str, value: Any, where: str | None = None) -> tuple[int, int, int]:
    """A ``(C, H, W)`` shape: three positive integers within the limits, at most MAX_MAP elements."""
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__len__") or len(value) != 3:
        raise FieldError(layer, field, f"must be a list of 3 positive integers (C, H, W), got {shown(value)}", where)
    c, h, w = (integer(layer, f"{field}[{i}]", v, 1, high, where)
               for i, (v, high) in enumerate(zip(value, (MAX_CHANNELS, MAX_DIM, MAX_DIM), strict=True)))
    if c * h * w > MAX_MAP:
        raise FieldError(layer, field, f"{c}x{h}x{w} has more than {MAX_MAP} elements", where)
    return (c, h, w)


def int_array(layer: Any, field: str, values: Any, dtype: type, shape: tuple[int, ...],
              low: int, high: int, why: str = "") -> np.ndarray:
    """A read-only copy of ``values`` as ``dtype``, refused unless integral, of ``shape``, in ``[low, high]``.

    Floats are accepted only when every value is a whole number (Python-built networks pass ``np.ones``);
    the NPZ reader is stricter and accepts integer dtypes only.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.dtype == np.float16:
        raise FieldError(layer, field, f"must be an integer array, got dtype {array.dtype}", array=True)
    if array.shape != shape:
        raise FieldError(layer, field, f"shape {array.shape}, expected {shape}{why}", array=True)
    if array.size:
        if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise FieldError(layer, field, "must hold whole numbers", array=True)
        lowest, highest = array.min(), array.max()
        if lowest < low or highest > high:
            raise FieldError(layer, field, f"values must lie in [{low}, {high}], found "
                                           f"{shown(int(lowest) if lowest < low else int(highest))}", array=True)
    copy = array.astype(dtype)  # a copy: never alias (or freeze) the caller's array
    copy.setflags(write=False)
    return copy


def meta(value: Any) -> dict[str, Any]:
    """Free-form JSON data, but plain JSON (finite numbers, string keys, bounded depth and size).

    The keys pyflow itself reads (``keep``, ``compression.layers.*``) are typed too: they reach reports.
    """
    if not isinstance(value, dict):
        raise FieldError(None, "meta", f"must be a JSON object, got {shown(value)}")
    _json_value(value, "meta", 0, [0])
    _keep(value.get("keep"), "meta.keep")
    compression = value.get("compression")
    if compression is not None:
        layers = compression.get("layers", {}) if isinstance(compression, dict) else None
        if not isinstance(layers, dict) or not all(isinstance(v, dict) for v in layers.values()):
            raise FieldError(None, "meta.compression", "must be {\"layers\": {name: {...}}}")
        for name, info in layers.items():
            _keep(info.get("requested_keep"), f"meta.compression.layers.{shown(name)}.requested_keep")
            for key in ("tiles_masked", "tiles_all_zero"):
                if key in info:
                    integer(None, f"meta.compression.layers.{shown(name)}.{key}", info[key], 0, 1 << 40)
    return value


def _keep(value: Any, field: str) -> None:
    """A requested kept fraction: absent, null, a number in [0, 1], or such numbers per layer name."""
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for name, item in items:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item <= 1:
            where = field if name is None else f"{field}.{shown(name)}"
            raise FieldError(None, where, f"must be a fraction in [0, 1], got {shown(item)}")


def _json_value(value: Any, where: str, depth: int, count: list[int]) -> None:
    count[0] += 1
    if depth > MAX_META_DEPTH or count[0] > MAX_META_ITEMS:
        raise FieldError(None, "meta", f"nested deeper than {MAX_META_DEPTH} or more than {MAX_META_ITEMS} items")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FieldError(None, where, f"key {shown(key)} is not a string")
            _json_value(item, where, depth + 1, count)
    elif isinstance(value, list | tuple):
        for item in value:
            _json_value(item, where, depth + 1, count)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(None, where, f"{value} is not a finite number")
    elif value is not None and not isinstance(value, str | int | bool):
        raise FieldError(None, where, f"{type(value).__name__} is not a JSON value")
