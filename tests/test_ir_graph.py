"""The IR as a DAG (schema 2): inputs, forks, residual adds, signed branch ends; version-1 files still load.

Hostile graphs (a later or unknown input, a signed activation read by a conv, an unread layer, …) are
refused in one line naming the layer; the golden model executes the add's integer formula; the cycle
model gives a skip buffer the banks its branch needs and every chain buffer two.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pyflow import golden
from pyflow.errors import PyflowError
from pyflow.hw import cycles
from pyflow.hw.sizing import network_sizing
from pyflow.ir import INPUT, AddLayer, load, save
from pyflow.ir.io import NETWORK_FILE
from pyflow.random_ir import random_network

V1_FOLDER = Path(__file__).parent / "data" / "ir_v1"  # written by pyflow at ef17f98, before graphs
RESIDUAL = "conv8k3p1 res8 res16s2 avgpool2 linear10"  # conv0 res1a res1b res1 res2a res2b res2p res2 …


@pytest.fixture(scope="module")
def residual():
    return random_network(RESIDUAL, (1, 8, 8), pe=4, simd=4, keep=0.5, seed=1)


def test_a_version_1_file_loads_as_a_chain(tmp_path):
    assert json.loads((V1_FOLDER / NETWORK_FILE).read_text())["schema_version"] == 1
    network = load(V1_FOLDER)
    assert [network.inputs_of(layer) for layer in network.layers] == [
        (INPUT,), ("conv0",), ("maxpool1",), ("flatten2_",)]
    assert network.is_chain
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 6, 6), dtype=np.uint8)
    again = load(save(network, tmp_path / "v2"))  # written back as version 2, explicit inputs
    assert json.loads((tmp_path / "v2" / NETWORK_FILE).read_text())["schema_version"] == 2
    assert (golden.run(again, images) == golden.run(network, images)).all()


def test_version_1_refuses_graph_fields(tmp_path):
    folder = shutil.copytree(V1_FOLDER, tmp_path / "ir")
    doc = json.loads((folder / NETWORK_FILE).read_text())
    doc["layers"][1]["inputs"] = ["conv0"]
    (folder / NETWORK_FILE).write_text(json.dumps(doc))
    with pytest.raises(PyflowError, match=r"layer 'maxpool1': 'inputs': unknown field of a pool layer"):
        load(folder)


def test_residual_network_round_trips(residual, tmp_path):
    adds = [layer for layer in residual.layers if isinstance(layer, AddLayer)]
    assert [add.inputs for add in adds] == [("res1b", "conv0"), ("res2b", "res2p")]
    assert [layer.name for layer in residual.consumers("conv0")] == ["res1a", "res1"]  # a fork
    assert not residual.is_chain
    again = load(save(residual, tmp_path / "ir"))
    images = np.random.default_rng(1).integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    assert (golden.run(again, images) == golden.run(residual, images)).all()


def test_golden_add_is_the_integer_formula(residual):
    images = np.random.default_rng(2).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    outputs = dict(zip([layer.name for layer in residual.layers], golden.trace(residual, images), strict=True))
    add = next(layer for layer in residual.layers if layer.name == "res1")
    a, b = outputs["res1b"], outputs["conv0"]
    assert a.min() < 0 <= b.min()  # the branch end is signed, the identity skip is not
    expected = np.clip((a * add.m_a + b * add.m_b + add.c) >> add.shift, 0, 255)
    assert (outputs["res1"] == expected).all()
    branch = next(layer for layer in residual.layers if layer.name == "res1b")
    assert branch.signed and outputs["res1b"].min() >= -128 and outputs["res1b"].max() <= 127


def _edit(folder, edit):
    doc = json.loads((folder / NETWORK_FILE).read_text())
    edit({layer["name"]: layer for layer in doc["layers"]}, doc)
    (folder / NETWORK_FILE).write_text(json.dumps(doc))
    return folder


def _set(layer, key, value):
    return lambda layers, doc: layers[layer].__setitem__(key, value)


@pytest.mark.parametrize(("edit", "message"), [
    (_set("res1", "inputs", ["res1b", "nowhere"]), "layer 'res1': inputs: 'nowhere' is no layer"),
    (_set("res1a", "inputs", ["res2"]), "'res2' is a later layer (layers must be in topological order)"),
    (_set("res1", "inputs", ["res1b"]), "layer 'res1': inputs: must be a list of 2 layer names"),
    (_set("res2a", "inputs", ["input"]), "layer 'res2a': in_shape: (8, 8, 8) does not match the output of 'input'"),
    (_set("res1", "b_signed", True), "layer 'res1': b_signed: True, but 'conv0' is not signed"),
    (_set("res1b", "signed", False), "layer 'res1': a_signed: True, but 'res1b' is not signed"),
    (_set("avgpool3", "name", "input"), "'input' names the network's input"),
    (_set("res1a", "inputs", ["bad name"]), "'bad name' is not a layer name"),
    (_set("res1", "c", 1 << 40), "layer 'res1': c:"),
    (_set("res2a", "relu", True), "layer 'res2a': relu: only the output layer has one"),
])
def test_hostile_graphs_are_refused_in_one_line(residual, tmp_path, edit, message):
    folder = _edit(save(residual, tmp_path / "ir"), edit)
    with pytest.raises(PyflowError) as info:
        load(folder)
    assert "\n" not in str(info.value) and message in str(info.value), str(info.value)


def test_signed_activation_read_by_a_conv_is_refused(residual, tmp_path):
    def edit(layers, doc):  # res2a (a conv) now reads the signed res1b of the same shape
        layers["res2a"]["inputs"] = ["res1b"]
    folder = _edit(save(residual, tmp_path / "ir"), edit)
    with pytest.raises(PyflowError, match="layer 'res2a': reads the signed output of 'res1b'; only an add"):
        load(folder)


def test_unread_layer_and_read_logits_are_refused(residual, tmp_path):
    def orphan(layers, doc):  # res2 reads res2b twice: res2p is read by nobody
        layers["res2"]["inputs"] = ["res2b", "res2b"]
        layers["res2"]["b_signed"] = True
    with pytest.raises(PyflowError, match="layer 'res2p': no layer reads its output"):
        load(_edit(save(residual, tmp_path / "a"), orphan))


def test_chain_buffers_have_two_banks_and_the_skip_more():
    chain = random_network("conv8k3p1 conv8k3p1 conv8k3p1 linear4", (1, 8, 8), pe=2, simd=2, seed=0)
    assert {buffer.banks for engine in network_sizing(chain).engines for buffer in engine.in_buffers} == {2}
    deep = random_network("conv8k3p1 res8 linear4", (1, 8, 8), pe=2, simd=4, seed=0)
    plan = cycles.bank_plan(deep)
    # the identity skip (add input 1, from conv0) waits while res1a and res1b each take a whole interval
    banks, why = plan["res1", 1]
    start, interval = cycles.schedule(deep), cycles.interval_cycles(deep)
    held = start["res1"] + cycles.START_CYCLES + cycles.modelled_cycles(deep.layers[3]) - start["conv0"]
    assert banks == -(-held // interval) >= 3
    assert f"held {held} cycles / interval {interval} = {banks} banks" in why
    assert plan["res1", 0][0] == 2


def test_latency_is_the_longest_path(residual):
    from pyflow.hw.engines import engines

    by_name = {layer.name: cycles.modelled_cycles(layer) for layer in engines(residual)}
    main = sum(by_name[n] for n in ("conv0", "res1a", "res1b", "res1", "res2a", "res2b", "res2", "avgpool3",
                                    "linear4"))
    assert cycles.latency_cycles(residual) == main  # the projection (res2p) is the shorter branch
    assert main < sum(by_name.values())
