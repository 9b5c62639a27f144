"""Which layers become hardware engines, how they connect, and their lanes and pipeline latencies.

Flatten is no hardware: in HWC memory order it moves no data, so the engines are the matrix, pool and
add layers, and an engine reading a flatten reads what the flatten read. The input stream is INPUT.
"""

from __future__ import annotations

from pyflow.ir.model import AddLayer, FlattenLayer, Layer, MatrixLayer, Network, PoolLayer

Engine = MatrixLayer | PoolLayer | AddLayer
ADD_MAX_LANES = 8  # channels an add engine aligns per cycle (two multipliers each)


def tree_latency(leaves: int) -> int:
    """Register stages of pf_adder_tree: every second level and the root, at least one."""
    levels = max(0, int(leaves - 1).bit_length())
    return max(1, -(-levels // 2))


REQUANT_LATENCY = 5  # pf_requant: operands, operands by the multiplier, product, product + bias, clamp


def pe_latency(simd: int) -> int:
    """pf_pe_lanes: the code-select stage, then the adder tree."""
    return 1 + tree_latency(simd)


def engines(network: Network) -> list[Engine]:
    """The layers that become hardware, in pipeline (topological) order."""
    return [layer for layer in network.layers if not isinstance(layer, FlattenLayer)]


def _through_flatten(network: Network, name: str) -> str:
    """The engine (or INPUT) whose output ``name`` is: a flatten moves no data."""
    layer = network.producer(name)
    while isinstance(layer, FlattenLayer):
        name = network.inputs_of(layer)[0]
        layer = network.producer(name)
    return name


def engine_inputs(network: Network, layer: Layer) -> list[str]:
    """The engines (or INPUT) ``layer`` reads, looking through flattens, one per input."""
    return [_through_flatten(network, name) for name in network.inputs_of(layer)]


def readers(network: Network, name: str) -> list[tuple[Engine, int]]:
    """The engines reading engine ``name``'s (or INPUT's) output, with the input slot they read it on."""
    found = []
    for layer in engines(network):
        found += [(layer, slot) for slot, source in enumerate(engine_inputs(network, layer)) if source == name]
    return found


def add_lanes(layer: AddLayer) -> int:
    """Channels an add engine aligns per cycle: the largest divisor of C up to ADD_MAX_LANES."""
    channels = layer.in_shape[0]
    return max(d for d in range(1, min(channels, ADD_MAX_LANES) + 1) if channels % d == 0)


def read_lanes(layer: Engine) -> int:
    if isinstance(layer, AddLayer):
        return add_lanes(layer)
    return layer.simd if isinstance(layer, MatrixLayer) else layer.in_shape[0]


def write_lanes(layer: Engine) -> int:
    if isinstance(layer, AddLayer):
        return add_lanes(layer)
    return layer.pe if isinstance(layer, MatrixLayer) else layer.in_shape[0]


