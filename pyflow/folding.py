"""Sparsity-aware folding: PE and SIMD per matrix layer so that the slowest layer is as fast as possible.

The layers run as a pipeline (DESIGN §3), so throughput is set by the slowest layer. A layer's cycles
follow its *kept* tiles, not its dense size, so a uniform ``PE × SIMD`` leaves sparse or small layers
idle while the big one works. The planner:

1. lists, per layer, the candidate ``(PE, SIMD)`` pairs with their expected cycles (``keep × tiles``
   kept, spread evenly over the output folds) and their lane count ``PE·SIMD``;
2. picks the smallest cycle target ``T`` for which the cheapest candidate of every layer with
   ``cycles ≤ T`` fits the lane budget together;
3. relaxes ``T`` up to the streams' bound — a layer faster than the input stream's ``C·H·W`` beats per
   image only idles — and gives every layer the fewest lanes that meet ``T`` (fewer lanes ⇒ slower,
   closer to ``T``: better balance and fewer LUTs), preferring PE dividing ``C_out`` and SIMD dividing ``C_in``.

A layer reading a fork (``shares_input``: a residual block's first conv and its shortcut, beside the add)
gets only SIMDs dividing ``C_in``: the fork writes one pixel layout into all its readers' buffers.

Cycles come from :func:`pyflow.hw.cycles.modelled_cycles` (the RTL's own model, pipeline fill included),
applied to a layer of the planned shape whose kept tiles are spread evenly over its output folds.
:func:`check_folding` computes the same figures from an exported IR's actual kept tiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pyflow.boards import Board
from pyflow.errors import PyflowError
from pyflow.hw.cycles import START_CYCLES, modelled_cycles
from pyflow.hw.resources import lane_budget
from pyflow.ir.geometry import LayerGeometry
from pyflow.ir.model import LOGIT_BITS, MatrixLayer, Network, accumulator_bits

CANDIDATE_RANGE = 16  # every PE/SIMD up to this is a candidate, plus all divisors of C_out/C_in
CYCLE_MODEL = "modelled (pyflow.hw.cycles.modelled_cycles)"

# The digits network of the demo (digits-cnn of pyflow.models, 1×8×8 input): conv 1→16 k3p1, maxpool2,
# conv 16→32 k3p1, maxpool2, linear 128→10, named as pyflow.compress.api.layer_shapes names them.
# Matrix layers only; pools are not folded.
DIGITS_LAYERS: tuple[LayerGeometry, ...] = (
    LayerGeometry("conv0", "conv", c_in=1, c_out=16, kernel=3, padding=1, in_hw=(8, 8)),
    LayerGeometry("conv1", "conv", c_in=16, c_out=32, kernel=3, padding=1, in_hw=(4, 4)),
    LayerGeometry("fc0", "linear", c_in=128, c_out=10),
)


def geometries(layers: Iterable[Mapping[str, Any] | LayerGeometry]) -> tuple[LayerGeometry, ...]:
    """Validated geometries of the conv/linear entries (pool entries are skipped: they are not folded)."""
    out = []
    for item in layers:
        if isinstance(item, LayerGeometry):
            out.append(item)
        elif item.get("kind") in ("conv", "linear"):
            out.append(LayerGeometry.from_dict(item))
    if not out:
        raise PyflowError("folding: no conv or linear layer to fold")
    return tuple(out)


def network_geometries(network: Network) -> tuple[LayerGeometry, ...]:
    """The same list, from an IR network."""
    def shares(layer: MatrixLayer) -> bool:
        return any(len(network.consumers(source)) > 1 for source in network.inputs_of(layer))

    return tuple(LayerGeometry(name=layer.name, kind=layer.kind, c_in=layer.c_in, c_out=layer.out_channels,
                               kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
                               in_hw=layer.in_shape[1:], shares_input=shares(layer)) for layer in network.matrix_layers)


@dataclass(frozen=True)
class LayerFold:
    name: str
    pe: int
    simd: int
    cycles: int
    tiles_total: int
    tiles_kept: int
    requested_keep: float | None
    balance: float  # cycles / slowest layer's cycles

    @property
    def lanes(self) -> int:
        return self.pe * self.simd

    @property
    def achieved_keep(self) -> float:
        return self.tiles_kept / self.tiles_total


@dataclass(frozen=True)
class FoldingPlan:
    layers: tuple[LayerFold, ...]
    lane_budget: int | None
    cycle_model: str
    source: str  # "planned (expected kept tiles)" or "checked (actual kept tiles of the IR)"

    @property
    def slowest_cycles(self) -> int:
        return max(layer.cycles for layer in self.layers)

    @property
    def mean_balance(self) -> float:
        return sum(layer.balance for layer in self.layers) / len(self.layers)

    @property
    def lanes(self) -> int:
        return sum(layer.lanes for layer in self.layers)

    def folding(self) -> dict[str, tuple[int, int]]:
        """``{layer: (pe, simd)}``, the form ``random_network``, export and the backends take."""
        return {layer.name: (layer.pe, layer.simd) for layer in self.layers}

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "cycle_basis": "modelled", "cycle_model": self.cycle_model,
                "slowest_cycles": self.slowest_cycles, "mean_balance": round(self.mean_balance, 6),
                "lanes": self.lanes,
                "layers": [{"name": f.name, "pe": f.pe, "simd": f.simd, "cycles": f.cycles, "tiles_kept": f.tiles_kept,
                            "tiles_total": f.tiles_total, "requested_keep": f.requested_keep,
                            "achieved_keep": round(f.achieved_keep, 6), "balance": round(f.balance, 6)}
                           for f in self.layers]}


# --- cycles -------------------------------------------------------------------------------------------

def layer_cycles(layer: MatrixLayer) -> int:
    """The RTL's modelled cycles of one layer (pyflow.hw.cycles)."""
    return modelled_cycles(layer)


