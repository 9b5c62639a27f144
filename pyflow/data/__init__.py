"""Datasets as uint8 NCHW images (the hardware input) + int64 labels; NumPy only, nothing downloads.

Specs (``--data``):

* ``digits`` — scikit-learn's bundled 8×8 digits; values 0..16 become ``round(v·255/16)``; a fixed,
  seeded 75 %/25 % train/test split (seed 0, independent of the run's seed).
* ``cifar10:/folder`` — the standard python-pickle batches (``data_batch_1..5``, ``test_batch``) read
  through a restricted unpickler that only admits NumPy arrays and builtin containers.
* ``npz:/file.npz`` — ``x_train, y_train, x_test, y_test`` or ``images, labels`` (split 75/25 with
  seed 0); images uint8 ``[N, C, H, W]`` or ``[N, H, W]``, or feature **vectors** uint8 ``[N, F]``: these
  are held as ``[N, F, 1, 1]`` (the IR's input is a ``(F, 1, 1)`` map) with ``vector`` set, and the PyTorch
  model reads them as ``[B, F]``.
* ``synthetic:CxHxW`` (e.g. ``synthetic:3x32x32``, CIFAR-shaped) — seeded random images of 10 classes,
  each class a smooth random pattern, shifted at random, under heavy pixel noise: 5,000 train / 1,000
  test (logistic regression on the pixels of 3x32x32 scores 94 %). For running a network of that shape
  through every stage without a dataset on disk; its accuracies say nothing about a real task.
* ``fashion-mnist`` (Debian's ``dataset-fashion-mnist``, in ``/usr/share/datasets/fashion-mnist``),
  ``fashion-mnist:/folder`` and ``mnist:/folder`` — the four idx files of the standard split
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each plain or ``.gz``): 60,000 / 10,000 28×28 images, 10 classes.

The PyTorch model sees ``x / 255`` as float; the golden model sees the uint8 pixels themselves.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pyflow.errors import PyflowError

SPLIT_SEED = 0
TEST_FRACTION = 0.25
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
FASHION_MNIST_FOLDER = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
IDX_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one image and label files use
IDX_MAX_BYTES = 1 << 31  # a bound on one file's payload, checked before anything is allocated


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    train_x: np.ndarray  # uint8 [N, C, H, W]
    train_y: np.ndarray  # int64 [N]
    test_x: np.ndarray
    test_y: np.ndarray
    vector: bool = False  # the inputs are [N, F] feature vectors, held as [N, F, 1, 1]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.train_y.max(initial=0), self.test_y.max(initial=0))) + 1


def load_data(spec: str) -> Dataset:
    """Parse a ``--data`` spec and load the dataset (one-line error on anything wrong)."""
    kind, _, path = str(spec).partition(":")
    if kind == "digits" and not path:
        return digits()
    if kind == "cifar10" and path:
        return cifar10(Path(path))
    if kind == "npz" and path:
        return npz(Path(path))
    if kind == "fashion-mnist":
        return idx_dataset("fashion-mnist", Path(path) if path else FASHION_MNIST_FOLDER)
    if kind == "mnist" and path:
        return idx_dataset("mnist", Path(path))
    if kind == "synthetic":
        return synthetic(path)
    raise PyflowError(f"--data: unknown dataset {spec!r} (expected digits, fashion-mnist, fashion-mnist:/folder, "
                      "mnist:/folder, cifar10:/folder, npz:/file.npz or synthetic:CxHxW)")


def digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * 255.0 / 16.0).astype(np.uint8)[:, None]
    return _split("digits", images, bunch.target.astype(np.int64))


SYNTHETIC_CLASSES, SYNTHETIC_TRAIN, SYNTHETIC_TEST = 10, 5000, 1000
SYNTHETIC_MAX_PIXELS = 1 << 16  # C·H·W of one image (3x32x32 is 3,072)


def synthetic(shape: str) -> Dataset:
    """``synthetic:CxHxW``: class ``k``'s images are its pattern (random 4×4 per channel, upsampled),
    shifted by up to a quarter of the image (wrapping round), times a random contrast, plus Gaussian noise
    of σ 48, clipped to uint8; the same for every run."""
    parts = shape.split("x")
    if len(parts) != 3 or not all(p.isdigit() and 0 < int(p) <= 4096 for p in parts):
        raise PyflowError(f"--data synthetic:{shape}: expected the image shape as CxHxW, e.g. synthetic:3x32x32")
    c, h, w = (int(p) for p in parts)
    if c * h * w > SYNTHETIC_MAX_PIXELS:
        raise PyflowError(f"--data synthetic:{shape}: {c * h * w} pixels an image, at most {SYNTHETIC_MAX_PIXELS}")
    rng = np.random.default_rng([SPLIT_SEED, c, h, w])
    coarse = rng.uniform(-1.0, 1.0, size=(SYNTHETIC_CLASSES, c, 4, 4))
    count = SYNTHETIC_TRAIN + SYNTHETIC_TEST
    labels = rng.integers(0, SYNTHETIC_CLASSES, size=count)
    contrast = rng.uniform(20.0, 60.0, size=(count, 1, 1, 1)).astype(np.float32)
    dy, dx = rng.integers(-(h // 4), h // 4 + 1, size=(2, count, 1))
    rows = (np.arange(h) - dy) % h * 4 // h  # [count, H]: the coarse row under each pixel, shifted
    cols = (np.arange(w) - dx) % w * 4 // w
    patterns = coarse[labels[:, None, None], :, rows[:, :, None], cols[:, None, :]].transpose(0, 3, 1, 2)
    noise = rng.standard_normal(size=(count, c, h, w), dtype=np.float32) * 48.0
    images = np.clip(np.round(128.0 + contrast * patterns + noise), 0, 255).astype(np.uint8)
    return Dataset(f"synthetic-{shape}", images[:SYNTHETIC_TRAIN], labels[:SYNTHETIC_TRAIN].astype(np.int64),
                   images[SYNTHETIC_TRAIN:], labels[SYNTHETIC_TRAIN:].astype(np.int64))


def _split(name: str, images: np.ndarray, labels: np.ndarray) -> Dataset:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    n_test = int(round(len(images) * TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return Dataset(name, images[train], labels[train], images[test], labels[test])


class _SafeUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR batch holds: dicts, lists, bytes and plain NumPy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only NumPy arrays are allowed)")
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise PyflowError(f"{path}: missing CIFAR-10 batch (expected data_batch_1..5 and test_batch)")
    try:
        batch = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PyflowError(f"{path}: not a CIFAR-10 python batch: {exc}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise PyflowError(f"{path}: data has shape {data.shape}, expected [N, 3072] with {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(folder: Path) -> Dataset:
    if not folder.is_dir():
        raise PyflowError(f"{folder}: not a folder (cifar10:/folder expects the python batches)")
    parts = [_cifar_batch(folder / name) for name in CIFAR_TRAIN]
    test_x, test_y = _cifar_batch(folder / CIFAR_TEST)
    return Dataset("cifar10", np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                   test_x, test_y)


def _images(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` (from ``[N, C, H, W]``, ``[N, H, W]`` or vectors ``[N, F]`` as ``[N, F, 1, 1]``)."""
    if array.dtype != np.uint8:
        raise PyflowError(f"{where}: images must be uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        if array.shape[1] == 0:
            raise PyflowError(f"{where}: vectors [N, F] need at least one feature, got shape {array.shape}")
        return array[:, :, None, None]
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise PyflowError(f"{where}: images must be [N, C, H, W] or [N, H, W] (or vectors [N, F]), got shape "
                          f"{array.shape}")
    return array


def _kind(array: np.ndarray) -> str:
    """``[N, F] vectors`` or ``[N, C, H, W] images`` with the sizes filled in."""
    if array.ndim == 2:
        return f"vectors of {array.shape[1]} features"
    return f"images of shape {tuple(array.shape[1:])}"


def _labels(array: np.ndarray, count: int, where: str) -> np.ndarray:
    if array.ndim != 1 or len(array) != count or not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise PyflowError(f"{where}: labels must be {count} non-negative integers, got shape {array.shape}")
    return array.astype(np.int64)


def npz(path: Path) -> Dataset:
    if not path.is_file():
        raise PyflowError(f"{path}: no such file (npz:/file.npz)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PyflowError(f"{path}: unreadable npz file: {exc}") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        train_x, test_x = (_images(arrays[k], f"{path}: {k}") for k in ("x_train", "x_test"))
        if (arrays["x_train"].ndim == 2) != (arrays["x_test"].ndim == 2) or train_x.shape[1:] != test_x.shape[1:]:
            raise PyflowError(f"{path}: x_train is {_kind(arrays['x_train'])}, x_test {_kind(arrays['x_test'])}; "
                              "both must be alike")
        return Dataset(path.stem, train_x, _labels(arrays["y_train"], len(train_x), f"{path}: y_train"),
                       test_x, _labels(arrays["y_test"], len(test_x), f"{path}: y_test"),
                       vector=arrays["x_train"].ndim == 2)
    if {"images", "labels"} <= arrays.keys():
        images = _images(arrays["images"], f"{path}: images")
        data = _split(path.stem, images, _labels(arrays["labels"], len(images), f"{path}: labels"))
        return replace(data, vector=arrays["images"].ndim == 2)
    raise PyflowError(f"{path}: expected arrays x_train, y_train, x_test, y_test (or images, labels), "
                      f"found {sorted(arrays)}")


def _idx_path(folder: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise PyflowError(f"{folder}: missing {stem}[.gz] (an idx folder holds {', '.join(IDX_FILES.values())})")


def read_idx(path: Path, dims: int) -> np.ndarray:
    """One idx file (plain or gzip): magic ``00 00 08 dims``, ``dims`` big-endian uint32 sizes, then the bytes."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as stream:
            header = stream.read(4 + 4 * dims)
            if len(header) < 4 or header[:3] != bytes([0, 0, IDX_UBYTE]) or header[3] != dims:
                raise PyflowError(f"{path}: not an idx file of {dims}-d unsigned bytes (magic "
                                  f"{header[:4].hex() or 'missing'}, expected 000008{dims:02x})")
            if len(header) < 4 + 4 * dims:
                raise PyflowError(f"{path}: truncated idx header")
            shape = struct.unpack(f">{dims}I", header[4:])
            size = int(np.prod(shape, dtype=np.int64))
            if size > IDX_MAX_BYTES:
                raise PyflowError(f"{path}: idx sizes {shape} declare {size} bytes, more than {IDX_MAX_BYTES}")
            payload = stream.read(size + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise PyflowError(f"{path}: unreadable idx file: {exc}") from None
    if len(payload) != size:
        what = "truncated" if len(payload) < size else "longer than its header says"
        raise PyflowError(f"{path}: {what}: the header declares {shape} ({size} bytes)")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def idx_dataset(name: str, folder: Path) -> Dataset:
    """The MNIST-format split in ``folder`` (validated: magic numbers, counts, image sizes, label range)."""
    if not folder.is_dir():
        hint = " (apt-get install dataset-fashion-mnist, or `make install`)" if folder == FASHION_MNIST_FOLDER else ""
        raise PyflowError(f"{folder}: no such folder for --data {name}{hint}")
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = _idx_path(folder, stem)
        arrays[key] = (path, read_idx(path, 3 if key.endswith("_x") else 1))
    for split in ("train", "test"):
        (x_path, images), (y_path, labels) = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(images) != len(labels):
            raise PyflowError(f"{y_path}: {len(labels)} labels for the {len(images)} images of {x_path.name}")
        if len(images) == 0:
            raise PyflowError(f"{x_path}: holds no images")
        if labels.max() > 9:
            raise PyflowError(f"{y_path}: label {int(labels.max())} at index {int(labels.argmax())}; "
                              f"{name} has classes 0..9")
    if arrays["train_x"][1].shape[1:] != arrays["test_x"][1].shape[1:]:
        raise PyflowError(f"{folder}: train images are {arrays['train_x'][1].shape[1:]}, test images "
                          f"{arrays['test_x'][1].shape[1:]}")
    train_x, train_y, test_x, test_y = (arrays[key][1] for key in IDX_FILES)
    return Dataset(name, train_x[:, None].copy(), train_y.astype(np.int64), test_x[:, None].copy(),
                   test_y.astype(np.int64))
