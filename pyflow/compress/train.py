"""Training loops and the compression phases (DESIGN §1).

FP baseline → ternary + group penalty → freeze tile masks to the requested target → masked ternary
fine-tune with activations fake-quantized to ``a_bits`` (so the torch model and the golden model agree).
Every epoch prints one progress line to stderr: phase, epoch, loss, test accuracy, kept tiles.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pyflow.compress.chain import ChainNet
from pyflow.compress.ternary import THRESHOLD_GRAD_CLIP, TernaryMatrix, penalty
from pyflow.data import Dataset
from pyflow.errors import PyflowError


def as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 512) -> float:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(as_float(images[i:i + batch])) for i in range(0, len(images), batch)])
    return float((logits.argmax(1).numpy() == labels).mean())


def kept_tiles(model: nn.Module) -> str:
    if not isinstance(model, ChainNet):
        return "-"
    layers = model.matrices()
    kept = sum(int((layer.nonzero_tiles() & layer.tile_mask.flatten()).sum()) if layer.ternary
               else int(layer.tile_mask.sum()) for layer in layers)
    return f"{kept}/{sum(layer.tiles_total for layer in layers)}"


def fit(model: nn.Module, data: Dataset, epochs: int, phase: str, seed: int, lr: float, batch_size: int,
        extra_loss: Callable[[], torch.Tensor] | None = None, threshold_lr: float = 0.0) -> float:
    """Train ``epochs`` epochs; weights and thresholds are stepped by two optimizers, one after the other."""
    thresholds = [p for n, p in model.named_parameters() if n.endswith("delta")]
    weights = [p for n, p in model.named_parameters() if not n.endswith("delta")]
    opt_w = torch.optim.Adam(weights, lr=lr)
    opt_t = torch.optim.SGD(thresholds, lr=threshold_lr) if thresholds and threshold_lr > 0 else None
    steps = max(1, epochs * -(-len(data.train_x) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, steps, eta_min=lr * 0.02)
    generator = np.random.default_rng(seed)
    labels = torch.from_numpy(data.train_y)
    acc = accuracy(model, data.test_x, data.test_y) if epochs == 0 else 0.0
    for epoch in range(epochs):
        model.train()
        order = generator.permutation(len(data.train_x))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(as_float(data.train_x[index])), labels[index])
            if extra_loss is not None:
                loss = loss + extra_loss()
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
            total, count = total + float(loss.detach()) * len(index), count + len(index)
        reestimate_batchnorm(model, data.train_x, batch_size)
        acc = accuracy(model, data.test_x, data.test_y)
        print(f"[{phase}] epoch {epoch + 1}/{epochs} loss {total / count:.4f} accuracy {acc:.4f} "
              f"kept tiles {kept_tiles(model)}", file=sys.stderr, flush=True)
    return acc


def reestimate_batchnorm(model: nn.Module, images: np.ndarray, batch_size: int) -> None:
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
            model(as_float(images[start:start + batch_size]))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def penalty_loss(model: ChainNet, kind: str, lam: float, kappa: float) -> Callable[[], torch.Tensor] | None:
    if kind == "none" or lam == 0:
        return None
    layers = model.matrices()
    groups = sum(layer.tiles_total for layer in layers)
    return lambda: lam / groups * sum(penalty(layer, kind, kappa) for layer in layers)


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


def freeze_masks(model: ChainNet, requested: dict[str, float]) -> None:
    """Keep, per layer, the requested number of tiles, ranked by RMS latent weight (non-zero ternary tiles
    first); every output fold keeps its best tile, so no output channel (no class) is cut off entirely."""
    with torch.no_grad():
        for layer in model.matrices():
            keep = tiles_to_keep(layer.tiles_total, requested[layer.geom.name])
            score = layer.tile_norms() / layer.tile_size.clamp_min(1).sqrt() + layer.nonzero_tiles().float() * 1e6
            score = torch.where(layer.tile_mask.flatten(), score, torch.full_like(score, -1.0)).reshape(layer.grid)
            if keep >= layer.grid[0]:  # the best tile of each fold outranks everything else
                best = score.argmax(dim=1)
                score[torch.arange(layer.grid[0]), best] += 1e12
            mask = torch.zeros(layer.tiles_total, dtype=torch.bool)
            mask[torch.argsort(score.flatten(), descending=True, stable=True)[:keep]] = True
            layer.tile_mask.copy_(mask.reshape(layer.grid))
