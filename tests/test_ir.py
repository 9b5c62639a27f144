"""IR: packing layout and round trip, save/load determinism, and the one-line errors of `load`."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflow.errors import PyflowError
from pyflow.ir import load, save
from pyflow.ir.io import WEIGHTS_FILE, _write_npz
from pyflow.ir.packing import codes_to_words, pack, tile_mask, tiles_of, unpack, words_to_codes
from pyflow.random_ir import random_network


def test_lane_order_is_written_down_once():
    """PE lane p, SIMD lane j → bits 2·(p·SIMD + j) of the tile word; 01 = +1, 11 = −1."""
    pe, simd = 3, 5
    matrix = np.zeros((pe, simd), dtype=np.int8)
    matrix[2, 1] = 1  # lane 2·5 + 1 = 11 → bits 22..23 → byte 2, bits 6..7
    matrix[0, 4] = -1  # lane 4 → bits 8..9 → byte 1, bits 0..1
    words = pack(matrix, np.ones((1, 1), bool), pe, simd).words
    value = int.from_bytes(words[0].tobytes(), "little")
    assert value == (0b01 << 22) | (0b11 << 8)


@settings(max_examples=100, deadline=None)
@given(pe=st.integers(1, 16), simd=st.integers(1, 16), folds=st.integers(1, 5), col_folds=st.integers(1, 5),
       keep=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_pack_unpack_round_trip(pe, simd, folds, col_folds, keep, seed):
    rng = np.random.default_rng(seed)
    matrix = rng.integers(-1, 2, size=(folds * pe, col_folds * simd)).astype(np.int8)
    mask = rng.random((folds, col_folds)) < keep
    packed = pack(matrix, mask, pe, simd)
    expected = (tiles_of(matrix, pe, simd) * mask[:, :, None, None]).swapaxes(1, 2).reshape(matrix.shape)
    assert np.array_equal(unpack(*packed, pe, simd, *matrix.shape), expected)
    assert packed.row_ptr[-1] == mask.sum() == len(packed.col_idx)
    assert np.array_equal(words_to_codes(codes_to_words(words_to_codes(packed.words, pe * simd)), pe * simd),
                          words_to_codes(packed.words, pe * simd))


def test_tile_mask_matches_index():
    network = random_network("conv12k3p1 linear7", (5, 6, 6), pe=4, simd=3, keep=0.4, seed=2)
    layer = network.layers[0]
    mask = tile_mask(layer)
    assert mask.sum() == layer.n_kept
    assert [list(np.nonzero(row)[0]) for row in mask] == \
        [list(layer.col_idx[a:b]) for a, b in zip(layer.row_ptr[:-1], layer.row_ptr[1:], strict=True)]


@pytest.fixture
def ir_folder(tmp_path):
    network = random_network("conv6k3p1 maxpool2 conv8k3p1 avgpool2 linear10", (1, 8, 8), pe=4, simd=3,
                             keep=0.5, seed=7)
    return save(network, tmp_path / "ir"), network


def test_save_load_save_is_byte_identical(ir_folder, tmp_path):
    folder, network = ir_folder
    again = save(load(folder), tmp_path / "again")
    for name in ("network.json", WEIGHTS_FILE, ".pyflow"):
        assert (folder / name).read_bytes() == (again / name).read_bytes(), name
    images = np.random.default_rng(0).integers(0, 256, size=(3, 1, 8, 8), dtype=np.uint8)
    from pyflow import golden
    assert np.array_equal(golden.run(load(folder), images), golden.run(network, images))


def _edit_json(folder, edit):
    doc = json.loads((folder / "network.json").read_text())
    edit(doc)
    (folder / "network.json").write_text(json.dumps(doc))


def _edit_array(folder, key, edit):
    with np.load(folder / WEIGHTS_FILE) as npz:
        arrays = {name: npz[name].copy() for name in npz.files}
    edit(arrays[key])
    _write_npz(folder / WEIGHTS_FILE, arrays)


def _set(path, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize("breaker,message", [
    (lambda f: _edit_json(f, _set(["schema_version"], 99)), r"unknown schema_version 99 \(this pyflow reads 1, 2\)"),
    (lambda f: _edit_json(f, _set(["layers", 2, "in_shape"], [8, 5, 5])),
     r"layer 'conv2': in_shape: \(8, 5, 5\) does not match the output of '\w+' \(6, 4, 4\)"),
    (lambda f: _edit_array(f, "conv0.words", lambda a: a.__setitem__((0, 0), 0b10)),
     r"layer 'conv0': words: invalid 2-bit weight code 10"),
    (lambda f: _edit_array(f, "conv2.col_idx", lambda a: a.__setitem__(-1, 10_000)),
     r"weights.npz: layer 'conv2': col_idx: tile index out of range: column folds must lie in \[0, 18\)"),
    (lambda f: _edit_json(f, _set(["layers", 0, "pe"], 5)),
     r"layer 'conv0': words: shape \(\d+, 3\), expected \(\d+, 4\) for PE=5 x SIMD=3"),
    (lambda f: (f / WEIGHTS_FILE).unlink(), r"weights.npz: missing file"),
    (lambda f: (f / WEIGHTS_FILE).write_bytes(b"not a zip"), r"unreadable IR file"),
    (lambda f: _edit_json(f, lambda d: d["layers"][0].pop("stride")), r"missing|stride"),
])
def test_load_gives_one_line_errors(ir_folder, breaker, message):
    folder, _ = ir_folder
    breaker(folder)
    with pytest.raises(PyflowError, match=message) as info:
        load(folder)
    assert "\n" not in str(info.value)
    assert str(folder) in str(info.value)


def test_pe_not_matching_padded_shape(ir_folder):
    """PE changed so it no longer divides the stored tiles: named, with the PE and the expectation."""
    folder, _ = ir_folder
    _edit_json(folder, _set(["layers", 0, "pe"], 1))
    expected = r"layer 'conv0': row_ptr: shape \(3,\), expected \(7,\) for 6 outputs at PE=1"
    with pytest.raises(PyflowError, match=expected):
        load(folder)


def test_save_refuses_foreign_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PyflowError, match=r"exists and is not a pyflow output folder"):
        save(random_network("conv4k3 linear3", (1, 6, 6)), foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    import pyflow.ir.io as io

    def boom(*args):
        raise RuntimeError("disk full")
    monkeypatch.setattr(io, "_write_npz", boom)
    with pytest.raises(RuntimeError):
        save(random_network("conv4k3 linear3", (1, 6, 6)), tmp_path / "ir")
    assert list(tmp_path.iterdir()) == []


def test_loaded_arrays_are_read_only(ir_folder):
    folder, _ = ir_folder
    layer = load(folder).layers[0]
    with pytest.raises(ValueError):
        layer.words[0, 0] = 1
    shutil.rmtree(folder)
