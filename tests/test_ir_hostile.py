"""Hostile IRs: every field a user could hand over is refused in one line naming the file, layer and field.

A layer name is rendered into C++ and Verilog identifiers and ROM file names, the network name into
comments, and every number sizes a buffer; so each gets a hostile value here, through `load` (JSON and NPZ
as files) and through the dataclasses (networks built in Python).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from test_ir import _set

from pyflow.compress.api import _network_name
from pyflow.errors import PyflowError
from pyflow.ir import FlattenLayer, MatrixLayer, Network, PoolLayer, load, save
from pyflow.ir.fields import MAX_NAME, safe_network_name
from pyflow.ir.io import NETWORK_FILE, WEIGHTS_FILE
from pyflow.ir.packing import pack
from pyflow.mutate import npy_bytes, npy_header, read_members, write_members
from pyflow.random_ir import random_network

SPEC = "conv6k3p1 maxpool2 conv8k3p1 avgpool2 linear10"  # layers: conv0 maxpool1 conv2 avgpool3 flatten4_ linear4
INJECTION = "x;\n}\nint pwned() { return 1; }\n//"


@pytest.fixture
def ir(tmp_path):
    return save(random_network(SPEC, (1, 8, 8), pe=4, simd=3, keep=0.5, seed=7), tmp_path / "ir")


def edit_json(folder, edit):
    doc = json.loads((folder / NETWORK_FILE).read_text())
    edit(doc)
    (folder / NETWORK_FILE).write_text(json.dumps(doc))
    return folder


def setter(*path_and_value):
    """An edit of network.json setting the field at ``path`` to ``value`` (the last argument)."""
    *path, value = path_and_value
    return _set(path, value)


def refused(folder, *fragments):
    """`load` fails with one line holding the folder and every fragment (file, layer, field)."""
    with pytest.raises(PyflowError) as info:
        load(folder)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert str(folder) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- names ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [INJECTION, "../../outside", "a/b", "a.b", "0conv", "", "conv 0", "名前",
                                  "a\\", "a\x00b", "a" * (MAX_NAME + 1), 7, None, ["conv0"]])
def test_hostile_layer_name_is_refused(ir, name):
    edit_json(ir, setter("layers", 0, "name", name))
    refused(ir, "network.json: layer: name:", "is not a layer name")


def test_longest_layer_name_is_accepted(ir, tmp_path):
    """The limit is a limit, not an off-by-one: 64 characters load, generate and keep their name."""
    network = random_network("conv4k3 linear3", (1, 6, 6))
    names = [f"{i}".rjust(MAX_NAME, "n") for i in range(len(network.layers))]
    layers = tuple(_renamed(layer, name) for layer, name in zip(network.layers, names, strict=True))
    folder = save(Network("n" * MAX_NAME, network.input_shape, network.a_bits, layers), tmp_path / "long")
    assert [layer.name for layer in load(folder).layers] == names
    generate_both(folder, tmp_path / "OUT")
    assert f"struct l0_{names[0]} {{" in (tmp_path / "OUT" / "hls" / "src" / "layers.h").read_text()


def _renamed(layer, name):
    fields = {key: getattr(layer, key) for key in layer.__dataclass_fields__}
    return type(layer)(**{**fields, "name": name})


def test_duplicate_layer_name_is_refused(ir):
    edit_json(ir, setter("layers", 2, "name", "conv0"))
    refused(ir, "network.json: layer 'conv0': name: used twice")


@pytest.mark.parametrize("name", [INJECTION, "x\n#include </etc/passwd>", "../x", "a/b", ".hidden", "-rf",
                                  "trailing.", "trailing\\", "a b", "", "n" * (MAX_NAME + 1), 1, None])
def test_hostile_network_name_is_refused(ir, name):
    edit_json(ir, setter("name", name))
    refused(ir, "network.json: network: name:", "is not a network name")


@pytest.mark.parametrize("name", ["lenet5", "digits-cnn", "random-7", "vgg_small.v2", "A"])
def test_plain_network_names_load(ir, name):
    edit_json(ir, setter("name", name))
    assert load(ir).name == name


def test_names_export_and_random_produce_are_valid():
    """`pyflow random` names (conv0, flatten3_, random-<seed>) and export's (stem of the model spec)."""
    network = random_network("conv4k3 maxpool2 avgpool1 linear3", (1, 8, 8), seed=3)
    assert [layer.name for layer in network.layers] == ["conv0", "maxpool1", "avgpool2", "flatten3_", "linear3"]
    assert network.name == "random-3"
    assert _network_name("pyflow.models:digits-cnn") == "digits-cnn"
    assert _network_name("my models/our net (v2).py:Net") == "Net"
    assert _network_name("my models/our net (v2).py") == "our_net__v2_"
    assert safe_network_name("../.hidden") == "_.hidden"
    assert safe_network_name("...") == "network"
    assert len(safe_network_name("x" * 500)) == MAX_NAME


