"""The cycle model of the RTL engines (rtl_templates/pf_*_layer.v) and of their pipeline, per image.

A matrix layer walks, for every output pixel and every output fold, the fold's kept tiles — one per
cycle, and one bubble cycle for a fold with none — while the previous fold's requantize/write overlaps
the walk; the pipeline's fill is paid once per image. A pool layer reads one window position (all
channels) per cycle, an add engine ``add_lanes`` channels of a pixel. Flatten moves no data and costs
nothing. An engine's cycle counter counts these
cycles exactly (the RTL benches assert ``==``).

The pipeline: an engine spends one more cycle per image, the cycle it starts on (``start`` in
pf_matrix_layer / pf_pool_layer, not counted by its counter), so in steady state it takes a new image
every ``cycles + 1``; the input stream takes ``C·H·W`` beats and the output stream one beat per logit.
The slowest of these sets the interval between images.

Graphs: an engine starts an image once every input of it is complete, so at full throughput engine ``e``
starts image ``n`` at ``start(e) + n·interval``, ``start`` the as-soon-as-possible schedule of
:func:`schedule`. A feature buffer's bank is taken when its producer starts an image and given back when
its consumer finishes it; with images arriving every ``interval`` cycles a buffer needs
``ceil(held / interval)`` banks (:func:`buffer_banks`) — 2 (ping-pong) between neighbours, more in front
of an add for the branch that arrives first (the skip). Fewer banks never deadlock (a bank holds a whole
image, so the long branch always drains) but stall the fork's producer and stretch the interval.
"""

from __future__ import annotations

import math

import numpy as np

from pyflow.hw.engines import REQUANT_LATENCY, add_lanes, engine_inputs, engines, pe_latency, read_lanes
from pyflow.ir.model import INPUT, AddLayer, Layer, MatrixLayer, Network, PoolLayer

# walk -> ROM read -> ROM words again -> input address -> buffer rows -> input word -> PE lanes -> accumulate ->
# requant -> write
MATRIX_FILL_BASE = 6 + REQUANT_LATENCY
# walk -> address -> buffer rows -> input pixel -> window max/sum -> requant or the same delay -> write
POOL_FILL = 4 + REQUANT_LATENCY
# walk -> buffer rows -> input words -> products -> sum, shift and clamp -> write
ADD_FILL = 4
START_CYCLES = 1  # the cycle an engine starts an image on


def fill_cycles(layer: Layer) -> int:
    if isinstance(layer, MatrixLayer):
        return MATRIX_FILL_BASE + pe_latency(layer.simd)
    if isinstance(layer, PoolLayer):
        return POOL_FILL
    if isinstance(layer, AddLayer):
        return ADD_FILL
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
    if isinstance(layer, AddLayer):
        return math.prod(layer.out_shape) // add_lanes(layer) + ADD_FILL
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
    """Active cycles along the longest path through the engines (a chain: their sum)."""
    longest: dict[str, int] = {INPUT: 0}
    for layer in engines(network):
        longest[layer.name] = max(longest[p] for p in engine_inputs(network, layer)) + modelled_cycles(layer)
    return longest[engines(network)[-1].name]


def schedule(network: Network) -> dict[str, int]:
    """Cycle each engine starts an image, relative to the input stream's first beat, at full throughput.

    An engine starts the cycle after its last input completes (``START_CYCLES``) and completes
    ``modelled_cycles`` later; the input stream completes after its ``C·H·W`` beats.
    """
    done = {INPUT: stream_cycles(network)[0]}
    start: dict[str, int] = {}
    for layer in engines(network):
        start[layer.name] = max(done[p] for p in engine_inputs(network, layer))
        done[layer.name] = start[layer.name] + START_CYCLES + modelled_cycles(layer)
    return start


def bank_plan(network: Network) -> dict[tuple[str, int], tuple[int, str]]:
    """Image banks of every engine's input buffers, by ``(engine, input slot)``, with the derivation in
    words: a bank is held from its producer's start of an image to the consumer's end of it, and images
    arrive every ``interval`` cycles, so a buffer needs ``ceil(held / interval)`` banks (at least 2). The
    bank is free again on the cycle its consumer could start the next image, so a chain needs 2."""
    start, interval = schedule(network), interval_cycles(network)
    plan = {}
    for layer in engines(network):
        end = start[layer.name] + START_CYCLES + modelled_cycles(layer)
        for slot, producer in enumerate(engine_inputs(network, layer)):
            begin = 0 if producer == INPUT else start[producer]
            banks = max(2, -(-(end - begin) // interval))
            plan[layer.name, slot] = (banks, f"{producer} starts at cycle {begin} and {layer.name} frees it at {end}: "
                                             f"held {end - begin} cycles / interval {interval} = {banks} banks")
    return plan


def simulation_cost(network: Network) -> tuple[int, int]:
    """(modelled cycles per image, cycles × lanes): what an event-driven simulation of the top costs
    (PE × SIMD of every matrix engine, the read lanes of the others) — the fuzzer's size cap and the
    flow's choice of simulators (pyflow.sim.rtl.choose_simulators)."""
    hardware = engines(network)
    cycles = sum(modelled_cycles(layer) for layer in hardware)
    lanes = sum(layer.pe * layer.simd if isinstance(layer, MatrixLayer) else read_lanes(layer) for layer in hardware)
    return cycles, cycles * lanes
