"""Compression: tile grouping in the IR's order, ternarizer, penalties, targets, config, checkpoints, CLI."""

import json
import math

import numpy as np
import pytest
import torch

from pyflow.cli import main
from pyflow.compress.chain import ChainNet
from pyflow.compress.checkpoint import load_compressed, load_state
from pyflow.compress.config import CompressConfig, parse_folding, parse_keep
from pyflow.compress.importer import trace_graph
from pyflow.compress.ternary import Geometry, TernaryMatrix, ir_matrix, penalty, tile_ids
from pyflow.compress.train import fraction_for_compression, freeze_masks
from pyflow.errors import PyflowError
from pyflow.ir.packing import pad_matrix, tiles_of
from pyflow.models import build_model

torch.set_num_threads(1)  # tiny models: one thread per pytest worker beats oversubscribed cores

TINY = {"fp_epochs": 1, "ternary_epochs": 1, "finetune_epochs": 1}


def _conv(c_in=3, c_out=5, k=3):
    return Geometry("conv0", "conv", c_in, c_out, k, 1, 1, (6, 6), True)


@pytest.mark.parametrize("pe, simd", [(1, 1), (2, 2), (4, 8), (8, 3)])
def test_tile_ids_follow_the_ir_tiles(pe, simd):
    geom = _conv()
    ids, grid = tile_ids(geom, pe, simd)
    values = np.random.default_rng(0).normal(size=geom.weight_shape)
    tiles = tiles_of(pad_matrix(values, geom.weight_shape, pe, simd), pe, simd)
    for tile in range(grid[0] * grid[1]):
        expected = np.sort(np.abs(tiles[tile // grid[1], tile % grid[1]]).ravel())
        got = np.sort(np.abs(values[ids == tile]))
        assert np.allclose(expected[-len(got):], got) and (expected[:-len(got)] == 0).all()


def test_linear_after_flatten_is_permuted_to_yxc():
    geom = Geometry("fc0", "linear", 2 * 2 * 3, 4, bias=True, flat_from=(3, 2, 2))
    weight = np.arange(4 * 12).reshape(4, 12)  # torch column c*4 + y*2 + x
    matrix = ir_matrix(weight, geom, 2, 5)
    assert matrix.shape == (4, 15)
    c, y, x = 2, 1, 0
    assert matrix[1, (y * 2 + x) * 3 + c] == weight[1, c * 4 + y * 2 + x]
    assert (matrix[:, 12:] == 0).all()


def _layer(seed=0):
    torch.manual_seed(seed)
    layer = TernaryMatrix(_conv(4, 8), 4, 4)
    layer.init_threshold()
    layer.ternary = True
    return layer


def test_ternary_codes_alpha_and_threshold_init():
    layer = _layer()
    w = layer.weight.detach()
    assert math.isclose(layer.delta.item(), 0.05 * float(w.abs().max()), rel_tol=1e-6)
    centred = w - w.mean()
    expected = torch.sign(centred) * (centred.abs() > layer.delta.detach())
    assert (layer.codes().float() == expected).all()
    z = float(layer.delta.detach() / layer.sigma())
    tail = float(layer.sigma()) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / (0.5 * math.erfc(z / math.sqrt(2)))
    assert math.isclose(float(layer.alpha()), tail, rel_tol=1e-5)
    assert torch.allclose(layer.effective_weight(), float(layer.alpha()) * expected, atol=1e-6)
    layer.alpha_mode = "empirical"
    kept = centred.abs()[expected != 0]
    assert math.isclose(float(layer.alpha()), float(kept.mean()), rel_tol=1e-5)


def test_threshold_clamped_to_three_sigma():
    layer = _layer()
    with torch.no_grad():
        layer.delta.fill_(10.0)
    layer.clamp_threshold()
    assert math.isclose(float(layer.delta.detach()), 3 * float(layer.sigma()), rel_tol=1e-6)


def test_straight_through_gradient_and_threshold_gradient():
    layer = _layer()
    x = torch.randn(2, 4, 6, 6)
    layer(x).square().sum().backward()
    reference = _layer()
    weight = reference.effective_weight().detach().requires_grad_(True)
    torch.nn.functional.conv2d(x, weight, reference.bias, 1, 1).square().sum().backward()
    assert torch.allclose(layer.weight.grad, weight.grad, atol=1e-4)  # identity STE
    assert layer.delta.grad is not None and float(layer.delta.grad) != 0.0


def test_wpc_pulls_only_tiles_below_tau_and_group_lasso_pulls_all():
    layer = _layer()
    with torch.no_grad():
        layer.weight[:4] *= 1e-3  # the tiles of output fold 0 become tiny
    penalty(layer, "wpc", 1.0).backward()
    grad = layer.weight.grad.abs()
    assert (grad[:4] > 0).all() and (grad[4:] == 0).all()
    layer.weight.grad = None
    penalty(layer, "group-lasso", 1.0).backward()
    assert (layer.weight.grad.abs()[4:] > 0).all()
    assert float(penalty(layer, "none", 1.0)) == 0.0


def _chain(folding=None):
    torch.manual_seed(0)
    ops, sources = trace_graph(build_model("digits-cnn", (1, 8, 8), 10), (1, 8, 8))
    chain = ChainNet(ops, folding or {"conv0": (8, 1), "conv1": (8, 8), "fc0": (8, 8)})
    chain.load_from(sources)
    chain.set_ternary(True)
    return chain


def test_freeze_masks_hits_the_request_and_keeps_every_output_fold():
    chain = _chain()
    freeze_masks(chain, {"conv0": 1.0, "conv1": 0.25, "fc0": 0.1})
    masks = {layer.geom.name: layer.tile_mask for layer in chain.matrices()}
    assert int(masks["conv0"].sum()) == 18 and int(masks["conv1"].sum()) == 18 and int(masks["fc0"].sum()) == 3
    assert masks["fc0"].any(dim=1).all()  # classes 8 and 9 live in the second output fold


def test_fraction_for_compression_reaches_the_ratio():
    chain = _chain()
    fraction = fraction_for_compression(chain, 21.0)
    stored = sum(max(1, round(fraction * layer.tiles_total)) * layer.pe * layer.simd for layer in chain.matrices())
    assert 32 * 6032 / (2 * stored) >= 21.0
    with pytest.raises(PyflowError, match="--compression 5000: unreachable"):
        fraction_for_compression(chain, 5000.0)


@pytest.mark.parametrize("fields, message", [
    ({"pe": 0}, "pe: must be an integer >= 1, got 0"),
    ({"keep_tiles": 0.5, "compression": 20}, "either keep_tiles or compression"),
    ({"keep_tiles": 1.5}, r"keep_tiles: must be a fraction in \(0, 1\]"),
    ({"penalty": "l1"}, "penalty: must be one of none, group-lasso, wpc"),
    ({"folding": {"conv0": (0, 1)}}, "folding.conv0.pe"),
    ({"compression": 0.5}, "compression: must be a ratio >= 1"),
])
def test_config_is_validated_at_construction(fields, message):
    with pytest.raises(PyflowError, match=message):
        CompressConfig(out="x", **fields)


def test_folding_and_keep_parsing():
    assert parse_folding("conv0=4x1, conv1=8X8") == {"conv0": (4, 1), "conv1": (8, 8)}
    assert parse_keep("conv1=0.25,fc0=1") == {"conv1": 0.25, "fc0": 1.0} and parse_keep("0.5") == 0.5
    with pytest.raises(PyflowError, match="expected NAME=PExSIMD"):
        parse_folding("conv0=4")


def test_corrupt_and_foreign_checkpoints_give_one_line_errors(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(PyflowError, match=r"bad.pt: corrupt or not a PyTorch checkpoint") as info:
        load_state(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)
    torch.save(build_model("tfc-mlp", (1, 8, 8), 10).state_dict(), tmp_path / "tfc.pt")
    assert main(["compress", "--checkpoint", str(tmp_path / "tfc.pt"), "--out", str(tmp_path / "c")]) == 2
    from pyflow.compress.api import compress

    with pytest.raises(PyflowError, match=r"tfc.pt: is a checkpoint of another model, not digits-cnn: missing 0.b"):
        compress(CompressConfig(out=str(tmp_path / "c"), checkpoint=str(tmp_path / "tfc.pt")))


def test_compress_cli_yaml_equals_flags_and_checkpoint_loads_weights_only(tmp_path, capsys):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("pe: 8\nsimd: 8\nfolding: {conv0: 8x1}\nkeep_tiles: 0.5\npenalty: wpc\nepochs: 1\nseed: 3\n")
    assert main(["compress", "--config", str(yaml_file), "--out", str(tmp_path / "a")]) == 0
    assert main(["compress", "--pe", "8", "--simd", "8", "--folding", "conv0=8x1", "--keep-tiles", "0.5",
                 "--penalty", "wpc", "--epochs", "1", "--seed", "3", "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "[finetune] epoch 1/1 loss" in err and "kept tiles 61/122" in err
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in "ab")
    assert a == b
    state = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert state["conv1.tile_mask"].dtype == torch.bool and int(state["conv1.tile_mask"].sum()) == 36
    assert "conv1.delta" in state and float(state["conv0_act.scale"]) > 0
    model, meta = load_compressed(tmp_path / "a")
    assert meta["requested_keep"] == {"conv0": 0.5, "conv1": 0.5, "fc0": 0.5}
    assert [layer.tile_mask.sum().item() for layer in model.matrices()] == [9, 36, 16]


def test_threshold_steps_are_clipped(tmp_path):
    from pyflow.compress.train import fit
    from pyflow.data import Dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 1, 8, 8), dtype=np.uint8)
    data = Dataset("tiny", images, rng.integers(0, 10, 64), images[:8], rng.integers(0, 10, 8))
    chain = _chain()
    before = [layer.delta.item() for layer in chain.matrices()]
    fit(chain, data, 1, "t", seed=0, lr=1e-3, batch_size=16, threshold_lr=1.0)  # 4 steps of at most 1e-3
    for layer, old in zip(chain.matrices(), before, strict=True):
        assert abs(layer.delta.item() - old) <= 4 * 1e-3 + 1e-7
        assert 0.0 <= layer.delta.item() <= 3 * layer.sigma().item()


def test_shipped_yaml_config_is_valid():
    from pathlib import Path

    from pyflow.compress.config import load_yaml

    config = CompressConfig(out="x", **load_yaml(Path(__file__).parent.parent / "configs" / "compress-digits.yaml"))
    assert config.folding_for("conv0") == (8, 1) and config.folding_for("conv1") == (8, 8)
    assert config.keep_tiles == {"conv0": 1.0, "conv1": 0.5, "fc0": 0.5} and config.penalty == "wpc"


def test_metrics_and_evaluate_need_no_torch():
    import subprocess
    import sys

    code = ("import sys; import pyflow.ir.metrics, pyflow.compress.api, pyflow.compress.config; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("spec", "shape", "pe", "simd"), [
    ("conv6k3p1 linear4", (3, 5, 5), 4, 4), ("conv5k1 linear3", (7, 4, 4), 3, 5), ("linear9", (10, 1, 1), 2, 3),
    ("conv4k5p2 maxpool2 linear6", (2, 6, 6), 5, 2)])
def test_torch_weight_inverts_ir_matrix(spec, shape, pe, simd):
    """IR layer → torch layout (torch_weight) → IR matrix (ir_matrix) is the identity, padding and flatten included."""
    from pyflow.compress.ternary import Geometry, ir_matrix, torch_weight
    from pyflow.ir.packing import layer_matrix
    from pyflow.random_ir import random_network

    network = random_network(spec, shape, pe=pe, simd=simd, keep=0.6, seed=4)
    previous = None
    for layer in network.layers:
        if layer.__class__.__name__ == "MatrixLayer":
            flat_from = previous.in_shape if previous.__class__.__name__ == "FlattenLayer" else None
            c_in = layer.c_in
            geom = Geometry(layer.name, layer.kind, c_in, layer.out_channels, layer.kernel, layer.stride,
                            layer.padding, layer.in_shape[1:], flat_from=flat_from)
            weight = torch_weight(layer, flat_from)
            assert weight.shape == geom.weight_shape
            assert np.array_equal(ir_matrix(weight, geom, layer.pe, layer.simd), layer_matrix(layer))
        previous = layer


def test_penalty_and_freeze_cover_every_conv_of_a_resnet_including_the_shortcuts():
    from pyflow.compress.train import TilePenalty

    torch.manual_seed(0)
    ops, sources = trace_graph(build_model("resnet8", (1, 8, 8), 10), (1, 8, 8))
    chain = ChainNet(ops, {op["name"]: (4, 4) for op in ops if op["op"] in ("conv", "linear")})
    chain.load_from(sources)
    chain.set_ternary(True)
    shortcuts = [layer for layer in chain.matrices() if layer.geom.kernel == 1 and layer.geom.stride == 2]
    assert len(shortcuts) == 2
    targets = {layer.geom.name: 1 for layer in chain.matrices()}
    penalty_term = TilePenalty(chain, "group-lasso", 1.0, 1.0, "threshold", 1.0, targets, 1)
    assert len(penalty_term.layers) == len(chain.matrices()) == 10
    penalty_term().backward()
    assert all(float(layer.weight.grad.abs().sum()) > 0 for layer in shortcuts)
    freeze_masks(chain, {layer.geom.name: 0.5 for layer in chain.matrices()})
    for layer in shortcuts:
        assert int(layer.tile_mask.sum()) == round(0.5 * layer.tiles_total)
