"""What an fx node's tensor is to the importer (:class:`Value`), and the exact rewrites that fold a pending
per-channel affine ``y = gain·x + shift`` — a BatchNorm after a ReLU, a constant scaling such as ``2*x - 1`` —
into the Conv2d or Linear that reads it: ``W' = W·gain`` (per input channel), ``b' = b + Σ W·shift``.
Exact in floating point when the layer does not pad, or when ``shift = 0`` (zero padding stays zero).
Two Linears with nothing between fold into one, ``W = W2·W1``, ``b = W2·b1 + b2`` (exact up to float rounding;
computed in float64).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from pyflow.compress.forms import Form


@dataclass(frozen=True, eq=False)
class Value:
    """What the tensor of an fx node is, in pyflow's terms."""

    op: int  # the op computing it (INPUT_OP: the network input)
    kind: str  # "act" (unsigned), "raw" (a matrix layer before its activation), "sum" (an add before its ReLU),
    # "logits" (a softmax of the logits)
    shape: tuple[int, ...]  # the op's output shape, without the batch
    deferred: tuple[tuple[fx.Node, Form], ...] = ()  # raw: max pools / flattens waiting for the ReLU
    gain: np.ndarray | None = None  # act: y = gain·x + shift per channel, waiting for the next matrix layer
    shift: np.ndarray | None = None
    pad: int = 0  # act: zero padding waiting for the next Conv2d
    pending: str = ""  # what made the gain/shift/pad, for messages
    view: tuple[int, ...] | None = None  # the user's shape when an unsqueeze made it differ from ``shape``


def bn_affine(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """An eval-mode BatchNorm as ``gain·x + shift`` per channel (float64)."""
    std = np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    gain = bn.weight.detach().double().numpy() / std
    return gain, bn.bias.detach().double().numpy() - gain * bn.running_mean.detach().double().numpy()


def composed(x: Value, gain: Any, shift: Any, pending: str) -> Value:
    """``x`` with ``gain·x + shift`` (per channel, or scalars) applied after its pending affine; ``pending`` says
    where it was written (kept from the first one)."""
    channels = x.shape[0]
    old_gain = x.gain if x.gain is not None else np.ones(channels)
    old_shift = x.shift if x.shift is not None else np.zeros(channels)
    gain, shift = np.broadcast_to(gain, channels), np.broadcast_to(shift, channels)
    return replace(x, gain=gain * old_gain, shift=gain * old_shift + shift, pending=x.pending or pending)


def fold_affine(module: nn.Conv2d | nn.Linear, gain: np.ndarray, shift: np.ndarray) -> nn.Module:
    """A copy of ``module`` computing ``module(gain·x + shift)`` (per input channel, or per input feature of a
    Linear) — exact for a Linear and an unpadded Conv2d, and for any Conv2d when ``shift`` is zero."""
    folded = copy.deepcopy(module)
    weight = module.weight.detach().double()
    view = (1, -1, 1, 1) if isinstance(module, nn.Conv2d) else (1, -1)
    offset = (weight * torch.from_numpy(shift).view(view)).flatten(1).sum(1)
    with torch.no_grad():
        folded.weight.copy_(weight * torch.from_numpy(np.ascontiguousarray(gain)).view(view))
        base = module.bias.detach().double() if module.bias is not None else torch.zeros(len(offset))
        folded.bias = nn.Parameter((base + offset).to(module.weight.dtype))
    return folded


def fold_linear_pair(first: nn.Linear, second: nn.Linear) -> nn.Linear:
    """One Linear computing ``second(first(x))``: ``W = W2·W1``, ``b = W2·b1 + b2`` (float64, then the weights'
    dtype); without a bias when neither has one."""
    w1, w2 = first.weight.detach().double(), second.weight.detach().double()
    bias = torch.zeros(w2.shape[0], dtype=torch.float64)
    if first.bias is not None:
        bias = bias + w2 @ first.bias.detach().double()
    if second.bias is not None:
        bias = bias + second.bias.detach().double()
    has_bias = first.bias is not None or second.bias is not None
    folded = nn.Linear(first.in_features, second.out_features, bias=has_bias, dtype=first.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(w2 @ w1)
        if has_bias:
            folded.bias.copy_(bias)
    return folded.train(first.training)
