"""Datasets: digits (seeded split), CIFAR-10 python batches (restricted unpickler), npz, idx (Fashion-MNIST and
MNIST) — on tiny made-up files."""

import pickle

import numpy as np
import pytest

from pyflow.data import load_data
from pyflow.errors import PyflowError


def test_digits_uint8_nchw_and_fixed_split():
    data = load_data("digits")
    assert data.train_x.dtype == np.uint8 and data.train_x.shape[1:] == (1, 8, 8)
    assert len(data.train_x) + len(data.test_x) == 1797 and len(data.test_x) == 449
    assert data.train_x.max() == 255 and data.num_classes == 10
    again = load_data("digits")
    assert (again.test_x == data.test_x).all() and (again.test_y == data.test_y).all()
    from sklearn.datasets import load_digits

    raw = load_digits()
    pixels = set(np.unique(np.round(raw.images * 255 / 16)).astype(int))
    assert set(np.unique(data.train_x).tolist()) <= pixels


def _cifar(folder, count=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).tolist()
        (folder / name).write_bytes(pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": labels}))
        batches[name] = (data, labels)
    return batches


def test_cifar10_batches_are_read_as_nchw(tmp_path):
    batches = _cifar(tmp_path / "cifar")
    data = load_data(f"cifar10:{tmp_path / 'cifar'}")
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][0][0]
    assert (data.train_x[0, 0].ravel() == first[:1024]).all()  # red plane first, row-major
    assert (data.train_x[0, 2, 31] == first[3072 - 32:]).all()
    assert data.test_y.tolist() == batches["test_batch"][1]


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_cifar10_refuses_arbitrary_objects(tmp_path):
    _cifar(tmp_path / "cifar")
    target = tmp_path / "pwned"
    (tmp_path / "cifar" / "test_batch").write_bytes(pickle.dumps({b"data": _Exploit(str(target)), b"labels": []}))
    with pytest.raises(PyflowError, match=r"test_batch: not a CIFAR-10 python batch: refusing to load io.open"):
        load_data(f"cifar10:{tmp_path / 'cifar'}")
    assert not target.exists()


def test_cifar10_missing_batch(tmp_path):
    _cifar(tmp_path / "cifar")
    (tmp_path / "cifar" / "data_batch_3").unlink()
    with pytest.raises(PyflowError, match="data_batch_3: missing CIFAR-10 batch"):
        load_data(f"cifar10:{tmp_path / 'cifar'}")


def test_npz_train_test_and_images_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(12, 2, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x_train=x[:8], y_train=np.arange(8) % 3, x_test=x[8:], y_test=np.arange(4) % 3)
    data = load_data(f"npz:{tmp_path / 'a.npz'}")
    assert data.input_shape == (2, 5, 5) and len(data.test_x) == 4 and data.num_classes == 3
    np.savez(tmp_path / "b.npz", images=x[:, 0], labels=np.arange(12) % 2)
    data = load_data(f"npz:{tmp_path / 'b.npz'}")
    assert data.input_shape == (1, 5, 5) and len(data.train_x) == 9 and len(data.test_x) == 3


def test_npz_vectors_are_held_as_f_by_1_by_1_and_flagged(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(12, 7), dtype=np.uint8)
    np.savez(tmp_path / "v.npz", x_train=x[:8], y_train=np.arange(8) % 3, x_test=x[8:], y_test=np.arange(4) % 3)
    data = load_data(f"npz:{tmp_path / 'v.npz'}")
    assert data.vector and data.input_shape == (7, 1, 1) and data.train_x.shape == (8, 7, 1, 1)
    assert (data.test_x[:, :, 0, 0] == x[8:]).all()
    np.savez(tmp_path / "w.npz", images=x, labels=np.arange(12) % 2)
    data = load_data(f"npz:{tmp_path / 'w.npz'}")
    assert data.vector and data.input_shape == (7, 1, 1) and len(data.train_x) == 9
    assert not load_data("digits").vector


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((4, 6), np.uint8), "y_train": np.zeros(4, np.int64),
      "x_test": np.zeros((2, 1, 6, 6), np.uint8), "y_test": np.zeros(2, np.int64)},
     r"x_train is vectors of 6 features, x_test images of shape \(1, 6, 6\); both"),
    ({"x_train": np.zeros((4, 6), np.uint8), "y_train": np.zeros(4, np.int64), "x_test": np.zeros((2, 5), np.uint8),
      "y_test": np.zeros(2, np.int64)}, "x_train is vectors of 6 features, x_test vectors of 5 features"),
    ({"images": np.zeros((4, 0), np.uint8), "labels": np.zeros(4, np.int64)}, r"vectors \[N, F\] need at least one"),
    ({"images": np.zeros((4, 6), np.float32), "labels": np.zeros(4, np.int64)}, "images must be uint8"),
    ({"images": np.zeros((4,), np.uint8), "labels": np.zeros(4, np.int64)}, r"or vectors \[N, F\]\), got shape"),
])
def test_npz_vector_problems_are_one_line_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PyflowError, match=message) as info:
        load_data(f"npz:{tmp_path / 'bad.npz'}")
    assert "\n" not in str(info.value) and "bad.npz" in str(info.value)


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((4, 5, 5), np.float32), "labels": np.zeros(4, np.int64)}, "images must be uint8"),
    ({"images": np.zeros((4, 5, 5), np.uint8), "labels": np.zeros(3, np.int64)}, "labels must be 4"),
    ({"pixels": np.zeros((4, 5, 5), np.uint8)}, "expected arrays x_train"),
])
def test_npz_bad_content(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PyflowError, match=message):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


