"""IR on disk: ``network.json`` (structure, sorted keys) + ``weights.npz`` (arrays), byte-deterministic.

Arrays of layer ``L`` are stored in the NPZ as ``L.m``, ``L.b``, ``L.words``, ``L.row_ptr``,
``L.col_idx``. Saving writes into a temporary folder and renames it, so a failed save leaves nothing.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pyflow.errors import PyflowError
from pyflow.ir import untrusted
from pyflow.ir.check import check_network
from pyflow.ir.fields import FieldError
from pyflow.ir.model import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    AddLayer,
    FlattenLayer,
    Layer,
    MatrixLayer,
    Network,
    PoolLayer,
)
from pyflow.ir.untrusted import MATRIX_ARRAYS, NETWORK_FILE, WEIGHTS_FILE
from pyflow.util import atomic_folder

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so equal networks give equal bytes


def save(network: Network, folder: str | Path) -> Path:
    """Write the IR to ``folder`` (which must not exist, or be a previous IR folder)."""
    check_network(network)
    with atomic_folder(folder, kind="ir") as tmp:
        (tmp / NETWORK_FILE).write_text(json.dumps(to_json(network), indent=2, sort_keys=True) + "\n")
        _write_npz(tmp / WEIGHTS_FILE, _arrays(network))
    return Path(folder)


def load(folder: str | Path) -> Network:
    """Read and validate an IR folder; any problem is one line naming the file and the field."""
    folder = Path(folder)
    for name in (NETWORK_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise PyflowError(f"{folder / name}: missing file (is {folder} an IR folder written by `pyflow export`?)")
    doc, arrays = untrusted.read_json(folder / NETWORK_FILE), untrusted.read_npz(folder / WEIGHTS_FILE)
    try:
        untrusted.check_document(doc, arrays)
        network = check_network(from_json(doc, arrays))
        untrusted.check_derived(doc, network)
        return network
    except FieldError as exc:
        raise PyflowError(f"{folder}: {untrusted.file_of(exc)}: {exc}") from None
    except PyflowError as exc:
        raise PyflowError(f"{folder}: {exc}") from None


def to_json(network: Network) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": network.name,
        "input_shape": list(network.input_shape),
        "input_bits": network.input_bits,
        "a_bits": network.a_bits,
        "meta": network.meta,
        "layers": [_layer_json(layer, network.inputs_of(layer)) for layer in network.layers],
    }


def _layer_json(layer: Layer, inputs: tuple[str, ...]) -> dict[str, Any]:
    common = {"name": layer.name, "in_shape": list(layer.in_shape), "in_bits": layer.in_bits, "inputs": list(inputs)}
    if isinstance(layer, MatrixLayer):
        scalars = ("kind", "out_channels", "kernel", "stride", "padding", "pe", "simd", "out_bits",
                   "acc_bits", "shift", "is_output", "signed", "relu")
        return {"type": "matrix", **common, **{key: getattr(layer, key) for key in scalars},
                "tiles_kept": layer.n_kept, "tiles_total": layer.tiles_total}
    if isinstance(layer, PoolLayer):
        scalars = ("kind", "kernel", "stride", "m", "b", "shift")
        return {"type": "pool", **common, **{key: getattr(layer, key) for key in scalars}}
    if isinstance(layer, AddLayer):
        scalars = ("a_signed", "b_signed", "m_a", "m_b", "c", "shift", "out_bits")
        return {"type": "add", **common, **{key: getattr(layer, key) for key in scalars}}
    return {"type": "flatten", **common}


def from_json(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Network:
    version = doc.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise PyflowError(f"{NETWORK_FILE}: unknown schema_version {version!r} (this pyflow reads "
                          f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        layers = tuple(_layer(item, arrays) for item in doc["layers"])
        return Network(name=doc["name"], input_shape=doc["input_shape"], a_bits=doc["a_bits"],
                       layers=layers, input_bits=doc["input_bits"], meta=doc.get("meta", {}))
    except KeyError as exc:
        raise PyflowError(f"{NETWORK_FILE}: missing field {exc.args[0]!r}") from None
    except TypeError as exc:
        raise PyflowError(f"{NETWORK_FILE}: malformed layer: {exc}") from None


def _layer(item: dict[str, Any], arrays: dict[str, np.ndarray]) -> Layer:
    kind, name = item["type"], item["name"]
    fields = {key: value for key, value in item.items() if key not in ("type", "tiles_kept", "tiles_total")}
    if kind == "matrix":
        for key in MATRIX_ARRAYS:
            if f"{name}.{key}" not in arrays:
                raise PyflowError(f"{WEIGHTS_FILE}: layer {name!r}: missing array {key!r}")
            fields[key] = arrays[f"{name}.{key}"]
        return MatrixLayer(**fields)
    if kind == "pool":
        return PoolLayer(**fields)
    if kind == "flatten":
        return FlattenLayer(**fields)
    if kind == "add":
        return AddLayer(**fields)
    raise PyflowError(f"{NETWORK_FILE}: layer {name!r}: unknown type {kind!r}")


def _arrays(network: Network) -> dict[str, np.ndarray]:
    return {f"{layer.name}.{key}": getattr(layer, key)
            for layer in network.matrix_layers for key in MATRIX_ARRAYS}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
