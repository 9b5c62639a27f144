"""Compression figures of an IR network (DESIGN §1) — torch-free, so reports can import it.

* ``N_total`` — real weights of all matrix layers (``C_out·k·k·C_in``, no padding);
* ``N_stored`` — weights in stored tiles (``PE·SIMD`` each, padding included: the memory really used);
* weights-only ratio ``32·N_total / (2·N_stored)``;
* with index ``32·N_total / (2·N_stored + index_bits + 32·#scales)``, where ``index_bits`` counts the CSR
  tile index as stored (``out_folds+1`` row pointers of ``⌈log2(n_kept+1)⌉`` bits and one
  ``⌈log2(col_folds)⌉``-bit column number per kept tile) and ``#scales`` is one multiplier per output
  channel (the per-channel ``m`` that carries the ternary scale ``α``).

Per layer: ``tiles_masked`` (pruned by the tile mask), ``tiles_all_zero`` (kept by the mask but all
ternary codes zero, so not stored either), ``tiles_kept`` (stored), ``requested_keep`` and
``achieved_keep = tiles_kept / tiles_total``. The first two come from the network's
``meta["compression"]`` written by export; without it every dropped tile counts as masked.
"""

from __future__ import annotations

from typing import Any

from pyflow.ir.model import MatrixLayer, Network


def _bits(count: int) -> int:
    return max(1, (max(count, 1) - 1).bit_length())


def index_bits(layer: MatrixLayer) -> int:
    return (layer.out_folds + 1) * _bits(layer.n_kept + 1) + layer.n_kept * _bits(layer.col_folds)


def layer_report(layer: MatrixLayer, meta: dict[str, Any]) -> dict[str, Any]:
    info = meta.get("compression", {}).get("layers", {}).get(layer.name, {})
    dropped = layer.tiles_total - layer.n_kept
    all_zero = int(info.get("tiles_all_zero", 0))
    return {"name": layer.name, "pe": layer.pe, "simd": layer.simd, "tiles_total": layer.tiles_total,
            "tiles_masked": dropped - all_zero, "tiles_all_zero": all_zero, "tiles_kept": layer.n_kept,
            "requested_keep": info.get("requested_keep"),
            "achieved_keep": round(layer.n_kept / layer.tiles_total, 6)}


def compression(network: Network) -> dict[str, Any]:
    """``compression_weights_only``, ``compression_with_index``, ``kept_tiles`` and per-layer ``layers``."""
    layers = network.matrix_layers
    n_total = sum(layer.out_channels * layer.fan_in for layer in layers)
    n_stored = sum(layer.n_kept * layer.pe * layer.simd for layer in layers)
    overhead = sum(index_bits(layer) + 32 * layer.out_channels for layer in layers)
    kept = sum(layer.n_kept for layer in layers)
    total = sum(layer.tiles_total for layer in layers)
    return {
        "compression_weights_only": round(32 * n_total / (2 * n_stored), 4) if n_stored else None,
        "compression_with_index": round(32 * n_total / (2 * n_stored + overhead), 4),
        "kept_tiles": round(kept / total, 6),
        "weights_total": n_total,
        "weights_stored": n_stored,
        "layers": [layer_report(layer, network.meta) for layer in layers],
    }
