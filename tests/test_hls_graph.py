"""HLS C++ backend on residual graphs: forks, signed branches and adds run bit-exact against the golden DAG."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pyflow import golden
from pyflow.boards import load_board
from pyflow.codegen import hls
from pyflow.hw.cycles import bank_plan
from pyflow.hw.sizing import network_sizing
from pyflow.ir.check import check_network
from pyflow.ir.model import INPUT, AddLayer, FlattenLayer, Layer, Network, signed_output
from pyflow.random_ir import LayerSpec, _calibrate, _matrix, _replace, random_network
from pyflow.sim import csim

BOARD = load_board("pynq-z2")
A_BITS = 8
ADD_SHIFT = 8
STREAM = re.compile(r"#pragma HLS STREAM variable=(\w+) type=pipo depth=(\d+)")


class Builder:
    """A residual network built layer by layer, each layer calibrated on the outputs of the ones before."""

    def __init__(self, shape: tuple[int, int, int], seed: int, pe: int = 4, simd: int = 4) -> None:
        self.rng = np.random.default_rng(seed)
        self.pe, self.simd, self.shape = pe, simd, shape
        calib = self.rng.integers(0, 256, size=(32, *shape), dtype=np.uint8)
        self.values = {INPUT: calib.transpose(0, 2, 3, 1).astype(np.int64)}
        self.layers: list[Layer] = []

    def add(self, layer: Layer) -> str:
        self.layers.append(layer)
        self.values[layer.name] = golden.run_layer(layer, *(self.values[name] for name in layer.inputs))
        return layer.name

    def shape_of(self, name: str) -> tuple[int, int, int]:
        _, h, w, c = self.values[name].shape
        return (c, h, w)

    def conv(self, name: str, source: str, channels: int, kernel: int = 3, stride: int = 1, padding: int = 1,
             signed: bool = False, last: bool = False) -> str:
        spec = LayerSpec("linear" if last else "conv", channels, kernel, stride, padding)
        layer = _matrix(name, spec, self.shape_of(source), 8, A_BITS, self.pe, self.simd, kernel, (0.6, None), last,
                        self.rng)
        layer = _calibrate(layer, golden.accumulate(layer, self.values[source]), A_BITS, self.rng)
        centre = (1 << (A_BITS - 1)) << layer.shift if signed else 0  # a signed branch centres on 0
        return self.add(_replace(layer, signed=signed, b=layer.b - centre, inputs=(source,)))

    def residual(self, name: str, a: str, b: str) -> str:
        """An add whose output spreads over the activation range on the calibration batch."""
        m_a, m_b = self.multiplier(), self.multiplier()
        total = self.values[a] * m_a + self.values[b] * m_b
        c = int(((1 << (A_BITS - 1)) << ADD_SHIFT) - total.mean())
        signed = [signed_output(self.producer(source)) for source in (a, b)]
        return self.add(AddLayer(name, self.shape_of(a), A_BITS, (a, b), *signed, m_a, m_b, c, ADD_SHIFT, A_BITS))

    def multiplier(self) -> int:
        return int(self.rng.integers(64, 200)) * int(self.rng.choice([-1, 1], p=[0.2, 0.8]))

    def logits(self, source: str) -> None:
        flatten = self.add(FlattenLayer(f"flatten_{source}", self.shape_of(source), A_BITS, inputs=(source,)))
        self.conv("fc", flatten, 5, kernel=1, padding=0, last=True)

    def producer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def network(self, name: str) -> Network:
        return check_network(Network(name, self.shape, A_BITS, tuple(self.layers)))


def identity_skip(seed: int) -> Network:
    """conv -> [conv -> conv(signed)] + identity -> add."""
    net = Builder((3, 6, 6), seed)
    stem = net.conv("stem", INPUT, 8)
    branch = net.conv("branch1", net.conv("branch0", stem, 8), 8, signed=True)
    net.logits(net.residual("add", stem, branch))
    return net.network("identity-skip")


def conv_shortcut(seed: int) -> Network:
    """conv -> [conv s2 -> conv(signed)] + [1x1 conv s2 (signed)] -> add: both branches signed."""
    net = Builder((3, 8, 8), seed, pe=3, simd=2)
    stem = net.conv("stem", INPUT, 6)
    branch = net.conv("branch1", net.conv("branch0", stem, 10, stride=2), 10, signed=True)
    shortcut = net.conv("shortcut", stem, 10, kernel=1, stride=2, padding=0, signed=True)
    net.logits(net.residual("add", branch, shortcut))
    return net.network("conv-shortcut")


def fork_into_two_adds(seed: int) -> Network:
    """stem is read by a conv and two adds (a chain of two forks); the image itself is a fork too."""
    net = Builder((4, 5, 5), seed)
    stem = net.conv("stem", INPUT, 4)
    first = net.residual("add1", stem, net.conv("res1", stem, 4, signed=True))
    second = net.residual("add2", net.conv("res2", first, 4, signed=True), stem)
    image_skip = net.residual("add3", net.conv("res3", second, 4, signed=True), INPUT)
    net.logits(net.residual("add4", image_skip, image_skip))  # one layer read twice by the same add
    return net.network("fork-two-adds")


def image_add_first(seed: int) -> Network:
    """The first layer is an add reading the image twice (the top's image type comes from the add)."""
    net = Builder((2, 3, 3), seed)
    net.logits(net.residual("add", INPUT, INPUT))
    return net.network("image-add-first")


GRAPHS = [identity_skip, conv_shortcut, fork_into_two_adds, image_add_first]
DEEP_SKIPS = {identity_skip, fork_into_two_adds}  # a skip needs more than a ping-pong pair (conv_shortcut's
                                                   # branches take about as long as each other)


@pytest.mark.csim
@pytest.mark.parametrize("build", GRAPHS, ids=lambda build: build.__name__)
def test_graph_csim_matches_golden(build, tmp_path: Path) -> None:
    network = build(seed=1)
    assert not network.is_chain
    project = hls.generate(network, BOARD, tmp_path / "prj")
    report = csim.run_csim(project, vectors=6, seed=3)
    assert report["mismatches"] == 0 and report["bit_exact"] is True
    assert report["outputs_compared"] == 6 * network.num_classes


def test_signed_branches_and_adds_exercise_their_range() -> None:
    """The calibration must leave the clamps something to do, else the bit-exact test proves little."""
    network = fork_into_two_adds(seed=1)
    images = hls.random_images(network, 16, seed=3)
    outputs = dict(zip((layer.name for layer in network.layers), golden.trace(network, images), strict=True))
    for name in ("res1", "res2", "res3"):
        assert outputs[name].min() < 0 < outputs[name].max()
    for name in ("add1", "add2", "add3", "add4"):
        assert 0 < np.median(outputs[name]) < 255 and outputs[name].max() <= 255


def stream_depths(project: Path) -> dict[str, int]:
    return {name: int(depth) for name, depth in STREAM.findall((project / "src" / "top.cpp").read_text())}


@pytest.mark.parametrize("build", GRAPHS, ids=lambda build: build.__name__)
def test_stream_depth_of_every_add_input_is_the_bank_plan(build, tmp_path: Path) -> None:
    network = build(seed=1)
    project = hls.generate(network, BOARD, tmp_path / "prj")
    top = (project / "src" / "top.cpp").read_text()
    plan = bank_plan(network)
    expected = {array: plan[add, slot][0] for (add, slot), array in add_inputs(network, top).items()}
    assert stream_depths(project) == expected
    assert (max(expected.values()) > 2) == (build in DEEP_SKIPS)
    for (add, slot), array in add_inputs(network, top).items():
        banks, why = plan[add, slot]
        assert (f"    // {array}, input {slot} of {add}, holds {banks} images: {why}\n"
                f"#pragma HLS STREAM variable={array} type=pipo depth={banks}\n") in top


def add_inputs(network: Network, top: str) -> dict[tuple[str, int], str]:
    """The arrays each add reads, from its call in the generated top."""
    found = {}
    for layer in network.layers:
        if isinstance(layer, AddLayer):
            call = re.search(rf"pyflow::add_layer<l\d+_{layer.name}>\((\w+), (\w+), \w+\);", top)
            found.update({(layer.name, slot): call.group(slot + 1) for slot in range(2)})
    return found


def test_bank_plan_is_the_rtl_sizing() -> None:
    network = identity_skip(seed=1)
    sizing = network_sizing(network)
    for (name, slot), (banks, why) in bank_plan(network).items():
        buffer = sizing.engine(name).in_buffers[slot]
        assert (buffer.banks, buffer.banks_why) == (banks, why)


def test_fork_chain_wiring(tmp_path: Path) -> None:
    project = hls.generate(fork_into_two_adds(seed=1), BOARD, tmp_path / "prj")
    top = (project / "src" / "top.cpp").read_text()
    assert "// stem is read by res1, add1, add2: one fork per extra reader" in top
    stem = re.search(r"run_layer<(l0_stem)>\(image_0, (buf1)\);", top)
    assert stem, top
    assert "pyflow::fork<l0_stem::out_t, l0_stem::OUT_SIZE>(buf1, buf1_0, buf1_f1);" in top
    assert "pyflow::fork<l0_stem::out_t, l0_stem::OUT_SIZE>(buf1_f1, buf1_1, buf1_2);" in top
    assert "pyflow::fork<top_in_t, TOP_IN_SIZE>(image, image_0, image_1);" in top
    assert re.search(r"add_layer<l\d+_add4>\((buf\d+)_0, \1_1, buf\d+\);", top)


def test_a_chain_has_no_fork_and_no_stream_pragma(tmp_path: Path) -> None:
    network = random_network("conv6k3s1p1 maxpool2 linear4", (3, 6, 6), pe=3, simd=2, seed=1)
    top = (hls.generate(network, BOARD, tmp_path / "prj") / "src" / "top.cpp").read_text()
    assert "fork" not in top and "STREAM" not in top
    assert "pyflow::run_layer<l0_conv0>(image, buf1);" in top and "run_layer<l3_linear2>(buf3, logits);" in top


@pytest.mark.csim
def test_planted_bug_in_an_add_is_a_mismatch(tmp_path: Path) -> None:
    network = conv_shortcut(seed=1)
    project = hls.generate(network, BOARD, tmp_path / "prj")
    layers = project / "src" / "layers.h"
    m_a = network.producer("add").m_a
    text = layers.read_text()
    assert text.count(f"M_A = {m_a},") == 1
    layers.write_text(text.replace(f"M_A = {m_a},", f"M_A = {m_a + 1},"))
    report, outcome = csim.simulate(project, vectors=6, seed=3)
    assert outcome.returncode == 1 and "FAIL" in outcome.output and "mismatch: image" in outcome.output
    assert report["bit_exact"] is False and report["mismatches"] > 0
