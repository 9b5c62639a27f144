"""Numerical guards: a one-weight layer has a defined σ; any NaN or Inf stops training with one line naming
the layer and the epoch; a checkpoint holding non-finite values is refused at load."""

import textwrap

import numpy as np
import pytest
import torch

from pyflow.compress.api import CompressConfig, compress
from pyflow.compress.chain import ChainNet
from pyflow.compress.checkpoint import load_state
from pyflow.compress.importer import trace_graph
from pyflow.compress.ternary import Geometry, TernaryMatrix
from pyflow.compress.train import fit
from pyflow.data import Dataset
from pyflow.errors import PyflowError
from pyflow.models import build_model

torch.set_num_threads(1)

ONE_WEIGHT = textwrap.dedent("""
    from torch import nn


    def OneWeight():
        # the whole 8x8 image averaged to one value, a Linear(1, 1), then the classifier
        return nn.Sequential(nn.AvgPool2d(8), nn.Flatten(), nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 10))
""")


def test_one_weight_layer_has_a_defined_sigma_and_a_nonzero_code():
    layer = TernaryMatrix(Geometry("fc0", "linear", 1, 1, bias=True), 1, 1)
    with torch.no_grad():
        layer.weight.fill_(-0.3)
    layer.init_threshold()
    layer.ternary = True
    assert float(layer.sigma()) == pytest.approx(0.3)
    assert layer.codes().tolist() == [[-1]]  # centred on its own mean, the one weight would always be 0
    assert torch.isfinite(layer.effective_weight()).all() and float(layer.alpha()) > 0


def test_compress_with_a_one_weight_layer_trains_without_nan(tmp_path):
    (tmp_path / "one.py").write_text(ONE_WEIGHT)
    out = compress(CompressConfig(out=str(tmp_path / "c"), model=f"{tmp_path / 'one.py'}:OneWeight", pe=1, simd=1,
                                  fp_epochs=1, ternary_epochs=1, finetune_epochs=1))
    state = load_state(out / "model.pt")
    assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


def _tiny_fit(chain):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8)
    data = Dataset("tiny", images, rng.integers(0, 10, 32), images[:8], rng.integers(0, 10, 8))
    fit(chain, data, 2, "ternary+wpc", seed=0, lr=1e-3, batch_size=16, threshold_lr=0.1)


def _chain():
    torch.manual_seed(0)
    ops, sources = trace_graph(build_model("digits-cnn", (1, 8, 8), 10), (1, 8, 8))
    chain = ChainNet(ops, {"conv0": (8, 1), "conv1": (8, 8), "fc0": (8, 8)})
    chain.load_from(sources)
    chain.set_ternary(True)
    return chain


@pytest.mark.parametrize("plant, message", [
    (lambda c: c.conv1.weight.data.view(-1)[5].fill_(float("inf")), r"layer conv1: non-finite weight"),
    (lambda c: c.fc0.delta.data.fill_(float("nan")), r"layer fc0: non-finite threshold delta"),
    (lambda c: (c.set_act_quant(True), c.conv1_act.scale.fill_(float("nan"))),
     r"layer conv1_act: non-finite activation scale"),
])
def test_an_injected_inf_or_nan_stops_training_naming_the_layer_and_epoch(plant, message):
    chain = _chain()
    plant(chain)
    with pytest.raises(PyflowError, match=r"^\[ternary\+wpc\] epoch 1: .*" + message) as info:
        _tiny_fit(chain)
    assert "\n" not in str(info.value)


def test_a_loss_that_overflows_with_finite_parameters_is_named_too(monkeypatch):
    chain = _chain()
    monkeypatch.setattr("pyflow.compress.train.F.cross_entropy", lambda logits, labels: logits.sum() * float("inf"))
    with pytest.raises(PyflowError, match=r"epoch 1: loss is (inf|nan) at batch 1; every parameter is finite"):
        _tiny_fit(chain)


def test_a_checkpoint_with_non_finite_values_is_refused_at_load(tmp_path):
    state = build_model("digits-cnn", (1, 8, 8), 10).state_dict()
    state["0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(PyflowError, match=r"nan.pt: tensor '0.weight' holds NaN or infinite values"):
        load_state(tmp_path / "nan.pt")
