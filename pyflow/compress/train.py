"""Training loops and the compression phases (DESIGN §1).

FP baseline → ternary + group penalty → freeze tile masks to the requested target → masked ternary
fine-tune with activations fake-quantized to ``a_bits`` (so the torch model and the golden model agree).
Every epoch prints one progress line to stderr: phase, epoch, loss, test accuracy, kept tiles.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pyflow.compress.chain import ChainNet
from pyflow.compress.ternary import THRESHOLD_GRAD_CLIP, TernaryMatrix, penalty
from pyflow.data import Dataset
from pyflow.errors import PyflowError


def as_float(images: np.ndarray, vector: bool = False) -> torch.Tensor:
    """``x/255`` floats of uint8 images; ``vector``: ``[N, F, 1, 1]`` features as the ``[N, F]`` a user's MLP reads."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    return x.flatten(1) if vector else x


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 512,
             vector: bool = False) -> float:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(as_float(images[i:i + batch], vector)) for i in range(0, len(images), batch)])
    return float((logits.argmax(1).numpy() == labels).mean())


def kept_tiles(model: nn.Module) -> tuple[int, int] | None:
    """(kept, total) tiles of a ChainNet (see :func:`kept_count`); None for a plain model."""
    if not isinstance(model, ChainNet):
        return None
    layers = model.matrices()
    return sum(kept_count(layer) for layer in layers), sum(layer.tiles_total for layer in layers)


def fit(model: nn.Module, data: Dataset, epochs: int, phase: str, seed: int, lr: float, batch_size: int,
        extra_loss: Callable[[], torch.Tensor] | None = None, threshold_lr: float = 0.0,
        history: list[dict[str, Any]] | None = None) -> float:
    """Train ``epochs`` epochs; weights and thresholds are stepped by two optimizers, one after the other.

    ``extra_loss`` is added to the task loss (a :class:`TilePenalty` is also told after every step); each
    epoch appends its figures (phase, epoch, loss, accuracy, kept tiles) to ``history``.
    """
    thresholds = [p for n, p in model.named_parameters() if n.endswith("delta")]
    weights = [p for n, p in model.named_parameters() if not n.endswith("delta")]
    opt_w = torch.optim.Adam(weights, lr=lr)
    opt_t = torch.optim.SGD(thresholds, lr=threshold_lr) if thresholds and threshold_lr > 0 else None
    steps = max(1, epochs * -(-len(data.train_x) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, steps, eta_min=lr * 0.02)
    generator = np.random.default_rng(seed)
    labels = torch.from_numpy(data.train_y)
    acc = accuracy(model, data.test_x, data.test_y, vector=data.vector) if epochs == 0 else 0.0
    bn_images = data.train_x if len(data.train_x) <= BN_IMAGES else \
        data.train_x[np.sort(np.random.default_rng(0).choice(len(data.train_x), BN_IMAGES, replace=False))]
    for epoch in range(epochs):
        model.train()
        order = generator.permutation(len(data.train_x))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(as_float(data.train_x[index], data.vector)), labels[index])
            if extra_loss is not None:
                loss = loss + extra_loss()
            value = float(loss.detach())
            if not math.isfinite(value):  # before the step, so the report names the culprit, not its victims
                raise non_finite(model, phase, epoch, f"loss is {value} at batch {start // batch_size + 1}")
            opt_w.zero_grad()
            if opt_t:
                opt_t.zero_grad()
            loss.backward()
            opt_w.step()
            schedule.step()
            if opt_t:
                for p in thresholds:
                    if p.grad is not None:
                        p.grad.clamp_(-THRESHOLD_GRAD_CLIP, THRESHOLD_GRAD_CLIP)
                opt_t.step()
                for layer in model.modules():
                    if isinstance(layer, TernaryMatrix):
                        layer.clamp_threshold()
            if isinstance(extra_loss, TilePenalty):
                extra_loss.after_step()
            total, count = total + value * len(index), count + len(index)
        if isinstance(extra_loss, TilePenalty):
            extra_loss.after_epoch()
        reestimate_batchnorm(model, bn_images, batch_size, data.vector)
        check_finite(model, phase, epoch)
        acc = accuracy(model, data.test_x, data.test_y, vector=data.vector)
        kept = kept_tiles(model)
        record = {"phase": phase, "epoch": epoch + 1, "loss": round(total / count, 6), "accuracy": acc}
        line = f"[{phase}] epoch {epoch + 1}/{epochs} loss {total / count:.4f} accuracy {acc:.4f}"
        if kept is not None:
            record.update(kept_tiles=kept[0], tiles_total=kept[1])
            line += f" kept tiles {kept[0]}/{kept[1]}"
        if isinstance(extra_loss, TilePenalty):
            record["lambda_multipliers"] = [round(m, 6) for m in extra_loss.multipliers]
            line += f" ({extra_loss.summary()})"
        if history is not None:
            history.append(record)
        print(line, file=sys.stderr, flush=True)
    return acc


