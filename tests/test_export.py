"""Export: compressed checkpoint → IR; torch/golden agreement, stored tiles, requested vs achieved, errors."""

import json
import shutil
import textwrap

import numpy as np
import pytest
import torch

from pyflow import golden
from pyflow.cli import main
from pyflow.compress.api import CompressConfig, compress, evaluate, export, export_evaluated
from pyflow.compress.checkpoint import load_compressed
from pyflow.compress.export import _tiles, torch_logits
from pyflow.compress.ternary import Geometry, TernaryMatrix
from pyflow.data import load_data
from pyflow.errors import PyflowError
from pyflow.ir import load
from pyflow.ir.metrics import compression, index_bits
from pyflow.ir.packing import layer_codes
from pyflow.random_ir import random_network

torch.set_num_threads(1)  # tiny models: one thread per pytest worker beats oversubscribed cores

EPOCHS = {"fp_epochs": 4, "ternary_epochs": 4, "finetune_epochs": 2}  # 4 penalty epochs reach keep 0.5


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ckpt"
    config = CompressConfig(out=str(out), folding={"conv0": (8, 1)}, keep_tiles=0.5, seed=0, **EPOCHS)
    return compress(config)


@pytest.fixture(scope="module")
def network(compressed, tmp_path_factory):
    return export(compressed, "digits", tmp_path_factory.mktemp("ir") / "ir")


def test_torch_eval_and_golden_agree(compressed, network, digits):
    model, _ = load_compressed(compressed)
    torch_pred = torch_logits(model, digits.test_x).argmax(1).numpy()
    golden_pred = golden.predict(network, digits.test_x)
    assert (torch_pred == golden_pred).mean() >= 0.99
    assert (golden_pred == digits.test_y).mean() > 0.6  # a trained network, not a constant one


def test_output_layer_gives_int32_logits_and_flatten_is_a_layer(network):
    kinds = [type(layer).__name__ for layer in network.layers]
    assert kinds == ["MatrixLayer", "PoolLayer", "MatrixLayer", "PoolLayer", "FlattenLayer", "MatrixLayer"]
    last = network.layers[-1]
    assert last.is_output and last.shift == 0 and last.out_bits == 32 and last.in_shape == (128, 1, 1)
    assert [layer.name for layer in network.layers] == ["conv0", "pool0", "conv1", "pool1", "flatten0", "fc0"]


def test_no_stored_tile_is_all_zero(network):
    for layer in network.matrix_layers:
        assert layer_codes(layer).reshape(layer.n_kept, -1).any(axis=1).all(), layer.name


def test_all_zero_tiles_are_dropped_and_counted_apart_from_masked_ones():
    geom = Geometry("conv0", "conv", 4, 4, 1, 1, 0, (2, 2))
    layer = TernaryMatrix(geom, 2, 2)  # 2x2 grid of 2x2 tiles
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1, -1, 1, -1], [-1, 1, -1, 1], [0, 0, 1, -1], [0, 0, -1, 1]],
                                        dtype=torch.float32).reshape(4, 4, 1, 1))  # mean 0: tile (1, 0) is zero
        layer.delta.fill_(0.5)
        layer.tile_mask.copy_(torch.tensor([[True, False], [True, True]]))
    layer.ternary = True
    packed, counts = _tiles(layer)
    assert counts == {"tiles_masked": 1, "tiles_all_zero": 1}
    assert packed.row_ptr.tolist() == [0, 1, 2] and packed.col_idx.tolist() == [0, 1]


