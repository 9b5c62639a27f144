"""One report figure: its value, whether it is modelled or measured, and where it comes from.

"measured" means counted from an artifact (the IR's packed tiles, a simulator's hardware counters,
Yosys' netlist, the golden model's test-set accuracy); "modelled" means predicted by a model (the cycle
model, the analytical resource model). A figure whose input is missing is :meth:`Figure.na`, or
:meth:`Figure.not_run` for a verification view that was not run; in report.json its value is then the
string ``"n/a"`` or ``"not run"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MODELLED, MEASURED = "modelled", "measured"
NA, NOT_RUN = "n/a", "not run"
Value = int | float | bool | str | None


@dataclass(frozen=True)
class Figure:
    value: Value  # None when missing
    basis: str
    source: str
    missing: str = ""  # NA or NOT_RUN when the value is missing

    def __post_init__(self) -> None:
        if self.basis not in (MODELLED, MEASURED):
            raise ValueError(f"figure basis must be {MODELLED!r} or {MEASURED!r}, got {self.basis!r}")
        value = self.value
        if isinstance(value, float | np.floating):
            object.__setattr__(self, "value", round(float(value), 6))
        elif isinstance(value, np.integer):
            object.__setattr__(self, "value", int(value))

    @classmethod
    def na(cls, basis: str, source: str) -> Figure:
        return cls(None, basis, source, NA)

    @classmethod
    def not_run(cls, source: str) -> Figure:
        return cls(None, MEASURED, source, NOT_RUN)

    @classmethod
    def ratio(cls, num: float | None, den: float | None, basis: str, source: str) -> Figure:
        """``num / den``, or n/a when either is missing or ``den`` is zero."""
        if num is None or not den:
            return cls.na(basis, source)
        return cls(num / den, basis, source)

    @property
    def known(self) -> bool:
        return not self.missing

    @property
    def number(self) -> float | None:
        """The value when it is a number, else None."""
        return None if self.missing or isinstance(self.value, str | bool) else self.value

    def to_json(self) -> dict[str, Any]:
        return {"basis": self.basis, "source": self.source, "value": self.missing or self.value}


def total(figures: list[Figure], basis: str, source: str) -> Figure:
    """The sum of ``figures``, n/a if any is missing or not a number."""
    numbers = [f.number for f in figures]
    if not numbers or None in numbers:
        return Figure.na(basis, source)
    return Figure(sum(numbers), basis, source)


def to_json(doc: Any) -> Any:
    """A report tree of dicts, lists and figures as plain JSON data."""
    if isinstance(doc, Figure):
        return doc.to_json()
    if isinstance(doc, dict):
        return {key: to_json(value) for key, value in doc.items()}
    if isinstance(doc, list | tuple):
        return [to_json(value) for value in doc]
    return doc