# --- numbers of network.json ------------------------------------------------------------------------------

BAD_INTS = [10**30, 2**63, -1, 4.0, "4", True, None, [4]]
INT_FIELDS = [(0, "conv0", key) for key in ("out_channels", "kernel", "stride", "padding", "pe", "simd",
                                              "in_bits", "out_bits", "acc_bits", "shift")] + \
             [(3, "avgpool3", key) for key in ("kernel", "stride", "in_bits", "m", "b", "shift")] + \
             [(4, "flatten4_", "in_bits"), (5, "linear4", "tiles_kept"), (5, "linear4", "tiles_total")]


@pytest.mark.parametrize("value", BAD_INTS, ids=repr)
@pytest.mark.parametrize("position,layer,key", INT_FIELDS, ids=lambda v: str(v))
def test_bad_layer_integer_is_refused(ir, position, layer, key, value):
    if value == -1 and key in ("m", "b"):
        value = -(2**63)  # -1 is a fine signed multiplier or bias
    edit_json(ir, setter("layers", position, key, value))
    refused(ir, f"network.json: layer '{layer}': {key}:")


@pytest.mark.parametrize("value", BAD_INTS, ids=repr)
@pytest.mark.parametrize("key", ["a_bits", "input_bits", "schema_version"])
def test_bad_network_integer_is_refused(ir, key, value):
    edit_json(ir, setter(key, value))
    refused(ir, "network.json: ", key)


@pytest.mark.parametrize("shape,fragment", [
    ([1, 8], "must be a list of 3"), ([1, 8, 8, 8], "must be a list of 3"), ("188", "must be a list of 3"),
    ({"c": 1}, "must be a list of 3"), (7, "must be a list of 3"), ([0, 8, 8], "input_shape[0]: 0 is outside"),
    ([1, 100000, 100000], "input_shape[1]: 100000 is outside"), ([2, 4096, 4096], "more than 16777216 elements"),
    ([1, 8.0, 8], "input_shape[1]: must be an integer"), ([1, True, 8], "input_shape[1]: must be an integer"),
])
def test_bad_input_shape_is_refused(ir, shape, fragment):
    edit_json(ir, setter("input_shape", shape))
    refused(ir, "network.json: network: ", fragment)


def test_bad_layer_shape_is_refused(ir):
    edit_json(ir, setter("layers", 2, "in_shape", [6, 4, "4"]))
    refused(ir, "network.json: layer 'conv2': in_shape[2]: must be an integer")


@pytest.mark.parametrize("value", [0, 1, "true", None, [True]], ids=repr)
def test_bad_boolean_is_refused(ir, value):
    edit_json(ir, setter("layers", 5, "is_output", value))
    refused(ir, "network.json: layer 'linear4': is_output: must be true or false")


@pytest.mark.parametrize("edit,fragments", [
    (setter("layers", 0, "evil", 1), ("layer 'conv0': 'evil': unknown field of a matrix layer",)),
    (setter("layers", 1, "words", [1]), ("layer 'maxpool1': 'words': unknown field of a pool layer",)),
    (setter("evil", 1), ("network: 'evil': unknown field of the network",)),
    (lambda d: d["layers"][0].pop("simd"), ("layer 'conv0': simd: missing",)),
    (lambda d: d.pop("layers"), ("network: layers: missing",)),
    (lambda d: d.pop("input_bits"), ("network: input_bits: missing",)),
    (setter("layers", {"conv0": {}}), ("network: layers: must be a list",)),
    (setter("layers", []), ("network: layers: must be a list of 1 to 256",)),
    (setter("layers", [{}] * 300), ("network: layers: must be a list of 1 to 256",)),
    (setter("layers", 2, 5), ("network: layers[2]: must be a JSON object",)),
    (setter("layers", 0, "type", "exec"), ("layer 'conv0': type: must be one of matrix, pool, flatten",)),
    (setter("layers", 0, "kind", "conv\n"), ("layer 'conv0': kind: must be one of conv, linear",)),
    (setter("layers", 1, "kind", "sumpool"), ("layer 'maxpool1': kind: must be one of maxpool, avgpool",)),
])
def test_bad_structure_is_refused(ir, edit, fragments):
    edit_json(ir, edit)
    refused(ir, "network.json: ", *fragments)