def expected_kept(tiles_total: int, keep: float) -> int:
    return math.floor(keep * tiles_total + 0.5)


def synthetic_layer(geometry: LayerGeometry, pe: int, simd: int, keep: float) -> MatrixLayer:
    """An IR layer of this geometry whose ``keep × tiles`` kept tiles are spread evenly over the folds."""
    c_in_pad = -(-geometry.c_in // simd) * simd
    out_folds = -(-geometry.c_out // pe)
    col_folds = geometry.kernel * geometry.kernel * c_in_pad // simd
    kept = expected_kept(out_folds * col_folds, keep)
    per_fold = np.full(out_folds, kept // out_folds) + (np.arange(out_folds) < kept % out_folds)
    row_ptr = np.concatenate([[0], np.cumsum(per_fold)])
    col_idx = np.concatenate([np.arange(n) for n in per_fold]) if kept else np.zeros(0)
    zeros = np.zeros(geometry.c_out, dtype=np.int64)
    return MatrixLayer(name=geometry.name, kind=geometry.kind, in_shape=(geometry.c_in, *geometry.in_hw),
                       out_channels=geometry.c_out, kernel=geometry.kernel, stride=geometry.stride,
                       padding=geometry.padding, pe=pe, simd=simd, in_bits=8, out_bits=LOGIT_BITS,
                       acc_bits=accumulator_bits(geometry.kernel ** 2 * geometry.c_in, 8), shift=0, m=zeros,
                       b=zeros, words=np.zeros((kept, -(-pe * simd // 4)), dtype=np.uint8), row_ptr=row_ptr,
                       col_idx=col_idx, is_output=True)


@lru_cache(maxsize=65536)
def _expected(geometry: LayerGeometry, pe: int, simd: int, keep: float) -> tuple[int, int, int]:
    layer = synthetic_layer(geometry, pe, simd, keep)
    return layer_cycles(layer), layer.tiles_total, layer.n_kept


# --- planning -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Candidate:
    pe: int
    simd: int
    cycles: int
    padded: bool

    @property
    def lanes(self) -> int:
        return self.pe * self.simd


def _values(limit: int) -> list[int]:
    divisors = [d for d in range(1, limit + 1) if limit % d == 0]
    return sorted(set(range(1, min(limit, CANDIDATE_RANGE) + 1)) | set(divisors))


def _candidates(geometry: LayerGeometry, keep: float) -> list[_Candidate]:
    out = []
    simds = [s for s in _values(geometry.c_in) if not geometry.shares_input or geometry.c_in % s == 0]
    for pe in _values(geometry.c_out):
        for simd in simds:
            cycles = _expected(geometry, pe, simd, keep)[0]
            padded = geometry.c_out % pe != 0 or geometry.c_in % simd != 0
            out.append(_Candidate(pe, simd, cycles, padded))
    return out


def _cheapest(candidates: list[_Candidate], target: int) -> _Candidate | None:
    """Fewest lanes meeting ``target``; then the slowest of those (balance); then no padding; then wide SIMD."""
    fitting = [c for c in candidates if c.cycles <= target]
    if not fitting:
        return None
    return min(fitting, key=lambda c: (c.lanes, -c.cycles, c.padded, -c.simd))


def _keeps(layers: tuple[LayerGeometry, ...], keep: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(keep, Mapping):
        unknown = sorted(set(keep) - {g.name for g in layers})
        if unknown:
            raise PyflowError(f"folding: keep names unknown layer {unknown[0]!r}")
        missing = [g.name for g in layers if g.name not in keep]
        if missing:
            raise PyflowError(f"folding: keep has no fraction for layer {missing[0]!r}")
        values = {name: float(value) for name, value in keep.items()}
    else:
        values = {g.name: float(keep) for g in layers}
    for name, value in values.items():
        if not 0.0 < value <= 1.0:
            raise PyflowError(f"folding: layer {name!r}: keep must lie in (0, 1], got {value}")
    return values


def _check_overrides(layers: tuple[LayerGeometry, ...], overrides: Mapping[str, tuple[int, int]]) -> None:
    names = {g.name for g in layers}
    for name, pair in overrides.items():
        if name not in names:
            raise PyflowError(f"folding: override names unknown layer {name!r} (layers: {', '.join(sorted(names))})")
        if len(tuple(pair)) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
            raise PyflowError(f"folding: override for layer {name!r}: expected (pe, simd) positive integers, "
                              f"got {pair!r}")


def plan_folding(layers: Iterable[Mapping[str, Any] | LayerGeometry], board: Board,
                 keep: float | Mapping[str, float] = 1.0, max_lanes: int | None = None,
                 overrides: Mapping[str, tuple[int, int]] | None = None) -> FoldingPlan:
    """The sparsity-aware folding: the fastest slowest layer within the lane budget.

    ``keep`` is the expected kept fraction of tiles (global, or per layer name); ``max_lanes`` the
    budget of ``PE·SIMD`` lanes summed over the layers (default: from the board's LUTs through the
    analytical resource model); ``overrides`` fix ``(pe, simd)`` of named layers.
    """
    layers = geometries(layers)
    keeps, overrides = _keeps(layers, keep), dict(overrides or {})
    _check_overrides(layers, overrides)
    budget = lane_budget(board) if max_lanes is None else int(max_lanes)
    options = {g.name: ([_Candidate(*overrides[g.name], _expected(g, *overrides[g.name], keeps[g.name])[0], False)]
                        if g.name in overrides else _candidates(g, keeps[g.name])) for g in layers}
    fixed = sum(pe * simd for pe, simd in overrides.values())
    if fixed > budget:
        raise PyflowError(f"folding: the overrides alone use {fixed} lanes, over the budget of {budget}")
    floor = max(min(c.cycles for c in opts) for opts in options.values())
    targets = sorted({c.cycles for opts in options.values() for c in opts if c.cycles >= floor})
    # feasibility is monotone in the target (a slower target never needs more lanes): bisect for the first
    low, high = 0, len(targets)
    while low < high:
        middle = (low + high) // 2
        if _fits(options, targets[middle], budget):
            high = middle
        else:
            low = middle + 1
    if low == len(targets):
        smallest = sum(min(c.lanes for c in opts) for opts in options.values())
        raise PyflowError(f"folding: the network needs at least {smallest} lanes, over the budget of {budget}")
    # no layer need be faster than the streams: with 784 input beats per image, a 34-cycle layer only idles
    stream = stream_beats(layers)
    target = max(targets[low], max((t for t in targets if t + START_CYCLES <= stream), default=0))
    chosen = {name: _cheapest(opts, target) for name, opts in options.items()}
    return _plan(layers, {n: (c.pe, c.simd) for n, c in chosen.items()}, keeps, budget,
                 "planned (expected kept tiles)")


def stream_beats(layers: tuple[LayerGeometry, ...]) -> int:
    """A lower bound of the interval from the streams (:func:`pyflow.hw.cycles.stream_cycles`): the first matrix
    layer's input elements (the image, unless a pool comes first) and the last one's logits, one a cycle."""
    return max(math.prod(layers[0].in_shape), math.prod(layers[-1].out_shape))


def _fits(options: dict[str, list[_Candidate]], target: int, budget: int) -> bool:
    chosen = [_cheapest(opts, target) for opts in options.values()]
    return all(chosen) and sum(c.lanes for c in chosen) <= budget


def uniform_folding(layers: Iterable[Mapping[str, Any] | LayerGeometry], board: Board,
                    keep: float | Mapping[str, float] = 1.0) -> FoldingPlan:
    """The board's default ``PE × SIMD`` for every layer: the baseline the planner is compared with."""
    layers = geometries(layers)
    fold = (board.default_folding.pe, board.default_folding.simd)
    return _plan(layers, {g.name: fold for g in layers}, _keeps(layers, keep), None,
                 "uniform (board default PE x SIMD, expected kept tiles)")


def _plan(layers: tuple[LayerGeometry, ...], folding: dict[str, tuple[int, int]], keeps: dict[str, float],
          budget: int | None, source: str) -> FoldingPlan:
    figures = {g.name: _expected(g, *folding[g.name], keeps[g.name]) for g in layers}
    slowest = max(cycles for cycles, _, _ in figures.values())
    folds = tuple(LayerFold(name=g.name, pe=folding[g.name][0], simd=folding[g.name][1], cycles=figures[g.name][0],
                            tiles_total=figures[g.name][1], tiles_kept=figures[g.name][2],
                            requested_keep=keeps[g.name], balance=figures[g.name][0] / slowest) for g in layers)
    return FoldingPlan(layers=folds, lane_budget=budget, cycle_model=CYCLE_MODEL, source=source)


def check_folding(network: Network, requested_keep: float | Mapping[str, float] | None = None) -> FoldingPlan:
    """The plan's figures from an exported IR's actual kept tiles: what was asked beside what was reached."""
    layers = network.matrix_layers
    if not layers:
        raise PyflowError(f"network {network.name!r}: no conv or linear layer to check")
    asked = requested_keep if requested_keep is not None else network.meta.get("keep")
    cycles = {layer.name: layer_cycles(layer) for layer in layers}
    slowest = max(cycles.values())
    folds = tuple(LayerFold(name=layer.name, pe=layer.pe, simd=layer.simd, cycles=cycles[layer.name],
                            tiles_total=layer.tiles_total, tiles_kept=layer.n_kept,
                            requested_keep=_asked(asked, layer.name), balance=cycles[layer.name] / slowest)
                  for layer in layers)
    return FoldingPlan(layers=folds, lane_budget=None, cycle_model=CYCLE_MODEL,
                       source="checked (actual kept tiles of the IR)")


def _asked(asked: Any, name: str) -> float | None:
    if isinstance(asked, Mapping):
        value = asked.get(name)
        return None if value is None else float(value)
    return None if asked is None else float(asked)


# --- text -----------------------------------------------------------------------------------------------

def plan_table(plan: FoldingPlan) -> str:
    """A plain-text table of one plan (cycles labelled with their model)."""
    lines = [f"{plan.source}; cycles {plan.cycle_model}",
             f"  {'layer':12s} {'PE':>4s} {'SIMD':>4s} {'lanes':>6s} {'tiles':>11s} {'keep asked':>10s} "
             f"{'reached':>7s} {'cycles':>8s} {'balance':>7s}"]
    for f in plan.layers:
        asked = "n/a" if f.requested_keep is None else f"{f.requested_keep:.3f}"
        lines.append(f"  {f.name:12s} {f.pe:4d} {f.simd:4d} {f.lanes:6d} {f.tiles_kept:5d}/{f.tiles_total:<5d} "
                     f"{asked:>10s} {f.achieved_keep:7.3f} {f.cycles:8d} {f.balance:7.1%}")
    budget = "" if plan.lane_budget is None else f" of {plan.lane_budget} budget"
    lines.append(f"  slowest layer {plan.slowest_cycles} cycles, mean balance {plan.mean_balance:.1%}, "
                 f"{plan.lanes} lanes{budget}")
    return "\n".join(lines)


def comparison_text(aware: FoldingPlan, uniform: FoldingPlan, board: Board,
                    keep: float | Mapping[str, float]) -> str:
    """The two plans side by side, with the balance and throughput they give."""
    speedup = uniform.slowest_cycles / aware.slowest_cycles
    asked = f"{keep:g}" if not isinstance(keep, Mapping) else "per layer"
    return "\n".join([
        f"folding on {board.name} at keep {asked}: pipeline balance {aware.mean_balance:.1%} sparsity-aware vs "
        f"{uniform.mean_balance:.1%} uniform {board.default_folding.pe}x{board.default_folding.simd}; "
        f"slowest layer {aware.slowest_cycles} vs {uniform.slowest_cycles} cycles ({speedup:.2f}x throughput)",
        plan_table(aware), plan_table(uniform)])


def compare_folding(layers: Iterable[Mapping[str, Any] | LayerGeometry], board: Board,
                    keep: float | Mapping[str, float]) -> tuple[FoldingPlan, FoldingPlan, str]:
    """Sparsity-aware vs uniform folding at the same keep: both plans and the side-by-side text."""
    layers = geometries(layers)
    aware, uniform = plan_folding(layers, board, keep), uniform_folding(layers, board, keep)
    return aware, uniform, comparison_text(aware, uniform, board, keep)


def digits_comparison(board: Board | None = None, keep: float = 0.25) -> tuple[FoldingPlan, FoldingPlan, str]:
    """The demo's figure: the digits network at keep 0.25 on pynq-z2, sparsity-aware vs uniform."""
    from pyflow.artifacts import DEFAULT_BOARD
    from pyflow.boards import load_board

    return compare_folding(DIGITS_LAYERS, board or load_board(DEFAULT_BOARD), keep)