def test_unknown_and_corrupt_specs(tmp_path):
    with pytest.raises(PyflowError, match="unknown dataset 'mnist'"):
        load_data("mnist")
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(PyflowError, match="unreadable npz file"):
        load_data(f"npz:{tmp_path / 'x.npz'}")


def _idx(path, array, magic_dims=None, extra=b"", compress=True):
    """Write ``array`` (uint8) as an idx file: 00 00 08 <dims>, big-endian uint32 sizes, the bytes."""
    import gzip
    import struct

    dims = array.ndim if magic_dims is None else magic_dims
    payload = bytes([0, 0, 8, dims]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes() + extra
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def _idx_folder(folder, n_train=6, n_test=4, compress=True):
    rng = np.random.default_rng(1)
    folder.mkdir(exist_ok=True)
    parts = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8)}
    for name, array in parts.items():
        _idx(folder / name, array, compress=compress)
    return parts


@pytest.mark.parametrize("kind, compress", [("fashion-mnist", True), ("mnist", False)])
def test_idx_folders_are_read_as_nchw_uint8(tmp_path, kind, compress):
    parts = _idx_folder(tmp_path / "idx", compress=compress)
    data = load_data(f"{kind}:{tmp_path / 'idx'}")
    assert data.name == kind and data.input_shape == (1, 28, 28)
    assert data.train_x.dtype == np.uint8 and data.train_x.shape == (6, 1, 28, 28)
    assert (data.train_x[:, 0] == parts["train-images-idx3-ubyte"]).all()
    assert data.test_y.tolist() == [3, 2, 1, 0] and data.train_y.dtype == np.int64


@pytest.mark.parametrize("spoil, message", [
    (lambda f: _idx(f / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), magic_dims=3),
     r"t10k-labels-idx1-ubyte.gz: not an idx file of 1-d unsigned bytes \(magic 00000803, expected 000008(01)\)"),
    (lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage"), "unreadable idx file"),
    (lambda f: _idx(f / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), extra=b"\x00"),
     "t10k-images-idx3-ubyte.gz: longer than its header says"),
    (lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink(), r"missing t10k-labels-idx1-ubyte\[.gz\]"),
    (lambda f: _idx(f / "train-labels-idx1-ubyte", np.zeros(5, np.uint8)),
     "train-labels-idx1-ubyte.gz: 5 labels for the 6 images of train-images-idx3-ubyte.gz"),
    (lambda f: _idx(f / "train-labels-idx1-ubyte", np.array([1, 2, 12, 3, 4, 5], np.uint8)),
     "label 12 at index 2; fashion-mnist has classes 0..9"),
    (lambda f: _idx(f / "t10k-images-idx3-ubyte", np.zeros((4, 14, 14), np.uint8)),
     r"train images are \(28, 28\), test images \(14, 14\)"),
])
def test_idx_problems_are_one_line_errors_naming_the_file(tmp_path, spoil, message):
    _idx_folder(tmp_path / "idx")
    spoil(tmp_path / "idx")
    with pytest.raises(PyflowError, match=message) as info:
        load_data(f"fashion-mnist:{tmp_path / 'idx'}")
    assert "\n" not in str(info.value)


def test_truncated_idx_and_a_header_declaring_too_much(tmp_path):
    import gzip
    import struct

    _idx_folder(tmp_path / "idx")
    full = gzip.decompress((tmp_path / "idx" / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "idx" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(full[:-100]))
    with pytest.raises(PyflowError, match=r"t10k-images-idx3-ubyte.gz: truncated: the header declares \(4, 28, 28\)"):
        load_data(f"fashion-mnist:{tmp_path / 'idx'}")
    huge = bytes([0, 0, 8, 3]) + struct.pack(">3I", 1 << 20, 1 << 10, 1 << 10)
    (tmp_path / "idx" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(huge))
    with pytest.raises(PyflowError, match="declare 1099511627776 bytes, more than"):
        load_data(f"fashion-mnist:{tmp_path / 'idx'}")


def test_missing_idx_folder_and_mnist_without_a_folder(tmp_path):
    with pytest.raises(PyflowError, match=f"{tmp_path / 'none'}: no such folder for --data mnist"):
        load_data(f"mnist:{tmp_path / 'none'}")
    with pytest.raises(PyflowError, match="unknown dataset 'mnist'"):
        load_data("mnist")


def test_synthetic_is_seeded_shaped_and_balanced():
    first, again = load_data("synthetic:3x32x32"), load_data("synthetic:3x32x32")
    assert first.input_shape == (3, 32, 32) and first.train_x.dtype == np.uint8 and first.num_classes == 10
    assert (len(first.train_x), len(first.test_x)) == (5000, 1000)
    assert np.array_equal(first.train_x, again.train_x) and np.array_equal(first.test_y, again.test_y)
    assert np.bincount(first.train_y).min() > 400  # every class is there
    means = [first.train_x[first.train_y == k].mean(axis=0) for k in range(10)]
    assert min(np.abs(means[k] - means[k + 1]).mean() for k in range(9)) > 3  # classes differ on average


@pytest.mark.parametrize("spec,message", [("synthetic:3x32", "CxHxW"), ("synthetic:", "CxHxW"),
                                          ("synthetic:0x8x8", "CxHxW"), ("synthetic:3x-1x8", "CxHxW"),
                                          ("synthetic:64x64x64", "at most")])
def test_synthetic_bad_shapes(spec, message):
    with pytest.raises(PyflowError, match=message):
        load_data(spec)
