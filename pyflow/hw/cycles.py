"""The cycle model of the RTL engines (rtl_templates/pf_*_layer.v) and of their pipeline, per image.

A matrix layer walks, for every output pixel and every output fold, the fold's kept tiles — one per
cycle, and one bubble cycle for a fold with none — while the previous fold's requantize/write overlaps
the walk; the pipeline's fill is paid once per image. A pool layer reads one window position (all
channels) per cycle. Flatten moves no data and costs nothing. An engine's cycle counter counts these
cycles exactly (the RTL benches assert ``==``).

The pipeline: an engine spends one more cycle per image, the cycle it starts on (``start`` in
pf_matrix_layer / pf_pool_layer, not counted by its counter), so in steady state it takes a new image
every ``cycles + 1``; the input stream takes ``C·H·W`` beats and the output stream one beat per logit.
The slowest of these sets the interval between images.
"""

from __future__ import annotations

import math

import numpy as np

from pyflow.hw.sizing import engines, pe_latency
from pyflow.ir.model import Layer, MatrixLayer, Network, PoolLayer

# walk -> ROM read -> input address -> input word -> PE lanes -> accumulate -> requant (2) -> write
MATRIX_FILL_BASE = 6
# walk -> address -> input pixel -> window max/sum -> requant or delay (2) -> write
POOL_FILL = 5
START_CYCLES = 1  # the cycle an engine starts an image on


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
    """Cycles the RTL engine of ``layer`` is active on one image (what its cycle counter reads)."""
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


def stream_cycles(network: Network) -> tuple[int, int]:
    """Beats per image of the input stream (uint8 pixels) and of the output stream (logits)."""
    return math.prod(network.input_shape), math.prod(network.layers[-1].out_shape)


def interval_cycles(network: Network) -> int:
    """Cycles between two images in steady state, streams never stalled: the slowest pipeline stage."""
    stages = [modelled_cycles(layer) + START_CYCLES for layer in engines(network)]
    return max(*stages, *stream_cycles(network))


def latency_cycles(network: Network) -> int:
    """Σ of the engines' active cycles (the report's 'latency, sum of layers')."""
    return sum(modelled_cycles(layer) for layer in engines(network))