def _non_finite_part(model: nn.Module) -> str | None:
    """The first parameter or buffer (a weight, threshold Δ, BN statistic, activation scale), or a ternary
    layer's scale α, that holds a NaN or an infinity, as ``layer: what``."""
    for name, module in model.named_modules():
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        if isinstance(module, TernaryMatrix) and module.ternary:
            tensors.append(("scale alpha", module.alpha()))
        for what, tensor in tensors:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                label = {"delta": "threshold delta", "scale": "activation scale"}.get(what, what)
                return f"layer {name or 'model'}: non-finite {label}"
    return None


def non_finite(model: nn.Module, phase: str, epoch: int, problem: str) -> PyflowError:
    where = _non_finite_part(model) or "every parameter is finite (an input or the loss itself overflowed)"
    return PyflowError(f"[{phase}] epoch {epoch + 1}: {problem}; {where} — training stopped (try a lower --lr)")


def check_finite(model: nn.Module, phase: str, epoch: int | None) -> None:
    """Stop the run with one line naming the layer and the epoch if anything the model holds is not finite."""
    where = _non_finite_part(model)
    if where is not None:
        when = f"[{phase}]" if epoch is None else f"[{phase}] epoch {epoch + 1}:"
        raise PyflowError(f"{when} {where} — training stopped (try a lower --lr)")


