"""Mutation fuzzing of IR folders: `load` must refuse a broken IR in one line, or return a valid network.

:func:`mutate` applies one seeded random mutation to an IR folder (bytes of ``weights.npz`` flipped or cut,
an array's dtype, shape or values replaced, a member dropped or doubled, a ``network.json`` field edited,
deleted or retyped — ints to huge, negative, float, str, bool or null, strings to hostile strings, lists
shortened or lengthened). :func:`fuzz` runs many of them from a few valid networks and sorts the outcomes:

* ``refused`` — a :class:`PyflowError` whose message is one line;
* ``valid`` — a network ``load`` accepted; the golden model then runs it on two images, and every
  ``generate_every``-th one is generated with both backends into a scratch OUT, checking that nothing
  appears outside OUT;
* ``failures`` — anything else (another exception, a multi-line message, a file written outside OUT), each
  with the seed, case index and mutations that reproduce it (:func:`replay`).

No torch, no simulator: the loop runs in seconds.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyflow.errors import PyflowError
from pyflow.ir.io import NETWORK_FILE, WEIGHTS_FILE, load, save
from pyflow.random_ir import random_network

HOSTILE_STRINGS = (
    "x;\n}\nint pwned() { return 1; }\n//", "../../outside", "/tmp/abs", "a" * 65, "", "..", ".hidden", "a b",
    "名前", "trailing\\", "nul\x00byte", "$(touch pwned)", "a.b", "conv0", "l0_conv0", "-rf", "a\rb", "\u2028",
    "input", "res1", "res1b",  # names a graph's inputs may (wrongly) point at
)
HOSTILE_NUMBERS = (10**30, 2**63, 2**64, -(2**63) - 1, -1, 0, 1, 3, 255, 100000, 4.0, 0.5, -0.0, 1e308,
                   float("nan"), float("inf"), "4", True, False, None, [], {})
BAD_DTYPES = ("<f8", "|b1", "|i1", "<u8", "<i2", ">i8", "<f2", "<c16", "|O", "<U3", "|V8", "|S2")
BASE_SPECS = (  # small valid networks covering every layer kind and a few foldings
    ("conv6k3p1 maxpool2 conv8k3p1 avgpool2 linear10", (1, 8, 8), 4, 3),
    ("conv5k3s2p1 flatten linear4", (3, 7, 7), 3, 5),
    ("conv4k1 maxpool2s1 conv3k3 linear6", (2, 6, 6), 2, 2),
    ("linear7 linear5", (9, 1, 1), 4, 4),
    ("conv4k3p1 res4 res6s2 linear3", (1, 6, 6), 3, 2),  # a graph: forks, adds, signed branch ends
)


# --- NPZ members as bytes --------------------------------------------------------------------------------

def read_members(path: Path) -> list[tuple[str, bytes]]:
    """The members of a zip file in order (raw, so that they can be broken one by one)."""
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def write_members(path: Path, members: list[tuple[str, bytes]]) -> None:
    """Write ``members`` as a zip file; repeated names are written as given (zipfile warns, we want them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": a repeated member is one of the mutations
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    path.write_bytes(buffer.getvalue())


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple[int, ...], body: bytes = b"", fortran: bool = False) -> bytes:
    """A ``.npy`` file with any header (an object dtype, a claimed 10**12 elements) and ``body`` after it."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue() + body


def npy_array(data: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


# --- mutations: each edits the folder and returns what it did ---------------------------------------------

def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON document (the root excepted), depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = []
    for key, item in items:
        found.append((*prefix, key))
        found += _paths(item, (*prefix, key))
    return found


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _pick(rng: np.random.Generator, items: Any) -> Any:
    return items[int(rng.integers(len(items)))]


def _replacement(rng: np.random.Generator, value: Any) -> Any:
    """A hostile value in place of ``value``, chosen by its type."""
    if isinstance(value, list) and value and rng.random() < 0.6:
        cut = int(rng.integers(len(value)))
        return value[:cut] if rng.random() < 0.5 else [*value, _pick(rng, [*value, *HOSTILE_NUMBERS])]
    if isinstance(value, str) and rng.random() < 0.7:
        return _pick(rng, HOSTILE_STRINGS)
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.3:
        return value + int(rng.choice([-1, 1, -value - 1, value]))  # near miss: off by one, negated, doubled
    return _pick(rng, [*HOSTILE_NUMBERS, *HOSTILE_STRINGS[:3]])


def _edit_json(folder: Path, edit: Callable[[Any], str]) -> str:
    path = folder / NETWORK_FILE
    doc = json.loads(path.read_text())
    what = edit(doc)
    path.write_text(json.dumps(doc, indent=1))
    return what


def json_value(rng: np.random.Generator, folder: Path) -> str:
    def edit(doc: Any) -> str:
        path = _pick(rng, _paths(doc))
        old = _get(doc, path)
        new = _replacement(rng, old)
        _get(doc, path[:-1])[path[-1]] = new
        return f"json {_dotted(path)}: {_short(old)} -> {_short(new)}"
    return _edit_json(folder, edit)


def json_structure(rng: np.random.Generator, folder: Path) -> str:
    def edit(doc: Any) -> str:
        layers = doc["layers"]
        choice = int(rng.integers(5))
        if choice == 0:
            path = _pick(rng, _paths(doc))
            del _get(doc, path[:-1])[path[-1]]
            return f"json delete {_dotted(path)}"
        if choice == 1:
            target = _pick(rng, [doc, *layers])
            target[_pick(rng, ["evil", "tiles_kept", "meta", "is_output", "m", "words"])] = 1
            return "json add a field"
        i, j = sorted(int(v) for v in rng.integers(len(layers), size=2))
        if choice == 2:
            layers[i], layers[j] = layers[j], layers[i]
            return f"json swap layers {i} and {j}"
        if choice == 3:
            layers.insert(i, json.loads(json.dumps(layers[j])))
            return f"json duplicate layer {j} at {i}"
        layers[i]["name"] = layers[j]["name"] if i != j else "renamed"
        return f"json rename layer {i} to {layers[i]['name']!r}"
    return _edit_json(folder, edit)


def file_bytes(rng: np.random.Generator, folder: Path) -> str:
    path = folder / (WEIGHTS_FILE if rng.random() < 0.7 else NETWORK_FILE)
    data = bytearray(path.read_bytes())
    if rng.random() < 0.3:
        cut = int(rng.integers(len(data)))
        path.write_bytes(bytes(data[:cut]))
        return f"truncate {path.name} to {cut} bytes"
    spots = rng.integers(len(data), size=int(rng.integers(1, 9)))
    for spot in spots:
        data[spot] = int(rng.integers(256))
    path.write_bytes(bytes(data))
    return f"overwrite bytes {sorted(int(s) for s in spots)} of {path.name}"


def npz_member(rng: np.random.Generator, folder: Path) -> str:
    path = folder / WEIGHTS_FILE
    members = read_members(path)
    index = int(rng.integers(len(members)))
    name, data = members[index]
    array = npy_array(data)
    kind = int(rng.integers(7))
    if kind == 0:
        members[index] = (name, _retyped(rng, array))
        what = "dtype replaced"
    elif kind == 1:
        members[index] = (name, npy_bytes(_reshaped(rng, array)))
        what = "shape replaced"
    elif kind == 2:
        members[index] = (name, npy_bytes(_revalued(rng, array)))
        what = "values replaced"
    elif kind == 3:
        shape = _pick(rng, [(10**6, 10**6), (2**62,), (1 << 31, 8), (3, 4, 5, 6), (-1,), (-8, 2)])
        members[index] = (name, npy_header(array.dtype.str, shape, data[-16:]))
        what = f"header claims shape {shape}"
    elif kind == 4:
        del members[index]
        what = "dropped"
    elif kind == 5:
        members.append((name if rng.random() < 0.5 else _pick(rng, ["x.m", "conv0.extra.npy", "notes.txt"]),
                        data))
        what = "doubled or renamed copy added"
    else:
        members[index] = (name, data[:int(rng.integers(len(data)))])
        what = "truncated"
    write_members(path, members)
    return f"npz {name}: {what}"


def _retyped(rng: np.random.Generator, array: np.ndarray) -> bytes:
    descr = _pick(rng, BAD_DTYPES)
    if descr in ("|O", "|V8", "<U3", "|S2") or rng.random() < 0.2:  # raw header: no legal array of that kind
        return npy_header(descr, array.shape, array.tobytes())
    return npy_bytes(array.astype(np.dtype(descr)))


def _reshaped(rng: np.random.Generator, array: np.ndarray) -> np.ndarray:
    choice = int(rng.integers(5))
    if choice == 0:
        return array[None]
    if choice == 1:
        return array.reshape(-1)[: max(0, array.size - int(rng.integers(1, 3)))]
    if choice == 2:
        return np.concatenate([array.reshape(-1), array.reshape(-1)[:1]])
    if choice == 3:
        return np.asarray(array.reshape(-1)[0] if array.size else 0)
    return array.T.copy() if array.ndim == 2 else array.reshape(1, -1)


def _revalued(rng: np.random.Generator, array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        return np.array([7], dtype=array.dtype)
    out = array.astype(np.int64).copy()
    spots = rng.integers(out.size, size=int(rng.integers(1, 4)))
    extreme = [-(2**63), 2**63 - 1, -1, 1 << 40, 255, 256, 3, 0, -(1 << 15) - 1, 1 << 15]
    out.reshape(-1)[spots] = [_pick(rng, extreme) for _ in spots]
    keep_dtype = rng.random() < 0.5 and array.dtype != np.int64
    return out.astype(array.dtype) if keep_dtype else out


def json_meta(rng: np.random.Generator, folder: Path) -> str:
    """meta is free-form: hostile strings there must load, and must reach no generated file or path."""
    def edit(doc: Any) -> str:
        key, value = _pick(rng, [*HOSTILE_STRINGS, "spec", "keep"]), _pick(rng, [*HOSTILE_STRINGS, *HOSTILE_NUMBERS])
        doc.setdefault("meta", {})[key] = value
        return f"json meta[{_short(key)}] = {_short(value)}"
    return _edit_json(folder, edit)


MUTATIONS = (json_value, json_value, json_structure, json_meta, file_bytes, npz_member, npz_member)


def mutate(rng: np.random.Generator, folder: Path) -> str:
    """One random mutation of the IR in ``folder`` (in place); returns a description of it.

    A structured mutation needs a file an earlier mutation may have broken: then it overwrites bytes.
    """
    try:
        with warnings.catch_warnings():  # duplicate zip members and overflowing casts are the point here
            warnings.simplefilter("ignore")
            return _pick(rng, MUTATIONS)(rng, folder)
    except Exception:  # the mutator could not parse what it meant to edit; not an outcome of `load`
        return file_bytes(rng, folder)


def _dotted(path: tuple) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


# --- the fuzz loop --------------------------------------------------------------------------------------

@dataclass
class FuzzResult:
    tried: int = 0
    refused: int = 0
    valid: int = 0
    generated: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    messages: dict[str, int] = field(default_factory=dict)  # refusal kinds (message text before the values)

    def summary(self) -> str:
        return (f"{self.tried} mutations: {self.refused} one-line errors, {self.valid} valid networks "
                f"({self.generated} generated), {len(self.failures)} failures, {self.seconds:.1f} s")


def make_bases(folder: Path) -> list[Path]:
    """The valid IRs mutations start from: small random networks of every layer kind."""
    bases = []
    for index, (spec, shape, pe, simd) in enumerate(BASE_SPECS):
        network = random_network(spec, shape, pe=pe, simd=simd, keep=0.6, seed=index)
        bases.append(save(network, folder / f"base{index}"))
    return bases


def replay(bases: list[Path], seed: int, index: int, folder: Path) -> list[str]:
    """Rebuild case ``index`` of ``fuzz(..., seed)`` in ``folder``; returns its mutations."""
    rng = np.random.default_rng([seed, index])
    base = bases[index % len(bases)]
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base, folder)
    return [mutate(rng, folder) for _ in range(int(rng.integers(1, 4)))]


def fuzz(bases: list[Path], count: int, seed: int, workdir: Path, generate_every: int = 25) -> FuzzResult:
    """Run ``count`` mutated cases; see the module docstring for the outcomes."""
    result, start = FuzzResult(), time.perf_counter()
    for index in range(count):
        case = workdir / "case"
        steps = replay(bases, seed, index, case)
        problem = _outcome(case, workdir, result, generate_every)
        if problem:
            result.failures.append(f"seed={seed} case={index} base={bases[index % len(bases)].name} "
                                   f"mutations={steps}: {problem} (rebuild: pyflow.mutate.replay(bases, "
                                   f"{seed}, {index}, folder))")
        result.tried += 1
    result.seconds = time.perf_counter() - start
    return result


def _outcome(case: Path, workdir: Path, result: FuzzResult, generate_every: int) -> str | None:
    """Load the case and sort the outcome; return a description when it is a failure."""
    try:
        network = load(case)
    except PyflowError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message or len(message) > 600:
            return f"PyflowError not one short line: {message[:300]!r}"
        result.refused += 1
        kind = message.split(": ", 2)[-1].split(",")[0][:60]
        result.messages[kind] = result.messages.get(kind, 0) + 1
        return None
    except Exception:  # the bug this fuzz looks for: any other exception
        return "load raised " + " | ".join(traceback.format_exc().strip().splitlines()[-3:])
    result.valid += 1
    try:
        from pyflow import golden
        images = np.random.default_rng(0).integers(0, 256, size=(2, *network.input_shape), dtype=np.uint8)
        golden.run(network, images)
        if generate_every and (result.valid - 1) % generate_every == 0:
            result.generated += 1
            return _generate_contained(network, workdir)
    except Exception:
        return "valid network, then " + " | ".join(traceback.format_exc().strip().splitlines()[-3:])
    return None


def _generate_contained(network: Any, workdir: Path) -> str | None:
    """Generate both backends into ``workdir/out``; a file appearing elsewhere under ``workdir`` is a failure."""
    from pyflow.boards import load_board
    from pyflow.codegen.cli import generate

    out = workdir / "out"
    if out.exists():
        shutil.rmtree(out)
    before = _tree(workdir)
    for backend in ("hls", "rtl"):
        try:
            generate(backend, network, load_board("pynq-z2"), out / backend)
        except PyflowError as exc:
            if "\n" in str(exc):
                return f"generate {backend}: PyflowError not one line"
    outside = sorted(set(_tree(workdir)) - set(before) - {p for p in _tree(workdir) if p.is_relative_to(out)})
    escaped = [p for p in _tree(out) if not p.resolve().is_relative_to(out.resolve())]
    if outside or escaped:
        return f"generate wrote outside OUT: {[str(p) for p in (outside + escaped)[:3]]}"
    return None


def _tree(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []
