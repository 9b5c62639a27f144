"""Compression ratios of DESIGN §1, from plain counts (torch-free), and from an IR network.

weights-only ``32·N_total / (2·N_stored)``; with index overhead
``32·N_total / (2·N_stored + index_bits + 32·#scales)``; ``N_stored`` counts the weights in kept tiles.
"""

from __future__ import annotations

from pyflow.ir.model import Network
from pyflow.report import resources


def compression_ratios(n_total: int, n_stored: int, index_bits: int, n_scales: int) -> tuple[float, float]:
    """``(weights_only, with_index)``; infinite when nothing is stored."""
    weights_only = 32 * n_total / (2 * n_stored) if n_stored else float("inf")
    overhead = 2 * n_stored + index_bits + 32 * n_scales
    return weights_only, (32 * n_total / overhead if overhead else float("inf"))


def network_counts(network: Network) -> dict[str, int]:
    """N_total (real weights), N_stored (weights in kept tiles, padding included), index bits, #scales."""
    layers = network.matrix_layers
    return {
        "n_total": sum(layer.out_channels * layer.fan_in for layer in layers),
        "n_stored": sum(layer.n_kept * layer.pe * layer.simd for layer in layers),
        "index_bits": sum(resources.index_bits(layer) for layer in layers),
        "n_scales": len(layers),  # one ternary scale α per layer
    }


def network_ratios(network: Network) -> tuple[float, float]:
    counts = network_counts(network)
    return compression_ratios(counts["n_total"], counts["n_stored"], counts["index_bits"], counts["n_scales"])
