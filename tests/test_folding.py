"""Sparsity-aware folding: balance on the digits network, overrides, budget, asked vs reached, bad input."""

from __future__ import annotations

import pytest

from pyflow.boards import load_board
from pyflow.errors import PyflowError
from pyflow.folding import (
    DIGITS_LAYERS,
    check_folding,
    compare_folding,
    digits_comparison,
    network_geometries,
    plan_folding,
    uniform_folding,
)
from pyflow.hw.cycles import modelled_cycles
from pyflow.hw.resources import lane_budget
from pyflow.random_ir import random_network

DIGITS_SPEC = "conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10"


@pytest.fixture(scope="module")
def pynq():
    return load_board("pynq-z2")


def test_digits_balance_sparsity_aware_vs_uniform(pynq):
    aware, uniform, text = digits_comparison(pynq, keep=0.25)
    assert aware.mean_balance >= 0.9
    assert uniform.mean_balance < aware.mean_balance
    assert aware.slowest_cycles < uniform.slowest_cycles
    assert [(f.pe, f.simd) for f in uniform.layers] == [(8, 8)] * 3
    assert aware.lanes <= aware.lane_budget == lane_budget(pynq)
    assert f"{aware.mean_balance:.1%} sparsity-aware vs {uniform.mean_balance:.1%} uniform 8x8" in text
    print(text)


def test_digits_geometry_matches_the_ir(pynq):
    network = random_network(DIGITS_SPEC, (1, 8, 8), pe=8, simd=8, keep=0.25)
    geometries = network_geometries(network)
    fields = ("kind", "c_in", "c_out", "kernel", "stride", "padding", "in_hw", "out_hw")
    assert [tuple(getattr(g, f) for f in fields) for g in geometries] == \
        [tuple(getattr(g, f) for f in fields) for g in DIGITS_LAYERS]


def test_compress_layer_shapes_feed_the_planner(pynq):
    from pyflow.compress.api import layer_shapes

    shapes = layer_shapes("digits-cnn", "digits")
    fields = ("name", "kind", "c_in", "c_out", "kernel", "stride", "padding", "in_hw", "out_hw")
    assert [tuple(getattr(g, f) for f in fields) for g in shapes] == \
        [tuple(getattr(g, f) for f in fields) for g in DIGITS_LAYERS]
    assert shapes[-1].flat_from == (32, 2, 2) and all(g.bias for g in shapes)  # what the torch model adds
    plan = plan_folding(shapes, pynq, keep=0.25)
    assert [f.name for f in plan.layers] == [s.name for s in shapes]
    assert plan.mean_balance >= 0.9


@pytest.mark.parametrize("overrides", [{"conv1": (8, 8)}, {"conv0": (4, 1), "fc0": (2, 4)}])
def test_overrides_are_respected(pynq, overrides):
    plan = plan_folding(DIGITS_LAYERS, pynq, keep=0.25, overrides=overrides)
    folding = plan.folding()
    for name, pair in overrides.items():
        assert folding[name] == pair


@pytest.mark.parametrize("max_lanes", [40, 64, 100, 300])
def test_budget_is_respected(pynq, max_lanes):
    plan = plan_folding(DIGITS_LAYERS, pynq, keep=0.25, max_lanes=max_lanes)
    assert plan.lanes <= max_lanes
    roomier = plan_folding(DIGITS_LAYERS, pynq, keep=0.25, max_lanes=max_lanes * 2)
    assert roomier.slowest_cycles <= plan.slowest_cycles


@pytest.mark.parametrize("keep", [0.1, 0.25, 0.5, 1.0])
def test_plan_never_slower_than_uniform_within_the_same_lanes(pynq, keep):
    uniform = uniform_folding(DIGITS_LAYERS, pynq, keep)
    plan = plan_folding(DIGITS_LAYERS, pynq, keep, max_lanes=uniform.lanes)
    assert plan.lanes <= uniform.lanes
    assert plan.slowest_cycles <= uniform.slowest_cycles


def test_per_layer_keep(pynq):
    keep = {"conv0": 1.0, "conv1": 0.25, "fc0": 0.5}
    plan = plan_folding(DIGITS_LAYERS, pynq, keep)
    assert [f.requested_keep for f in plan.layers] == [1.0, 0.25, 0.5]
    for fold in plan.layers:
        assert abs(fold.achieved_keep - fold.requested_keep) <= 0.5 / fold.tiles_total + 1e-9


