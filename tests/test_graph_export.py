"""Graphs through the whole compression stage (the Python API, tiny epochs): the issue's LeNet with F.max_pool2d,
a net ending in F.adaptive_avg_pool2d(x, 1), the zoo's resnet8 on digits and an MLP on vector data — compressed,
exported to the graph IR, and the golden model agreeing with the fake-quantized torch model."""

import json
import textwrap

import numpy as np
import pytest
import torch

from pyflow import golden
from pyflow.compress.api import CompressConfig, compress, export_evaluated, layer_shapes, train
from pyflow.compress.checkpoint import load_compressed
from pyflow.data import load_data
from pyflow.ir import load
from pyflow.ir.model import AddLayer, MatrixLayer

torch.set_num_threads(1)

TINY = {"fp_epochs": 2, "ternary_epochs": 1, "finetune_epochs": 1, "seed": 0}

MODELS = textwrap.dedent("""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
            self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
            self.fc1 = nn.Linear(16 * 2 * 2, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc2(F.relu(self.fc1(x)))


    class Gap(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.adaptive_avg_pool2d(F.relu(self.conv2(x)), 1)
            return self.fc(x.view(x.size(0), -1))


    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 32)
            self.bn = nn.BatchNorm1d(32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc2(F.relu(self.bn(self.fc1(x))))
""")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "issue_models.py"
    path.write_text(MODELS)
    return path


@pytest.mark.csim
@pytest.mark.rtl
@pytest.mark.parametrize("name, kinds", [
    ("LeNet", ["conv", "maxpool", "conv", "maxpool", "flatten", "linear", "linear"]),
    ("Gap", ["conv", "conv", "avgpool", "flatten", "linear"]),
])
def test_the_issue_models_compress_and_export_with_golden_agreeing(models, tmp_path, name, kinds):
    out = compress(CompressConfig(out=str(tmp_path / "c"), model=f"{models}:{name}", pe=4, simd=4, keep_tiles=0.75,
                                  **{**TINY, "fp_epochs": 6, "lr": 1e-2}))  # small nets: a few more, faster steps
    network, evaluation = export_evaluated(out, "digits", tmp_path / "ir")
    assert [getattr(layer, "kind", type(layer).__name__[:-5].lower()) for layer in network.layers] == kinds
    assert evaluation["agreement"] >= 0.99
    assert evaluation["accuracy"] > 0.3  # trained, not constant (10 classes)
    _bit_exact_in_every_view(network, tmp_path)


def _bit_exact_in_every_view(network, folder) -> None:
    """C-simulation, Icarus and Verilator == the golden model on random inputs."""
    from pyflow.boards import load_board
    from pyflow.codegen import hls, rtl
    from pyflow.sim.csim import run_csim
    from pyflow.sim.rtl import run_sim

    assert run_csim(hls.generate(network, load_board("pynq-z2"), folder / "hls"), vectors=4, quick=True)["bit_exact"]
    project = rtl.generate(network, None, folder / "rtl")
    for simulator in ("icarus", "verilator"):
        summary = run_sim(project, simulator, vectors=3, seed=1)
        assert summary["bit_exact"] and summary["mismatches"] == 0, simulator


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet8")
    out = compress(CompressConfig(out=str(folder / "c"), model="resnet8", pe=4, simd=4, keep_tiles=0.75, **TINY))
    network, evaluation = export_evaluated(out, "digits", folder / "ir")
    return out, folder / "ir", network, evaluation


def test_resnet8_on_digits_exports_a_graph_the_golden_model_agrees_with(resnet8):
    _, _, network, evaluation = resnet8
    adds = [layer for layer in network.layers if isinstance(layer, AddLayer)]
    signed = [layer.name for layer in network.matrix_layers if layer.signed]
    assert [layer.name for layer in adds] == ["add0", "add1", "add2"]
    assert len(signed) == 5  # three second convs of the blocks, two 1x1 stride-2 shortcuts
    assert not network.is_chain
    assert evaluation["agreement"] >= 0.99
    assert evaluation["accuracy"] > 0.5


def test_resnet8_ir_round_trips_and_masks_cover_every_conv(resnet8):
    out, ir_dir, network, evaluation = resnet8
    loaded = load(ir_dir)
    images = load_data("digits").test_x[:64]
    assert np.array_equal(golden.run(loaded, images), golden.run(network, images))
    assert json.loads((ir_dir / "eval.json").read_text()) == evaluation
    shortcuts = [layer for layer in network.matrix_layers if layer.kernel == 1 and layer.stride == 2]
    assert len(shortcuts) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {row["name"]: row for row in metrics["layers"]}
    assert set(rows) == {layer.name for layer in network.matrix_layers}
    for layer in network.matrix_layers:  # the freeze kept 75 % of the tiles of every layer, shortcuts included
        assert rows[layer.name]["tiles_kept_by_mask"] == max(1, round(0.75 * rows[layer.name]["tiles_total"]))
    model, _ = load_compressed(out)
    assert {layer.geom.name for layer in model.matrices()} == set(rows)


@pytest.mark.csim
@pytest.mark.rtl
def test_vector_data_trains_compresses_and_exports_an_mlp(models, tmp_path):
    digits = load_data("digits")
    np.savez(tmp_path / "vectors.npz", x_train=digits.train_x.reshape(len(digits.train_x), -1), y_train=digits.train_y,
             x_test=digits.test_x.reshape(len(digits.test_x), -1), y_test=digits.test_y)
    data = f"npz:{tmp_path / 'vectors.npz'}"
    spec = f"{models}:Mlp"
    assert [(s.name, s.c_in, s.c_out) for s in layer_shapes(spec, data)] == [("fc0", 64, 32), ("fc1", 32, 10)]
    trained = train(spec, data, 2, tmp_path / "fp")
    assert json.loads((trained / "metrics.json").read_text())["accuracy"] > 0.5
    out = compress(CompressConfig(out=str(tmp_path / "c"), model=spec, data=data, checkpoint=str(trained / "model.pt"),
                                  pe=4, simd=4, keep_tiles=0.75, **TINY))
    network, evaluation = export_evaluated(out, data, None)
    assert network.input_shape == (64, 1, 1)
    assert [type(layer) for layer in network.layers] == [MatrixLayer, MatrixLayer]
    assert golden.run(network, load_data(data).test_x[:5]).shape == (5, 10)
    assert evaluation["agreement"] >= 0.99 and evaluation["accuracy"] > 0.5
    _bit_exact_in_every_view(network, tmp_path)
