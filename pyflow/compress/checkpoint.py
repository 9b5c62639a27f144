"""Checkpoints: the user's plain state_dict, and pyflow's compressed checkpoint folder.

A compressed checkpoint folder holds ``model.pt`` (a plain state_dict of the ChainNet: weights, BN
statistics, thresholds ``*.delta``, tile masks ``*.tile_mask``, activation scales ``*_act.scale``),
``meta.json`` (the layer chain, folding, requested targets, configuration) and ``metrics.json``.
Everything loads with ``torch.load(..., weights_only=True)``; problems are one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyflow import artifacts
from pyflow.compress.chain import ChainNet
from pyflow.errors import PyflowError

FORMAT = "pyflow-compressed-checkpoint"
VERSION = 1
MODEL_FILE, META_FILE, METRICS_FILE = "model.pt", "meta.json", "metrics.json"


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict from ``path`` (weights only: no arbitrary objects are unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise PyflowError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file; all mean the same to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PyflowError(f"{path}: corrupt or not a PyTorch checkpoint ({type(exc).__name__}: {first[:120]})") \
            from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        hint = " (it holds a 'state_dict' entry: save model.state_dict() itself)" \
            if isinstance(state, dict) and "state_dict" in state else ""
        raise PyflowError(f"{path}: not a plain state_dict of tensors{hint}")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise PyflowError(f"{path}: tensor {key!r} holds NaN or infinite values")
    return state


def _mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            parts.append(f"{label} {', '.join(keys[:3])}{more}")
    return "; ".join(parts)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], where: str, what: str) -> None:
    problem = _mismatch(model, state)
    if problem:
        raise PyflowError(f"{where}: is a checkpoint of another model, not {what}: {problem}")
    model.load_state_dict(state)


def save_compressed(folder: Path, model: ChainNet, meta: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write into ``folder`` (a fresh temporary folder from ``atomic_folder``)."""
    torch.save(model.state_dict(), folder / MODEL_FILE)
    write_json(folder / META_FILE, {"format": FORMAT, "version": VERSION, **meta})
    write_json(folder / METRICS_FILE, metrics)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    artifacts.write_json(path, doc)


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    if not path.is_file():
        raise PyflowError(f"{folder}: not a compressed checkpoint folder (no {META_FILE}; "
                          "write one with `pyflow compress`)")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise PyflowError(f"{path}: unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise PyflowError(f"{path}: not a pyflow compressed checkpoint (format {FORMAT} version {VERSION})")
    return meta


def load_compressed(folder: str | Path) -> tuple[ChainNet, dict[str, Any]]:
    """Rebuild the ChainNet described by ``meta.json`` and load ``model.pt`` into it."""
    folder = Path(folder)
    meta = read_meta(folder)
    try:
        folding = {name: tuple(value) for name, value in meta["folding"].items()}
        model = ChainNet(meta["ops"], folding, meta["a_bits"], meta["alpha"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PyflowError(f"{folder / META_FILE}: malformed ({type(exc).__name__}: {exc})") from None
    load_into(model, load_state(folder / MODEL_FILE), str(folder / MODEL_FILE), f"the model in {META_FILE}")
    model.set_ternary(bool(meta.get("ternary", True)), init=False)
    model.set_act_quant(bool(meta.get("act_quant", True)))
    model.eval()
    return model, meta
