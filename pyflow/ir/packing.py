"""Ternary matrix + tile mask ⇄ packed tile words + CSR tile index (layout: pyflow.ir.model docstring)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pyflow.errors import PyflowError
from pyflow.ir.model import CODE_INVALID, CODE_MINUS, CODE_PLUS, MatrixLayer


class PackedMatrix(NamedTuple):
    words: np.ndarray  # uint8 [n_kept, ceil(pe·simd/4)]
    row_ptr: np.ndarray  # int64 [out_folds + 1]
    col_idx: np.ndarray  # int64 [n_kept]


def tiles_of(matrix: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """View ``[M_pad, N_pad]`` as ``[out_folds, col_folds, pe, simd]`` tiles."""
    m_pad, n_pad = matrix.shape
    if m_pad % pe or n_pad % simd:
        raise PyflowError(f"matrix {m_pad}x{n_pad} is not padded to PE={pe} x SIMD={simd}")
    return matrix.reshape(m_pad // pe, pe, n_pad // simd, simd).swapaxes(1, 2)


def nonzero_tiles(ternary: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """Bool ``[out_folds, col_folds]``: tiles holding at least one non-zero code."""
    return tiles_of(ternary, pe, simd).any(axis=(2, 3))


def encode_codes(ternary: np.ndarray) -> np.ndarray:
    """{−1, 0, +1} → 2-bit codes (uint8)."""
    if not np.isin(ternary, (-1, 0, 1)).all():
        raise PyflowError("ternary matrix holds values other than -1, 0, +1")
    return np.where(ternary > 0, CODE_PLUS, np.where(ternary < 0, CODE_MINUS, 0)).astype(np.uint8)


def decode_codes(codes: np.ndarray) -> np.ndarray:
    """2-bit codes → {−1, 0, +1} (int8); the invalid code ``10`` is rejected."""
    if (codes == CODE_INVALID).any():
        raise PyflowError("invalid 2-bit weight code 10")
    return np.where(codes == CODE_PLUS, 1, np.where(codes == CODE_MINUS, -1, 0)).astype(np.int8)


def words_to_codes(words: np.ndarray, lanes: int) -> np.ndarray:
    """Packed words ``[n, bytes]`` → codes ``[n, lanes]``, lane ``i`` at bits ``2·i``."""
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    codes = (words[:, :, None] >> shifts) & 0b11
    return codes.reshape(words.shape[0], words.shape[1] * 4)[:, :lanes]


def codes_to_words(codes: np.ndarray) -> np.ndarray:
    """Codes ``[n, lanes]`` → packed little-endian words ``[n, ceil(lanes/4)]``."""
    n, lanes = codes.shape
    padded = np.zeros((n, -(-lanes // 4) * 4), dtype=np.uint8)
    padded[:, :lanes] = codes
    quads = padded.reshape(n, padded.shape[1] // 4, 4)
    return (quads[..., 0] | quads[..., 1] << 2 | quads[..., 2] << 4 | quads[..., 3] << 6).astype(np.uint8)


def pack(ternary: np.ndarray, mask: np.ndarray, pe: int, simd: int) -> PackedMatrix:
    """Pack the tiles of ``ternary [M_pad, N_pad]`` that ``mask [out_folds, col_folds]`` keeps.

    Weights outside kept tiles are dropped; use ``mask & nonzero_tiles(...)`` to skip all-zero tiles.
    """
    tiles = tiles_of(np.asarray(ternary), pe, simd)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tiles.shape[:2]:
        raise PyflowError(f"tile mask shape {mask.shape} does not match the {tiles.shape[:2]} tile grid")
    rows, cols = np.nonzero(mask)  # row-major: fold by fold, column folds ascending
    codes = encode_codes(tiles[rows, cols].reshape(len(rows), pe * simd))
    row_ptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return PackedMatrix(codes_to_words(codes), row_ptr, cols.astype(np.int64))


def unpack(words: np.ndarray, row_ptr: np.ndarray, col_idx: np.ndarray, pe: int, simd: int,
           m_pad: int, n_pad: int) -> np.ndarray:
    """The inverse of :func:`pack`: the ``[M_pad, N_pad]`` int8 ternary matrix, zero outside kept tiles."""
    matrix = np.zeros((m_pad, n_pad), dtype=np.int8)
    tiles = tiles_of(matrix, pe, simd)  # a view: writing tiles writes matrix
    rows = np.repeat(np.arange(len(row_ptr) - 1), np.diff(row_ptr))
    tiles[rows, col_idx] = decode_codes(words_to_codes(words, pe * simd)).reshape(-1, pe, simd)
    return matrix


def layer_matrix(layer: MatrixLayer) -> np.ndarray:
    """The layer's padded ternary weight matrix ``[M_pad, N_pad]``."""
    return unpack(layer.words, layer.row_ptr, layer.col_idx, layer.pe, layer.simd, layer.m_pad, layer.n_pad)


def layer_codes(layer: MatrixLayer) -> np.ndarray:
    """The kept tiles as ``[n_kept, pe, simd]`` int8 ternary values."""
    return decode_codes(words_to_codes(layer.words, layer.pe * layer.simd)).reshape(-1, layer.pe, layer.simd)


def tile_mask(layer: MatrixLayer) -> np.ndarray:
    """Bool ``[out_folds, col_folds]``: which tiles are stored."""
    mask = np.zeros((layer.out_folds, layer.col_folds), dtype=bool)
    mask[np.repeat(np.arange(layer.out_folds), np.diff(layer.row_ptr)), layer.col_idx] = True
    return mask


def pad_matrix(weights: np.ndarray, layer_shape: tuple[int, int, int, int], pe: int, simd: int) -> np.ndarray:
    """Torch-ordered ``[C_out, C_in, k, k]`` values → the padded ``[M_pad, N_pad]`` matrix of the IR."""
    c_out, c_in, k, _ = layer_shape
    c_in_pad = -(-c_in // simd) * simd
    m_pad = -(-c_out // pe) * pe
    padded = np.zeros((m_pad, k, k, c_in_pad), dtype=weights.dtype)
    padded[:c_out, :, :, :c_in] = np.asarray(weights).reshape(layer_shape).transpose(0, 2, 3, 1)
    return padded.reshape(m_pad, k * k * c_in_pad)


def word_values(layer: MatrixLayer) -> list[int]:
    """Each kept tile word as one integer: lane ``i`` (PE lane ``p``, SIMD lane ``j``, ``i = p·SIMD + j``)
    at bits ``2i``. The one decoding of the stored little-endian bytes; every backend renders from it."""
    return [int.from_bytes(word.tobytes(), "little") for word in layer.words]