def reestimate_batchnorm(model: nn.Module, images: np.ndarray, batch_size: int, vector: bool = False) -> None:
    """Recompute BN running statistics as exact averages over the training images with the current weights.

    Thresholds and ternary codes move during training, so the running (momentum) statistics lag behind
    the network they normalise; the eval-mode model — the one exported — would otherwise be noisy.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(as_float(images[start:start + batch_size], vector))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def kept_count(layer: TernaryMatrix) -> int:
    """Tiles of ``layer`` the hardware would keep now: inside the mask, with a non-zero ternary code."""
    return int((layer.nonzero_tiles() & layer.tile_mask.flatten()).sum()) if layer.ternary else \
        int(layer.tile_mask.sum())


# BN statistics are re-estimated on a fixed random 10,000 of the training images: enough for the means and
# variances to ~1 %, at a sixth of a Fashion-MNIST epoch instead of a third
BN_IMAGES = 10_000
MAX_MULTIPLIER = 1e4  # λ grows at most this much: far past it, the penalty only wrecks the kept tiles


class TilePenalty:
    """The group penalty ``λ/G · Σ_l m_l·P_l`` of the penalty phase, with a schedule that reaches the target.

    ``P_l`` is layer ``l``'s group lasso or WPC term (:func:`pyflow.compress.ternary.penalty`), ``G`` the
    number of tiles. Each layer's multiplier ``m_l`` starts at 1 and grows by ``growth`` per epoch (a little
    after every step) while the layer still holds more non-zero tiles than its target; it then stays. So a
    too small ``λ`` is found out in a few epochs instead of pruning nothing, and the freeze that follows
    removes tiles that are already zero. With ``tau="target"``, WPC clips each layer at the norm of its
    ``k_l``-th largest tile: only the tiles beyond the target are pulled, the kept ones train freely.
    """

    def __init__(self, model: ChainNet, kind: str, lam: float, kappa: float, tau: str, growth: float,
                 targets: dict[str, int], steps_per_epoch: int) -> None:
        self.layers = model.matrices()
        self.kind, self.lam, self.kappa, self.tau = kind, lam, kappa, tau
        self.groups = sum(layer.tiles_total for layer in self.layers)
        self.targets = [targets[layer.geom.name] for layer in self.layers]
        self.step_growth = growth ** (1.0 / max(1, steps_per_epoch))
        self.multipliers = [1.0] * len(self.layers)

    def __call__(self) -> torch.Tensor:
        terms = []
        for layer, target, multiplier in zip(self.layers, self.targets, self.multipliers, strict=True):
            cut = None
            if self.tau == "target" and self.kind == "wpc":  # the k-th largest tile RMS, as a norm per tile
                root = layer.tile_size.clamp_min(1).sqrt()
                rms = layer.tile_rms().detach()
                cut = (rms.topk(target).values[-1] if target < layer.tiles_total else rms.max() + 1.0) * root
            terms.append(multiplier * penalty(layer, self.kind, self.kappa, tau=cut))
        return self.lam / self.groups * sum(terms)

    def after_step(self) -> None:
        for index, (layer, target) in enumerate(zip(self.layers, self.targets, strict=True)):
            if kept_count(layer) > target:
                self.multipliers[index] = min(MAX_MULTIPLIER, self.multipliers[index] * self.step_growth)

    def after_epoch(self) -> None:
        """Prune while training: a layer above its target masks its tiles that are already near zero — all
        codes zero, or an RMS centred weight at most ``Δ`` (the penalty's pull leaves a jitter of about one
        step, which can keep a code or two alive) — weakest first, down to the target at most. They stay
        zero (and leave ``μ``, ``σ``, ``α``)."""
        with torch.no_grad():
            for layer, target in zip(self.layers, self.targets, strict=True):
                mask = layer.tile_mask.flatten()
                rms = layer.tile_rms()
                delta = layer.delta.clamp(0.0, 3.0 * float(layer.sigma()))
                dead = mask & (~layer.nonzero_tiles() | (rms <= delta))
                spare = int(mask.sum()) - target
                if spare <= 0 or not bool(dead.any()):
                    continue
                score = torch.where(dead, rms, torch.full_like(rms, float("inf")))
                cut = torch.argsort(score, stable=True)[:min(spare, int(dead.sum()))]
                mask = mask.clone()
                mask[cut] = False
                layer.tile_mask.copy_(mask.reshape(layer.grid))

    def summary(self) -> str:
        return f"lambda x{min(self.multipliers):.3g}..x{max(self.multipliers):.3g}"


def fraction_for_compression(model: ChainNet, ratio: float) -> float:
    """The largest uniform kept fraction whose weights-only ratio reaches ``ratio``."""
    layers = model.matrices()
    n_total = sum(int(np.prod(layer.geom.weight_shape)) for layer in layers)
    budget = 16.0 * n_total / ratio

    def stored(fraction: float) -> int:
        return sum(tiles_to_keep(layer.tiles_total, fraction) * layer.pe * layer.simd for layer in layers)

    if stored(0.0) > budget:
        raise PyflowError(f"--compression {ratio:g}: unreachable — one tile per layer already gives "
                          f"{32 * n_total / (2 * stored(0.0)):.1f}x")
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if stored(middle) <= budget else (low, middle)
    return low


def tiles_to_keep(total: int, fraction: float) -> int:
    return max(1, min(total, int(round(fraction * total))))


def freeze_masks(model: ChainNet, requested: dict[str, float]) -> int:
    """Keep, per layer, the requested number of tiles, ranked by RMS latent weight (non-zero ternary tiles
    first); every output fold keeps its best tile, so no output channel (no class) is cut off entirely.

    Returns how many of the removed tiles still held a non-zero ternary code (0 when the penalty phase
    reached the target: the freeze then changes nothing the network computes)."""
    removed_nonzero = 0
    with torch.no_grad():
        for layer in model.matrices():
            keep = tiles_to_keep(layer.tiles_total, requested[layer.geom.name])
            score = layer.tile_rms() + layer.nonzero_tiles().float() * 1e6
            score = torch.where(layer.tile_mask.flatten(), score, torch.full_like(score, -1.0)).reshape(layer.grid)
            if keep >= layer.grid[0]:  # the best tile of each fold outranks everything else
                best = score.argmax(dim=1)
                score[torch.arange(layer.grid[0]), best] += 1e12
            mask = torch.zeros(layer.tiles_total, dtype=torch.bool)
            mask[torch.argsort(score.flatten(), descending=True, stable=True)[:keep]] = True
            removed_nonzero += int((layer.nonzero_tiles() & layer.tile_mask.flatten() & ~mask).sum())
            layer.tile_mask.copy_(mask.reshape(layer.grid))
    return removed_nonzero
