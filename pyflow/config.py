"""YAML → frozen dataclasses, in one place: unknown keys, missing fields and bad values are one-line errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from pyflow.errors import PyflowError


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise PyflowError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PyflowError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None


def check_keys(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data`` as a dict holding only fields of dataclass ``cls`` and every field without a default."""
    if not isinstance(data, dict):
        raise PyflowError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    for key in data:
        if key not in names:
            raise PyflowError(f"{where}: unknown field {key!r} (expected one of: {', '.join(names)})")
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in data:
            raise PyflowError(f"{where}: missing field {f.name!r}")
    return dict(data)


def integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PyflowError(f"{where}: must be an integer >= {minimum}, got {value!r}")
    return value
