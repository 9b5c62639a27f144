"""The penalty phase prunes while it trains, the freeze then cuts only zero tiles, and the masked fine-tune
refines instead of diverging: on a small fixed problem a longer fine-tune never ends below a shorter one."""

import json

import pytest
import torch

from pyflow.compress.api import CompressConfig, compress, train

torch.set_num_threads(1)

# 30 penalty epochs of 21 steps: Adam moves a weight by about lr a step, so pulling tiles to zero takes a few
# hundred steps (Fashion-MNIST has 938 a epoch)
BASE = {"folding": {"conv0": (8, 1)}, "keep_tiles": 0.5, "seed": 0, "ternary_epochs": 30}


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    return train("digits-cnn", "digits", 6, tmp_path_factory.mktemp("fp") / "fp") / "model.pt"


def _compress(tmp_path, checkpoint, name, **fields):
    out = compress(CompressConfig(out=str(tmp_path / name), checkpoint=str(checkpoint), **{**BASE, **fields}))
    return json.loads((out / "metrics.json").read_text())


def test_penalty_reaches_the_target_so_the_freeze_cuts_only_zeros(tmp_path, float_model):
    metrics = _compress(tmp_path, float_model, "c", finetune_epochs=1)
    penalty = [r for r in metrics["history"] if r["phase"] == "ternary+wpc"]
    kept = [r["kept_tiles"] for r in penalty]
    target = sum(layer["tiles_kept_by_mask"] for layer in metrics["layers"])
    assert kept[0] > target and kept[-1] <= target  # pruned during the penalty epochs, not at the freeze
    assert all(b <= a for a, b in zip(kept, kept[1:], strict=False))  # zero tiles, once masked, stay cut
    assert metrics["freeze"]["removed_nonzero_tiles"] == 0
    assert metrics["freeze"]["accuracy_after"] == metrics["freeze"]["accuracy_before"]


@pytest.mark.slow  # ~106 s on 2 cores: the fast tier keeps the freeze and rollback checks above
def test_a_longer_finetune_never_ends_below_a_shorter_one(tmp_path, float_model):
    # judged on the 1,348 training images the fine-tune fits: digits' 449 test images move by one image
    # (0.22 points) between runs that differ in nothing that matters
    from pyflow.compress.checkpoint import load_compressed
    from pyflow.compress.train import accuracy
    from pyflow.data import load_data

    data = load_data("digits")
    fitted = {}
    for name, epochs in (("short", 2), ("long", 8)):
        metrics = _compress(tmp_path, float_model, name, finetune_epochs=epochs)
        fitted[name] = accuracy(load_compressed(tmp_path / name)[0], data.train_x, data.train_y)
        losses = [r["loss"] for r in metrics["history"] if r["phase"] == "finetune"]
        assert losses[-1] < losses[0]  # it converges, it does not drift away
    assert fitted["long"] >= fitted["short"]


def test_the_old_fixed_small_penalty_leaves_the_cut_to_the_freeze(tmp_path, float_model):
    # the schedule is what prunes: with the former fixed lambda/G (3e-4, kappa 1) the penalty removes
    # nothing and the freeze cuts live tiles
    metrics = _compress(tmp_path, float_model, "old", finetune_epochs=1, tau="threshold", kappa=1.0, lam=3e-4,
                        lam_growth=1.0)
    assert metrics["freeze"]["removed_nonzero_tiles"] > 0
    assert metrics["freeze"]["accuracy_after"] < metrics["freeze"]["accuracy_before"]
