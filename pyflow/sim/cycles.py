"""The analytical cycle model of the RTL layer engines (rtl_templates/pf_*_layer.v), per image.

A matrix layer walks, for every output pixel and every output fold, the fold's kept tiles — one per
cycle, and one bubble cycle for a fold with none — while the previous fold's requantize/write overlaps
the walk; the pipeline's fill is paid once per image. A pool layer reads one window position (all
channels) per cycle. Flatten moves no data and costs nothing. The RTL benches check these numbers
against the hardware counters.
"""

from __future__ import annotations

import numpy as np

from pyflow.ir.model import Layer, MatrixLayer, PoolLayer

# walk -> ROM read -> input address -> input word -> PE lanes -> accumulate -> requant (2) -> write
MATRIX_FILL_BASE = 6
# walk -> address -> input pixel -> window max/sum -> requant or delay (2) -> write
POOL_FILL = 5


def tree_latency(leaves: int) -> int:
    """Register stages of pf_adder_tree: every second level and the root, at least one."""
    levels = max(0, int(leaves - 1).bit_length())
    return max(1, -(-levels // 2))


def pe_latency(simd: int) -> int:
    """pf_pe_lanes: the code-select stage, then the adder tree."""
    return 1 + tree_latency(simd)


def fill_cycles(layer: Layer) -> int:
    if isinstance(layer, MatrixLayer):
        return MATRIX_FILL_BASE + pe_latency(layer.simd)
    if isinstance(layer, PoolLayer):
        return POOL_FILL
    return 0


def walk_cycles(layer: MatrixLayer) -> int:
    """out_pixels × Σ_folds max(kept tiles in fold, 1)."""
    kept = np.diff(layer.row_ptr)
    return layer.out_pixels * int(np.maximum(kept, 1).sum())


def modelled_cycles(layer: Layer) -> int:
    """Cycles the RTL engine of ``layer`` is active on one image."""
    if isinstance(layer, MatrixLayer):
        return walk_cycles(layer) + fill_cycles(layer)
    if isinstance(layer, PoolLayer):
        _, h, w = layer.out_shape
        return h * w * layer.kernel * layer.kernel + POOL_FILL
    return 0


def dense_cycles(layer: Layer) -> int:
    """The same engine with every tile kept: out_pixels × out_folds × col_folds + fill."""
    if isinstance(layer, MatrixLayer):
        return layer.out_pixels * layer.out_folds * layer.col_folds + fill_cycles(layer)
    return modelled_cycles(layer)


def busy_cycles(layer: Layer) -> int:
    """Cycles a kept tile is consumed: out_pixels × kept tiles (0 for pools)."""
    return layer.out_pixels * layer.n_kept if isinstance(layer, MatrixLayer) else 0