def test_document_must_be_an_object(ir):
    (ir / NETWORK_FILE).write_text("[1, 2]")
    refused(ir, "network.json: must be a JSON object")


@pytest.mark.parametrize("text,fragment", [
    ('{"a_bits": NaN}', "NaN is not a number JSON allows"), ('{"a_bits": -Infinity}', "-Infinity is not"),
    ('{"a_bits": 8, "a_bits": 4}', "key 'a_bits' appears twice"), ("[" * 100000, "not valid JSON"),
    ('{"a_bits": 1' + "0" * 5000 + "}", "not valid JSON"), ("\xff\xfe", "not valid JSON"),
])
def test_unparsable_json_is_refused(ir, text, fragment):
    (ir / NETWORK_FILE).write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")
    refused(ir, "network.json: unreadable IR file", fragment)


DEEP = json.loads("[" * 40 + "]" * 40)


@pytest.mark.parametrize("meta,fragment", [
    ([1], "network: meta: must be a JSON object"), ({"keep": "<script>"}, "meta.keep: must be a fraction"),
    ({"keep": 2}, "meta.keep: must be a fraction"), ({"keep": True}, "meta.keep: must be a fraction"),
    ({"keep": {"conv0": -0.5}}, "meta.keep.'conv0': must be a fraction"),
    ({"compression": {"layers": {"conv0": {"requested_keep": 10**30}}}}, "requested_keep: must be a fraction"),
    ({"compression": {"layers": {"conv0": {"tiles_all_zero": "x"}}}}, "tiles_all_zero: must be an integer"),
    ({"compression": []}, "meta.compression: must be"), ({"x": DEEP}, "nested deeper than 32"),
])
def test_bad_meta_is_refused(ir, meta, fragment):
    edit_json(ir, setter("meta", meta))
    refused(ir, "network.json: ", fragment)


def test_free_form_meta_loads(ir):
    """meta stays free-form: hostile strings in it load (they reach no template and no path)."""
    edit_json(ir, setter("meta", "notes", INJECTION))
    assert load(ir).meta["notes"] == INJECTION


# --- arrays of weights.npz --------------------------------------------------------------------------------

def edit_member(folder, key, data):
    members = [(name, data if name == f"{key}.npy" else blob) for name, blob in read_members(folder / WEIGHTS_FILE)]
    write_members(folder / WEIGHTS_FILE, members)


def array_of(folder, key):
    with np.load(folder / WEIGHTS_FILE) as npz:
        return npz[key]


@pytest.mark.parametrize("key,make,fragment", [
    ("conv0.m", lambda a: a.astype(np.float64), "m: must be an integer array, got dtype float64"),
    ("conv0.words", lambda a: a.astype(bool), "words: must be an integer array, got dtype bool"),
    ("conv0.b", lambda a: a.astype(np.complex128), "b: must be an integer array, got dtype complex128"),
    ("conv0.words", lambda a: a[None], "words: 3-dimensional"),
    ("conv0.m", lambda a: a[:-1], "m: shape (5,), expected (6,)"),
    ("conv0.m", lambda a: a[:, None], "m: shape (6, 1), expected (6,)"),
    ("conv0.col_idx", lambda a: np.asarray(a[0]), "col_idx: shape (), expected (n_kept,)"),
    ("conv0.words", lambda a: a[:, :-1], "words: shape"),
    ("conv0.m", lambda a: a * 0 + (1 << 40), "m: values must lie in [-32768, 32767]"),
    ("linear4.b", lambda a: np.full_like(a, -(2**63)), "b: values must lie in"),
    ("conv0.row_ptr", lambda a: a - 1, "row_ptr: values must lie in [0,"),
    ("conv0.row_ptr", lambda a: a.astype(np.uint64) - np.uint64(1), "row_ptr: values must lie in [0,"),
    ("conv0.row_ptr", lambda a: a[::-1], "row_ptr: not a CSR pointer"),
    ("conv0.col_idx", lambda a: a + 10_000, "col_idx: tile index out of range"),
    ("conv0.col_idx", lambda a: a[::-1], "col_idx: column folds of output fold"),
    ("conv0.words", lambda a: a.astype(np.int64) + 256, "words: values must lie in [0, 255]"),
    ("conv0.words", lambda a: a | 0b10, "words: invalid 2-bit weight code 10"),
])
def test_bad_array_is_refused(ir, key, make, fragment):
    edit_member(ir, key, npy_bytes(make(array_of(ir, key))))
    refused(ir, f"weights.npz: layer '{key.split('.')[0]}': ", fragment)


