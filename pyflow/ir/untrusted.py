"""Reading an IR folder someone else wrote: bounded, strict, and every problem one line naming the file.

``network.json`` is read with a size limit, refusing NaN/Infinity and repeated keys; its structure (the
known fields of each layer type, all required ones present, names that are identifiers) is checked here
before any object is built, and the values by the dataclasses (:mod:`pyflow.ir.fields`).

``weights.npz`` is read without :func:`numpy.load`: each member's ``.npy`` header is parsed first and the
array refused unless it is an integer array of at most two dimensions within the byte budget, so a
compressed archive claiming a 10 GB array fails in one line instead of filling the memory. Members must be
exactly the arrays of the matrix layers.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pyflow.errors import PyflowError
from pyflow.ir import fields
from pyflow.ir.model import READABLE_VERSIONS, AddLayer, FlattenLayer, MatrixLayer, Network, PoolLayer

NETWORK_FILE, WEIGHTS_FILE = "network.json", "weights.npz"
MAX_JSON_BYTES = 64 << 20
MAX_NPZ_BYTES = 256 << 20  # uncompressed bytes of all arrays (a VGG-sized IR holds a few MiB)
MAX_MEMBERS = 5 * fields.MAX_LAYERS
MATRIX_ARRAYS = ("m", "b", "words", "row_ptr", "col_idx")
DERIVED = ("tiles_kept", "tiles_total")  # written for readers, recomputed (and compared) on load
TOP_FIELDS = {"schema_version", "name", "input_shape", "input_bits", "a_bits", "layers", "meta"}
TOP_OPTIONAL = {"meta"}
LAYER_TYPES = {"matrix": MatrixLayer, "pool": PoolLayer, "flatten": FlattenLayer, "add": AddLayer}
V1_TYPES = ("matrix", "pool", "flatten")  # version 1 is a chain: no add, no ``inputs``, no ``signed``
V2_FIELDS = {"inputs", "signed", "relu"}
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
                NotImplementedError, RuntimeError)  # what zipfile and the .npy header parser raise


def one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


def read_json(path: Path) -> Any:
    """The parsed ``network.json``: plain JSON only (no NaN, no repeated key), at most MAX_JSON_BYTES."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise PyflowError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB; not an IR written by pyflow")
        with open(path, "rb") as handle:
            text = handle.read(MAX_JSON_BYTES + 1).decode("utf-8")
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError, OSError) as exc:
        raise PyflowError(f"{path}: unreadable IR file: not valid JSON: {one_line(exc)}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"key {fields.shown(repeated)} appears twice in one object")
    return doc


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of ``weights.npz``, header-checked before any data is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise PyflowError(f"{path}: {len(members)} arrays, more than {MAX_MEMBERS}")
            arrays: dict[str, np.ndarray] = {}
            budget = MAX_NPZ_BYTES
            for member in members:
                key = _array_key(path, member.filename, arrays)
                with archive.open(member) as stream:
                    arrays[key] = _read_npy(stream, path, key, budget)
                budget -= arrays[key].nbytes
            return arrays
    except _READ_ERRORS as exc:
        raise PyflowError(f"{path}: unreadable IR file: {one_line(exc)}") from None


def _array_key(path: Path, filename: str, arrays: dict[str, np.ndarray]) -> str:
    key = filename.removesuffix(".npy")
    if key == filename or key in arrays:
        problem = "is not a .npy array" if key == filename else "appears twice"
        raise PyflowError(f"{path}: member {fields.shown(filename)} {problem}")
    return key


def _where(path: Path, key: str) -> str:
    layer, _, field = key.rpartition(".")
    return f"{path}: layer {fields.shown(layer)}: {field}" if layer else f"{path}: array {fields.shown(key)}"


def _read_npy(stream: Any, path: Path, key: str, budget: int) -> np.ndarray:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise PyflowError(f"{_where(path, key)}: unsupported .npy version {version}")
    if dtype.kind not in "iu" or dtype.hasobject or dtype.itemsize > 8:
        raise PyflowError(f"{_where(path, key)}: must be an integer array, got dtype {dtype}")
    if len(shape) > 2:
        raise PyflowError(f"{_where(path, key)}: {len(shape)}-dimensional, expected at most 2 dimensions")
    if any(size < 0 for size in shape):  # read(-n) would inflate the whole member, however large
        raise PyflowError(f"{_where(path, key)}: negative size in shape {shape}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > budget:
        raise PyflowError(f"{_where(path, key)}: shape {shape} exceeds the {MAX_NPZ_BYTES >> 20} MiB array budget")
    data = stream.read(nbytes)
    if len(data) != nbytes:
        raise PyflowError(f"{_where(path, key)}: truncated ({len(data)} of {nbytes} bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def check_document(doc: Any, arrays: dict[str, np.ndarray]) -> None:
    """The structure of ``network.json`` and the names of the NPZ arrays; values are checked on construction."""
    if not isinstance(doc, dict):
        raise PyflowError(f"{NETWORK_FILE}: must be a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # type: True == 1 in Python
        raise PyflowError(f"{NETWORK_FILE}: unknown schema_version {fields.shown(version)} "
                          f"(this pyflow reads {', '.join(map(str, READABLE_VERSIONS))})")
    _known_fields(None, doc, TOP_FIELDS, TOP_FIELDS - TOP_OPTIONAL, "the network")
    layers = doc["layers"]
    if not isinstance(layers, list) or not 1 <= len(layers) <= fields.MAX_LAYERS:
        raise fields.FieldError(None, "layers", f"must be a list of 1 to {fields.MAX_LAYERS} layers, "
                                                f"got {fields.shown(layers)}")
    expected, names = set(), set()
    for position, item in enumerate(layers):
        if not isinstance(item, dict):
            raise fields.FieldError(None, f"layers[{position}]", f"must be a JSON object, got {fields.shown(item)}")
        name = fields.layer_name(item.get("name"))
        if name in names:
            raise fields.FieldError(name, "name", "used twice")
        names.add(name)
        kind = fields.choice(name, "type", item.get("type"), tuple(LAYER_TYPES) if version > 1 else V1_TYPES)
        known, required = _layer_fields(kind)
        if version == 1:
            known -= V2_FIELDS
        _known_fields(name, item, known, required, f"a {kind} layer")
        if kind == "matrix":
            expected |= {f"{name}.{key}" for key in MATRIX_ARRAYS}
    for key in sorted(set(arrays) - expected):
        raise PyflowError(f"{WEIGHTS_FILE}: array {fields.shown(key)}: unknown (no matrix layer of that name has it)")


def _layer_fields(kind: str) -> tuple[set[str], set[str]]:
    """The JSON fields of a layer type: its dataclass fields (arrays excepted) plus ``type`` (and DERIVED)."""
    arrays = MATRIX_ARRAYS if kind == "matrix" else ()
    items = [field for field in dataclasses.fields(LAYER_TYPES[kind]) if field.name not in arrays]
    known = {field.name for field in items} | {"type"} | (set(DERIVED) if kind == "matrix" else set())
    required = {field.name for field in items if field.default is dataclasses.MISSING} | {"type"}
    return known, required


def _known_fields(layer: str | None, item: dict[str, Any], known: set[str], required: set[str], what: str) -> None:
    for key in sorted(item, key=str):
        if key not in known:
            raise fields.FieldError(layer, fields.shown(key),
                                    f"unknown field of {what} (fields: {', '.join(sorted(known))})")
    for key in sorted(required - set(item)):
        raise fields.FieldError(layer, key, "missing")


def file_of(error: fields.FieldError) -> str:
    """The file that holds a bad field: the arrays live in the NPZ, everything else in the JSON."""
    return WEIGHTS_FILE if error.array else NETWORK_FILE


def check_derived(doc: dict[str, Any], network: Network) -> None:
    """``tiles_kept``/``tiles_total`` of network.json agree with the arrays they describe."""
    for item, layer in zip(doc["layers"], network.layers, strict=True):
        for key, actual in (("tiles_kept", getattr(layer, "n_kept", None)),
                            ("tiles_total", getattr(layer, "tiles_total", None))):
            if key in item and fields.integer(layer.name, key, item[key], 0, fields.MAX_WEIGHTS) != actual:
                raise fields.FieldError(layer.name, key, f"{item[key]}, but the layer's arrays give {actual}")