def test_requested_vs_achieved_and_counts_add_up(compressed, network, tmp_path, capsys):
    ir_dir = tmp_path / "ir"
    shutil.copytree(network_dir := _ir_dir(compressed, tmp_path), ir_dir)
    capsys.readouterr()
    assert main(["eval", str(ir_dir), "--data", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads((ir_dir / "eval.json").read_text()) == result
    assert {"accuracy", "compression_weights_only", "compression_with_index", "kept_tiles", "layers"} <= set(result)
    for row in result["layers"]:
        assert row["requested_keep"] == 0.5
        assert row["tiles_masked"] + row["tiles_all_zero"] + row["tiles_kept"] == row["tiles_total"]
        assert row["achieved_keep"] == round(row["tiles_kept"] / row["tiles_total"], 6)
        assert row["tiles_masked"] == row["tiles_total"] - round(0.5 * row["tiles_total"])
    metrics = json.loads((compressed / "metrics.json").read_text())
    assert "accuracy" not in metrics and "compression_weights_only" not in metrics  # export owns the IR figures
    assert [row["tiles_kept_by_mask"] for row in metrics["layers"]] == \
        [row["tiles_kept"] + row["tiles_all_zero"] for row in result["layers"]]
    assert load(network_dir).meta["compression"]["layers"].keys() == {"conv0", "conv1", "fc0"}


def _ir_dir(compressed, tmp_path):
    out = tmp_path / "exported"
    assert main(["export", str(compressed), "--data", "digits", "--out", str(out)]) == 0
    return out


def test_compression_ratios_follow_the_formula():
    network = random_network("conv8k3p1 maxpool2 conv16k3p1 linear10", (3, 8, 8), pe=4, simd=4, keep=0.5, seed=2)
    report = compression(network)
    layers = network.matrix_layers
    n_total = 8 * 27 + 16 * 72 + 10 * 16 * 16
    n_stored = sum(layer.n_kept * 16 for layer in layers)
    assert report["compression_weights_only"] == round(32 * n_total / (2 * n_stored), 4)
    overhead = sum(index_bits(layer) for layer in layers) + 32 * (8 + 16 + 10)
    assert report["compression_with_index"] == round(32 * n_total / (2 * n_stored + overhead), 4)
    assert report["kept_tiles"] == round(sum(la.n_kept for la in layers) / sum(la.tiles_total for la in layers), 6)


def test_compression_target_reaches_the_ratio(tmp_path, digits):
    out = compress(CompressConfig(out=str(tmp_path / "c"), folding={"conv0": (8, 1)}, compression=21.0,
                                  fp_epochs=1, ternary_epochs=1, finetune_epochs=1))
    _, metrics = export_evaluated(out, "digits", None)
    assert metrics["compression_weights_only"] >= 21.0
    requested = {row["requested_keep"] for row in metrics["layers"]}
    assert len(requested) == 1 and 0.5 < requested.pop() < 0.9


AVG_MODEL = textwrap.dedent("""
    import torch
    from torch import nn

    class AvgNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(12)
            self.pool = nn.AvgPool2d(2)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(12, 16)
            self.out = nn.Linear(16, 10)

        def forward(self, x):
            x = self.pool(torch.relu(self.c1(x)))
            x = self.gap(torch.relu(self.bn(self.c2(x))))
            return self.out(torch.relu(self.fc(torch.flatten(x, 1))))
""")


def test_avgpool_strided_conv_and_linear_chain_agree_with_golden(tmp_path, digits):
    (tmp_path / "avg_models.py").write_text(AVG_MODEL)
    out = compress(CompressConfig(out=str(tmp_path / "c"), model=f"{tmp_path / 'avg_models.py'}:AvgNet", pe=4,
                                  simd=4, keep_tiles=0.75, fp_epochs=12, ternary_epochs=2, finetune_epochs=3))
    network, evaluation = export_evaluated(out, "digits", tmp_path / "ir")
    assert [type(layer).__name__ for layer in network.layers] == [
        "MatrixLayer", "PoolLayer", "MatrixLayer", "PoolLayer", "FlattenLayer", "MatrixLayer", "MatrixLayer"]
    assert evaluation["agreement"] >= 0.99
    assert json.loads((tmp_path / "ir" / "eval.json").read_text()) == evaluation
    result = evaluate(network, digits)
    assert result["accuracy"] == evaluation["accuracy"]


def test_export_errors_are_one_line(compressed, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(compressed, broken)
    (broken / "model.pt").write_bytes(b"\x00garbage")
    with pytest.raises(PyflowError, match=r"model.pt: corrupt or not a PyTorch checkpoint"):
        export(broken, "digits", None)
    meta = json.loads((compressed / "meta.json").read_text())
    meta["ops"][0]["c_out"] = 32  # describes another model than the weights
    (broken / "meta.json").write_text(json.dumps(meta))
    shutil.copy(compressed / "model.pt", broken / "model.pt")
    with pytest.raises(PyflowError, match=r"model.pt: is a checkpoint of another model.*wrong shape conv0.bias"):
        export(broken, "digits", None)
    with pytest.raises(PyflowError, match="not a compressed checkpoint folder"):
        export(tmp_path, "digits", None)
    np.savez(tmp_path / "rgb.npz", images=np.zeros((4, 3, 8, 8), np.uint8), labels=np.zeros(4, np.int64))
    with pytest.raises(PyflowError, match=r"images are \(3, 8, 8\)"):
        export(compressed, f"npz:{tmp_path / 'rgb.npz'}", None)


def test_export_calibrates_missing_activation_scales(compressed, tmp_path, digits):
    uncalibrated = tmp_path / "uncalibrated"
    shutil.copytree(compressed, uncalibrated)
    state = torch.load(uncalibrated / "model.pt", weights_only=True)
    for key in [k for k in state if k.endswith("_act.scale")]:
        state[key] = torch.zeros(())
    torch.save(state, uncalibrated / "model.pt")
    network = export(uncalibrated, "digits", None)
    assert all(layer.m.any() for layer in network.matrix_layers)
    assert evaluate(network, digits)["accuracy"] > 0.5