@pytest.mark.parametrize("header,fragment", [
    (("|O", (6,)), "m: must be an integer array, got dtype object"),
    (("<U3", (6,)), "must be an integer array"), (("|V8", (6,)), "must be an integer array"),
    (("<i8", (10**6, 10**6)), "exceeds the 256 MiB array budget"), (("<i8", (2**62,)), "exceeds"),
    (("<i8", (-1,)), "negative size in shape (-1,)"), (("<i8", (-4, -4)), "negative size"),
    (("<i8", (6,)), "m: truncated (0 of 48 bytes)"), (("<i8", (2, 3, 4)), "3-dimensional"),
])
def test_bad_npy_header_is_refused(ir, header, fragment):
    edit_member(ir, "conv0.m", npy_header(*header))
    refused(ir, "weights.npz: layer 'conv0': ", fragment)


def test_fortran_order_array_loads(ir):
    """Column-major storage is a legal .npy: the values, not the memory order, are checked."""
    words = array_of(ir, "conv2.words")
    edit_member(ir, "conv2.words", npy_bytes(np.asfortranarray(words)))
    assert np.array_equal(load(ir).layers[2].words, words)


@pytest.mark.parametrize("change,fragment", [
    (lambda m: [*m, ("x.y.npy", npy_bytes(np.zeros(3, np.int64)))], "array 'x.y': unknown"),
    (lambda m: [*m, ("maxpool1.m.npy", npy_bytes(np.zeros(3, np.int64)))], "array 'maxpool1.m': unknown"),
    (lambda m: [*m, m[0]], "appears twice"),
    (lambda m: [*m, ("../../etc/passwd", b"x")], "is not a .npy array"),
    (lambda m: [item for item in m if item[0] != "conv2.words.npy"], "layer 'conv2': missing array 'words'"),
    (lambda m: [], "missing array"),
])
def test_bad_npz_members_are_refused(ir, change, fragment):
    write_members(ir / WEIGHTS_FILE, change(read_members(ir / WEIGHTS_FILE)))
    refused(ir, "weights.npz", fragment)


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"PK\x03\x04" + b"\0" * 40,
                                    lambda b: b[:200] + bytes(x ^ 0x55 for x in b[200:260]) + b[260:]])
def test_damaged_npz_is_refused(ir, damage):
    path = ir / WEIGHTS_FILE
    path.write_bytes(damage(path.read_bytes()))
    refused(ir, "weights.npz", "unreadable IR file")


# --- networks built in Python -----------------------------------------------------------------------------

def _conv(**changes):
    matrix = np.zeros((4, 9), dtype=np.int8)
    matrix[0, 0] = 1
    fields = dict(name="conv0", kind="conv", in_shape=(1, 4, 4), out_channels=4, kernel=3, stride=1, padding=1,
                  pe=4, simd=1, in_bits=8, out_bits=32, acc_bits=14, shift=0, m=np.ones(4), b=np.zeros(4),
                  is_output=True)
    packed = pack(matrix, np.ones((1, 9), bool), 4, 1)
    return MatrixLayer(**{**fields, "words": packed.words, "row_ptr": packed.row_ptr, "col_idx": packed.col_idx,
                          **changes})


