"""Trainable ternarization, PE-tile grouping and the group penalties (DESIGN §1).

Per layer: centre the weights on their mean ``μ``; threshold ``Δ`` (trainable, clamped to ``[0, 3σ]``);
codes ``t = sign(w−μ)·[|w−μ| > Δ]``; the quantized weight is ``α·t`` so that a zero code really is zero
in hardware (adding ``μ`` back would need a ``Σx`` term the add-only PE array does not have).
``α`` is the mean magnitude of the kept, centred weights: the truncated-Gaussian tail mean
``σ·φ(Δ/σ)/(1−Φ(Δ/σ))`` (the DESIGN's ``μ + …`` is the same tail of the uncentred weights), or the
empirical mean of the kept magnitudes. Weights learn through a straight-through estimator; ``Δ`` learns
through ``α(Δ)`` and a sigmoid surrogate of the threshold step.

Tiles: each weight belongs to one ``PE × SIMD`` tile of the IR matrix ``W[M_pad, N_pad]`` (column
order ``(k_y, k_x, c_in)``, ``c_in`` padded to SIMD; a linear layer after a flatten is first permuted
from torch's ``(c, y, x)`` to the IR's ``(y, x, c)``). ``tile_id`` maps every torch weight to its tile.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pyflow.ir.geometry import LayerGeometry
from pyflow.ir.model import MatrixLayer
from pyflow.ir.packing import layer_matrix, pad_matrix, tiles_of

THRESHOLD_GRAD_CLIP = 1e-3
SURROGATE_WIDTH = 0.05  # sigmoid width of the threshold step, in units of σ


Geometry = LayerGeometry  # the one layer-geometry type (pyflow.ir.geometry)


def ir_matrix(weight: np.ndarray, geom: Geometry, pe: int, simd: int) -> np.ndarray:
    """Torch-layout weights → the IR's padded ``[M_pad, N_pad]`` matrix (any dtype)."""
    weight = np.asarray(weight)
    if geom.kind == "conv":
        return pad_matrix(weight, geom.weight_shape, pe, simd)
    if geom.flat_from is not None:
        c, h, w = geom.flat_from
        weight = weight.reshape(geom.c_out, c, h, w).transpose(0, 2, 3, 1)
    return pad_matrix(weight.reshape(geom.c_out, geom.c_in, 1, 1), (geom.c_out, geom.c_in, 1, 1), pe, simd)


def torch_weight(layer: MatrixLayer, flat_from: tuple[int, int, int] | None = None) -> np.ndarray:
    """The inverse of :func:`ir_matrix`: an IR layer's ternary matrix in torch's layout, ``[C_out, C_in, k, k]``,
    or ``[C_out, C·H·W]`` for a linear layer after a flatten of a ``flat_from = (C, H, W)`` map.

    The IR's columns are ``(k_y, k_x, c)`` with padded channels and, after a flatten, ``(y, x, c)``; torch's are
    ``(c, k_y, k_x)`` and ``(c, y, x)``.
    """
    matrix = layer_matrix(layer)[:layer.out_channels]
    if layer.kind == "conv":
        k = layer.kernel
        return matrix.reshape(-1, k, k, layer.c_in_pad)[..., :layer.c_in].transpose(0, 3, 1, 2)
    matrix = matrix[:, :layer.c_in]
    if flat_from is None:
        return matrix
    c, h, w = flat_from
    return matrix.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(layer.out_channels, -1)


def tile_ids(geom: Geometry, pe: int, simd: int) -> tuple[np.ndarray, tuple[int, int]]:
    """For every torch weight, the flat index ``r·col_folds + f`` of its tile; and the tile grid."""
    count = math.prod(geom.weight_shape)
    numbered = ir_matrix(np.arange(1, count + 1, dtype=np.int64).reshape(geom.weight_shape), geom, pe, simd)
    tiles = tiles_of(numbered, pe, simd)
    grid = tiles.shape[:2]
    ids = np.zeros(count, dtype=np.int64)
    flat_tile = np.broadcast_to(np.arange(grid[0] * grid[1]).reshape(*grid, 1, 1), tiles.shape)
    present = tiles > 0
    ids[tiles[present] - 1] = flat_tile[present]
    return ids.reshape(geom.weight_shape), grid