@pytest.mark.parametrize("seed", [0, 1])
def test_check_folding_on_an_exported_ir(pynq, seed):
    plan = plan_folding(DIGITS_LAYERS, pynq, keep=0.25)
    names = {g.name: f"{g.kind}{i}" for i, g in zip((0, 2, 4), DIGITS_LAYERS, strict=True)}
    folding = {names[name]: pair for name, pair in plan.folding().items()}
    network = random_network(DIGITS_SPEC, (1, 8, 8), keep=0.25, seed=seed, folding=folding)
    checked = check_folding(network, requested_keep=0.25)
    assert [(f.pe, f.simd) for f in checked.layers] == list(plan.folding().values())
    for fold, layer in zip(checked.layers, network.matrix_layers, strict=True):
        assert fold.cycles == modelled_cycles(layer)
        assert fold.tiles_kept == layer.n_kept and fold.requested_keep == 0.25
    assert checked.slowest_cycles == max(modelled_cycles(layer) for layer in network.matrix_layers)
    assert "checked" in checked.source


def test_compare_text_names_both(pynq):
    _, _, text = compare_folding(DIGITS_LAYERS, load_board("zcu104"), 0.5)
    assert "sparsity-aware" in text and "uniform 16x16" in text and "modelled" in text


@pytest.mark.parametrize("kwargs, message", [
    ({"keep": 0.0}, "keep must lie in (0, 1]"),
    ({"keep": {"conv0": 0.5}}, "keep has no fraction for layer 'conv1'"),
    ({"keep": 0.5, "overrides": {"nope": (1, 1)}}, "override names unknown layer 'nope'"),
    ({"keep": 0.5, "overrides": {"conv0": (0, 1)}}, "expected (pe, simd) positive integers"),
    ({"keep": 0.5, "overrides": {"conv1": (64, 64)}, "max_lanes": 100}, "the overrides alone use 4096 lanes"),
    ({"keep": 0.5, "max_lanes": 2}, "needs at least 3 lanes, over the budget of 2"),
])
def test_bad_input(pynq, kwargs, message):
    with pytest.raises(PyflowError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        plan_folding(DIGITS_LAYERS, pynq, **kwargs)


def test_bad_geometry(pynq):
    conv0 = {f: getattr(DIGITS_LAYERS[0], f) for f in ("name", "kind", "c_in", "c_out", "kernel", "stride",
                                                        "padding", "in_hw")}
    bad = [{**conv0, "out_hw": (7, 7)}]
    with pytest.raises(PyflowError, match=r"layer 'conv0': out_hw: .* \(expected \(8, 8\)\)"):
        plan_folding(bad, pynq, 0.5)
    with pytest.raises(PyflowError, match="missing field 'stride'"):
        plan_folding([{k: v for k, v in conv0.items() if k != "stride"}], pynq, 0.5)
    with pytest.raises(PyflowError, match="unknown board"):
        load_board("no-such-board")



def test_no_layer_is_planned_faster_than_the_input_stream():
    # TFC on 28x28: 784 input beats per image; the budget would buy a 34-cycle fc0, which would only idle
    from pyflow.folding import stream_beats
    from pyflow.ir.geometry import LayerGeometry

    widths = (784, 64, 64, 64, 10)
    layers = tuple(LayerGeometry(f"fc{i}", "linear", c_in, c_out) for i, (c_in, c_out) in
                   enumerate(zip(widths, widths[1:], strict=False)))
    plan = plan_folding(layers, load_board("pynq-z2"), keep=0.5)
    assert stream_beats(layers) == 784
    assert 392 <= plan.slowest_cycles + 1 <= 784  # slower than the budget allows, never slower than the stream
    assert plan.lanes < 300


def test_readers_of_a_fork_get_simd_dividing_their_channels(pynq):
    """A fork writes one pixel layout into every reader's buffer, so a residual block's first conv and its
    shortcut conv only get SIMDs dividing C_in — and the planned network generates (sizing refuses otherwise)."""
    from pyflow.hw.sizing import network_sizing

    spec = "conv14k3p1 res14 res28s2 linear10"  # left alone, the planner gives res2a SIMD 5 at 40 lanes
    network = random_network(spec, (1, 8, 8), pe=1, simd=1, seed=2)
    geometries = {g.name: g for g in network_geometries(network)}
    assert {name for name, g in geometries.items() if g.shares_input} == {"res1a", "res2a", "res2p"}
    plan = plan_folding(tuple(geometries.values()), pynq, keep=0.5, max_lanes=40)
    for name in ("res1a", "res2a", "res2p"):
        assert geometries[name].c_in % plan.folding()[name][1] == 0, plan.folding
    folded = random_network(spec, (1, 8, 8), seed=2,
                            folding=plan.folding())
    network_sizing(folded)  # the fork's readers agree on the pixel layout
