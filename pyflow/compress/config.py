"""CompressConfig — one frozen, validated dataclass for a compression run; YAML and flags parse into it here.

Torch-free, so the one-command flow can build and check a configuration before importing PyTorch.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyflow.errors import PyflowError

PENALTIES = ("none", "group-lasso", "wpc")
ALPHA_MODES = ("gaussian", "empirical")
TAU_MODES = ("target", "threshold")
_FOLD = re.compile(r"\s*([A-Za-z_][\w.]*)\s*=\s*(\d+)\s*[xX]\s*(\d+)\s*")


def _fail(field_name: str, problem: str) -> PyflowError:
    return PyflowError(f"compress config: {field_name}: {problem}")


def _int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(name, f"must be an integer >= {minimum}, got {value!r}")


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise _fail(name, f"must be a fraction in (0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CompressConfig:
    """Everything a compression run needs; ``folding`` maps a layer name to ``(pe, simd)``.

    ``keep_tiles`` is a kept-tile fraction for every layer, or a dict layer → fraction (unnamed layers keep
    all tiles); ``compression`` is the alternative target (weights-only ratio). Neither means keep 100 %.
    """

    out: str
    model: str = "digits-cnn"
    data: str = "digits"
    checkpoint: str | None = None
    pe: int = 8
    simd: int = 8
    folding: dict[str, tuple[int, int]] = field(default_factory=dict)
    keep_tiles: float | dict[str, float] | None = None
    compression: float | None = None
    penalty: str = "wpc"
    tau: str = "target"  # WPC's clip: "target" (each layer's k-th largest tile) or "threshold" (κ·Δ·√|g|)
    kappa: float = 1.0
    lam: float = 1.0
    lam_growth: float = 4.0  # λ's factor per penalty epoch while a layer keeps more tiles than its target
    fp_epochs: int = 30
    ternary_epochs: int = 30
    finetune_epochs: int = 20
    lr: float = 2e-3
    finetune_lr: float = 2e-4  # the masked fine-tune refines a trained network: no warm restart at lr
    threshold_lr: float = 0.1
    batch_size: int = 64
    alpha: str = "gaussian"
    seed: int = 0
    a_bits: int = 8

    def __post_init__(self) -> None:
        for name in ("kappa", "lam", "lam_growth", "lr", "finetune_lr", "threshold_lr", "compression"):
            value = getattr(self, name)
            if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
                try:
                    object.__setattr__(self, name, float(value))
                except ValueError:
                    raise _fail(name, f"must be a number, got {value!r}") from None
        for name in ("pe", "simd", "a_bits", "batch_size"):
            _int(name, getattr(self, name), 1)
        for name in ("fp_epochs", "ternary_epochs", "finetune_epochs", "seed"):
            _int(name, getattr(self, name), 0)
        if not 2 <= self.a_bits <= 16:
            raise _fail("a_bits", f"must lie in [2, 16], got {self.a_bits}")
        if self.penalty not in PENALTIES:
            raise _fail("penalty", f"must be one of {', '.join(PENALTIES)}, got {self.penalty!r}")
        if self.tau not in TAU_MODES:
            raise _fail("tau", f"must be one of {', '.join(TAU_MODES)}, got {self.tau!r}")
        if self.alpha not in ALPHA_MODES:
            raise _fail("alpha", f"must be one of {', '.join(ALPHA_MODES)}, got {self.alpha!r}")
        if isinstance(self.lam_growth, bool) or not isinstance(self.lam_growth, int | float) or \
                not 1.0 <= self.lam_growth <= 1e6:
            raise _fail("lam_growth", f"must be a factor in [1, 1e6] (1: a fixed lambda), got {self.lam_growth!r}")
        for name in ("kappa", "lam", "lr", "finetune_lr", "threshold_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise _fail(name, f"must be a non-negative number, got {value!r}")
        if not isinstance(self.out, str | Path) or not str(self.out):
            raise _fail("out", "an output folder is required")
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "folding", _check_folding(self.folding))
        self._check_target()

    def _check_target(self) -> None:
        if self.keep_tiles is not None and self.compression is not None:
            raise _fail("keep_tiles", "give either keep_tiles or compression, not both")
        if self.compression is not None:
            value = self.compression
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 1.0:
                raise _fail("compression", f"must be a ratio >= 1, got {value!r}")
            object.__setattr__(self, "compression", float(value))
        elif isinstance(self.keep_tiles, dict):
            object.__setattr__(self, "keep_tiles", {str(k): _fraction(f"keep_tiles.{k}", v)
                                                    for k, v in sorted(self.keep_tiles.items())})
        elif self.keep_tiles is not None:
            object.__setattr__(self, "keep_tiles", _fraction("keep_tiles", self.keep_tiles))

    def folding_for(self, name: str) -> tuple[int, int]:
        return self.folding.get(name, (self.pe, self.simd))

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["folding"] = {name: list(value) for name, value in self.folding.items()}
        return doc


def _check_folding(folding: Any) -> dict[str, tuple[int, int]]:
    if isinstance(folding, str):
        folding = parse_folding(folding)
    if not isinstance(folding, dict):
        raise _fail("folding", f"expected a mapping layer -> [pe, simd], got {folding!r}")
    result = {}
    for name, value in sorted(folding.items()):
        if isinstance(value, str):
            value = parse_folding(f"{name}={value}")[name]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise _fail(f"folding.{name}", f"expected [pe, simd], got {value!r}")
        for part, number in zip(("pe", "simd"), value, strict=True):
            _int(f"folding.{name}.{part}", number, 1)
        result[str(name)] = (int(value[0]), int(value[1]))
    return result


def parse_folding(text: str) -> dict[str, tuple[int, int]]:
    """``"conv0=4x1,conv1=8x8"`` → ``{"conv0": (4, 1), "conv1": (8, 8)}``."""
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _FOLD.fullmatch(item)
        if not match:
            raise _fail("folding", f"expected NAME=PExSIMD (e.g. conv0=4x1), got {item!r}")
        result[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return result


def parse_keep(text: str) -> float | dict[str, float]:
    """``"0.25"`` (every layer) or ``"conv0=1,conv1=0.25"`` (per layer)."""
    try:
        if "=" not in text:
            return float(text)
        return {name.strip(): float(value) for name, value in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise _fail("keep_tiles", f"expected a fraction or NAME=FRACTION,…, got {text!r}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a dict of CompressConfig fields (``epochs`` sets all three phases)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PyflowError(f"{path}: cannot read config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PyflowError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PyflowError(f"{path}: expected a mapping of config fields, got {type(doc).__name__}")
    return normalise_fields(doc, str(path))


def normalise_fields(doc: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(CompressConfig)}
    doc = {str(key).replace("-", "_"): value for key, value in doc.items()}
    if "epochs" in doc:
        epochs = doc.pop("epochs")
        for phase in ("fp_epochs", "ternary_epochs", "finetune_epochs"):
            doc.setdefault(phase, epochs)
    for key in doc:
        if key not in names:
            raise PyflowError(f"{where}: unknown field {key!r} (expected epochs or one of {', '.join(sorted(names))})")
    return doc
