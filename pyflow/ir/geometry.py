"""The shape of one conv or linear layer, before it has a folding: the one geometry type of the package.

The importer (pyflow.compress) reads it from the user's model, folding plans PE × SIMD from it, and the
ternary layers are built on it. ``in_hw`` is ``(1, 1)`` for a linear layer; ``flat_from`` is the
``(C, H, W)`` map flattened right before a linear layer (its columns are reordered at export).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyflow.errors import PyflowError
from pyflow.ir.model import conv_out_size

KINDS = ("conv", "linear")
FIELDS = ("name", "kind", "c_in", "c_out", "kernel", "stride", "padding", "in_hw")


def _pair(name: str, key: str, value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and v >= 1 for v in pair):
        raise PyflowError(f"layer {name!r}: {key}: expected (height, width) positive integers, got {value!r}")
    return (int(pair[0]), int(pair[1]))


@dataclass(frozen=True)
class LayerGeometry:
    name: str
    kind: str  # "conv" or "linear"
    c_in: int
    c_out: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    in_hw: tuple[int, int] = (1, 1)
    bias: bool = False
    flat_from: tuple[int, int, int] | None = None
    shares_input: bool = False  # reads a fork (an activation another engine reads too): SIMD must divide c_in

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PyflowError(f"layer {self.name!r}: kind: expected 'conv' or 'linear', got {self.kind!r}")
        for key in ("c_in", "c_out", "kernel", "stride"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PyflowError(f"layer {self.name!r}: {key}: must be a positive integer, got {value!r}")
        object.__setattr__(self, "in_hw", _pair(self.name, "in_hw", self.in_hw))
        if self.flat_from is not None:
            object.__setattr__(self, "flat_from", tuple(int(v) for v in self.flat_from))
        if min(self.out_hw) < 1:
            raise PyflowError(f"layer {self.name!r}: kernel {self.kernel} with padding {self.padding} does not fit "
                              f"the {self.in_hw} input")

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> LayerGeometry:
        """From a plain mapping; an ``out_hw`` in it must follow from the other fields."""
        missing = [key for key in FIELDS if key not in item]
        if missing:
            raise PyflowError(f"layer geometry {item.get('name', '?')!r}: missing field {missing[0]!r}")
        geometry = cls(**{key: item[key] for key in FIELDS}, shares_input=bool(item.get("shares_input", False)))
        if "out_hw" in item and _pair(geometry.name, "out_hw", item["out_hw"]) != geometry.out_hw:
            raise PyflowError(f"layer {geometry.name!r}: out_hw: {tuple(item['out_hw'])} does not follow from in_hw "
                              f"{geometry.in_hw}, kernel {geometry.kernel}, stride {geometry.stride}, padding "
                              f"{geometry.padding} (expected {geometry.out_hw})")
        return geometry

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.c_in, *self.in_hw)

    @property
    def out_hw(self) -> tuple[int, int]:
        h, w = (conv_out_size(v, self.kernel, self.stride, self.padding) for v in self.in_hw)
        return (h, w)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.c_out, *self.out_hw)

    @property
    def out_pixels(self) -> int:
        return self.out_hw[0] * self.out_hw[1]

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """The torch weight's shape."""
        if self.kind == "conv":
            return (self.c_out, self.c_in, self.kernel, self.kernel)
        return (self.c_out, self.c_in)