@pytest.mark.parametrize("build,fragment", [
    (lambda: _conv(name=INJECTION), "layer: name: 'x;\\n}\\nint pwned"),
    (lambda: _conv(name="../x"), "is not a layer name"),
    (lambda: _conv(kernel=10**30), "layer 'conv0': kernel: 1000000000000000000000000000000 is outside"),
    (lambda: _conv(pe=4.0), "layer 'conv0': pe: must be an integer"),
    (lambda: _conv(out_channels=np.int64(4), stride=True), "layer 'conv0': stride: must be an integer"),
    (lambda: _conv(is_output="yes"), "layer 'conv0': is_output: must be true or false"),
    (lambda: _conv(in_shape=(1, 100000, 100000)), "layer 'conv0': in_shape[1]: 100000 is outside"),
    (lambda: _conv(m=np.full(4, 0.5)), "layer 'conv0': m: must hold whole numbers"),
    (lambda: _conv(m=np.array(["1"] * 4)), "layer 'conv0': m: must be an integer array"),
    (lambda: _conv(pe=4096, simd=4096), "exceeds 65536 lanes"),
    (lambda: _conv(in_shape=(4096, 64, 64), out_channels=4096), "more than 16777216 weights"),
    (lambda: PoolLayer("p", "maxpool", (1, 4, 4), 2, 2, 8, m=2**20), "layer 'p': m: 1048576 is outside"),
    (lambda: FlattenLayer("f", (1, 4, 4), "8"), "layer 'f': in_bits: must be an integer"),
    (lambda: Network("n\n", (1, 4, 4), 8, (_conv(),)), "network: name:"),
    (lambda: Network("n", (1, 4, 4), 8, (_conv(), _conv())), "layer 'conv0': name: used twice"),
    (lambda: Network("n", (1, 4, 4), 8, ("conv0",)), "network: layers[0]: str is not an IR layer"),
    (lambda: Network("n", (1, 4, 4), 8, (_conv(),), meta={"keep": float("nan")}), "meta: nan is not a finite"),
    (lambda: Network("n", (1, 4, 4), 8, (_conv(),), meta={1: "x"}), "meta: key 1 is not a string"),
    (lambda: Network("n", (1, 4, 4), 8, (_conv(),), meta={"x": object()}), "object is not a JSON value"),
])
def test_construction_refuses_hostile_fields(build, fragment):
    with pytest.raises(PyflowError) as info:
        build()
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_construction_accepts_the_plain_layer():
    """The helper above builds a valid layer: the refusals come from the one changed field."""
    network = Network("n", (1, 4, 4), 8, (_conv(),))
    assert network.layers[0].m.dtype == np.int64 and not network.layers[0].m.flags.writeable


# --- end to end: `pyflow generate` on a hostile IR --------------------------------------------------------

@pytest.mark.parametrize("edit", [setter("layers", 0, "name", INJECTION), setter("layers", 2, "name", "../../x"),
                                  setter("name", "x\n#error injected"), setter("layers", 0, "pe", 10**30),
                                  setter("input_shape", [1, 100000, 100000])])
def test_generate_on_hostile_ir_exits_2_and_writes_nothing(ir, tmp_path, edit):
    edit_json(ir, edit)
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run([sys.executable, "-m", "pyflow", "generate", str(ir), "--backend", "both",
                             "--out", str(tmp_path / "OUT")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("pyflow: error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "OUT").exists()
    assert sorted(tmp_path.rglob("*")) == before


def generate_both(ir, out):
    result = subprocess.run([sys.executable, "-m", "pyflow", "generate", str(ir), "--backend", "both",
                             "--out", str(out)], capture_output=True, text=True, cwd=out.parent)
    assert result.returncode == 0, result.stderr


def test_generate_on_the_valid_ir_writes_out(ir, tmp_path):
    """The same command on the unbroken IR succeeds: the refusals above are about the edits."""
    generate_both(ir, tmp_path / "OUT")
    assert (tmp_path / "OUT" / "hls" / "src" / "layers.h").is_file()


@pytest.mark.parametrize("kwargs,fragment", [
    ({"seed": -1}, "random_network: seed: -1 is outside"), ({"pe": 0}, "random_network: pe: 0 is outside"),
    ({"simd": 2.0}, "random_network: simd: must be an integer"),
    ({"folding": {"conv0": (4, 10**6)}}, "random_network: conv0.simd: 1000000 is outside"),
    ({"input_shape": (1, 100000, 100000)}, "random_network: input_shape[1]: 100000 is outside"),
])
def test_random_refuses_bad_arguments(kwargs, fragment):
    """`pyflow random` arguments fail in one line before a calibration batch of their size is allocated."""
    with pytest.raises(PyflowError) as info:
        random_network("conv4k3 linear3", **{"input_shape": (1, 6, 6), **kwargs})
    assert fragment in str(info.value), str(info.value)