def _gaussian_tail_mean(delta: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    z = delta / sigma
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    tail = 0.5 * torch.special.erfc(z / math.sqrt(2.0))
    return sigma * pdf / tail.clamp_min(1e-12)


class TernaryMatrix(nn.Module):
    """A Conv2d or Linear whose weight is ternarized (when ``ternary``) and masked tile by tile."""

    def __init__(self, geom: Geometry, pe: int, simd: int, alpha_mode: str = "gaussian") -> None:
        super().__init__()
        self.geom, self.pe, self.simd, self.alpha_mode = geom, pe, simd, alpha_mode
        self.weight = nn.Parameter(torch.empty(geom.weight_shape))
        self.bias = nn.Parameter(torch.zeros(geom.c_out)) if geom.bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.delta = nn.Parameter(torch.zeros(()))
        ids, grid = tile_ids(geom, pe, simd)
        self.grid = grid
        self.register_buffer("tile_id", torch.from_numpy(ids), persistent=False)
        self.register_buffer("tile_size", torch.bincount(torch.from_numpy(ids).flatten(),
                                                         minlength=grid[0] * grid[1]).float(), persistent=False)
        self.register_buffer("tile_mask", torch.ones(grid, dtype=torch.bool))
        self.ternary = False

    @property
    def tiles_total(self) -> int:
        return self.grid[0] * self.grid[1]

    def init_threshold(self) -> None:
        with torch.no_grad():
            self.delta.fill_(0.05 * float(self.weight.abs().max()))
            self.clamp_threshold()

    def clamp_threshold(self) -> None:
        with torch.no_grad():
            self.delta.clamp_(0.0, 3.0 * float(self.sigma()))

    def live(self) -> torch.Tensor:
        """The latent weights of the kept tiles (flat, detached): the ones the hardware stores, and so the
        ones ``μ``, ``σ`` and ``α`` describe — the removed tiles' zeros would drag them down."""
        w = self.weight.detach()
        return w.flatten()[self.weight_mask().flatten()] if not bool(self.tile_mask.all()) else w.flatten()

    def centre(self) -> torch.Tensor:
        """``μ``, the mean the codes are centred on; 0 for a single weight (centred on itself it would
        always be code 0)."""
        live = self.live()
        return live.mean() if live.numel() > 1 else live.new_zeros(())

    def sigma(self) -> torch.Tensor:
        """``σ`` of the centred weights; for a single weight (whose standard deviation is undefined) ``|w|``."""
        centred = self.live() - self.centre()
        spread = centred.std() if centred.numel() > 1 else centred.abs().sum()
        return spread.clamp_min(1e-12)

    def weight_mask(self) -> torch.Tensor:
        return self.tile_mask.flatten()[self.tile_id]

    def codes(self) -> torch.Tensor:
        """Ternary codes ``t`` in torch layout (masked tiles zeroed), int8."""
        with torch.no_grad():
            centred = self.weight - self.centre()
            delta = self.delta.clamp(0.0, 3.0 * float(self.sigma()))
            t = torch.sign(centred) * (centred.abs() > delta)
            return (t * self.weight_mask()).to(torch.int8)

    def alpha(self, delta: torch.Tensor | None = None) -> torch.Tensor:
        sigma = self.sigma()
        if delta is None:
            delta = self.delta.detach().clamp(0.0, 3.0 * float(sigma))
        if self.alpha_mode == "gaussian":
            return _gaussian_tail_mean(delta, sigma)
        centred = (self.live() - self.centre()).abs()
        kept = centred > delta.detach()
        return (centred * kept).sum() / kept.sum().clamp_min(1)

    def effective_weight(self) -> torch.Tensor:
        mask = self.weight_mask()
        if not self.ternary:
            return self.weight * mask
        w = self.weight
        sigma = self.sigma()
        delta = self.delta.clamp(0.0, 3.0 * float(sigma))
        centred = (w - self.centre()).detach()
        sign = torch.sign(centred)
        hard = sign * (centred.abs() > delta.detach())
        soft = sign * torch.sigmoid((centred.abs() - delta) / (SURROGATE_WIDTH * sigma))
        q = self.alpha(delta) * (hard + soft - soft.detach())  # value α·t; Δ learns through α and soft
        return (q + (w - w.detach())) * mask  # straight-through estimator for the weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.effective_weight()
        if self.geom.kind == "conv":
            return F.conv2d(x, weight, self.bias, self.geom.stride, self.geom.padding)
        return F.linear(x, weight, self.bias)

    def tile_norms(self) -> torch.Tensor:
        """‖W_g − μ‖₂ of every tile, flat ``[tiles]``: the latent weights centred as the codes are (once
        ternary), so that a tile pulled to norm 0 is a tile of zero codes."""
        centred = self.weight - self.centre() if self.ternary else self.weight
        squares = torch.zeros(self.tiles_total, device=self.weight.device)
        squares = squares.index_add(0, self.tile_id.flatten(), (centred * self.weight_mask()).flatten() ** 2)
        return torch.sqrt(squares + 1e-12)

    def tile_rms(self) -> torch.Tensor:
        """The RMS centred weight of every tile (:meth:`tile_norms` over the root of its weight count)."""
        return self.tile_norms() / self.tile_size.clamp_min(1).sqrt()

    def nonzero_tiles(self) -> torch.Tensor:
        """Bool ``[tiles]``: tiles whose (masked) ternary codes hold a non-zero."""
        counts = torch.zeros(self.tiles_total, dtype=torch.long)
        return counts.index_add(0, self.tile_id.flatten(), (self.codes() != 0).long().flatten()) > 0


def penalty(layer: TernaryMatrix, kind: str, kappa: float, tau: torch.Tensor | None = None) -> torch.Tensor:
    """The group penalty of one layer (before λ): group lasso ``Σ‖W_g‖`` or WPC ``Σ min(‖W_g‖, τ)``.

    WPC's clip ``τ`` is given (a norm: the target's cut), or else ``κ·Δ·√|g|`` — a tile whose RMS weight is
    below ``κ·Δ`` is pulled toward zero, a stronger one feels nothing.
    """
    norms = layer.tile_norms()
    if kind == "group-lasso":
        return norms.sum()
    if kind == "wpc":
        if tau is None:
            delta = layer.delta.detach().clamp(0.0, 3.0 * float(layer.sigma()))
            tau = kappa * delta * torch.sqrt(layer.tile_size)
        return torch.minimum(norms, tau).sum()
    return norms.new_zeros(())
