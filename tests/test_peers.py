"""benchmarks/peers.py: FINN's MVAU cycle formula on hand-computed layers, and the IR -> torch weight layout."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pyflow import golden
from pyflow.compress.ternary import torch_weight
from pyflow.errors import PyflowError
from pyflow.hw.cycles import dense_cycles, fill_cycles
from pyflow.random_ir import random_network

_SPEC = importlib.util.spec_from_file_location("peers", Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py")
peers = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("peers", peers)  # dataclasses look their module up while being built
_SPEC.loader.exec_module(peers)


def test_finn_mvau_cycles_by_hand():
    # conv 16 -> 32 channels, 3x3, on a 4x4 map, PE 8, SIMD 8: MH 32, MW 144 -> 4 x 18 folds x 16 pixels
    assert peers.finn_mvau_cycles(32, 144, 8, 8, 16) == 1152
    # linear 128 -> 10 padded to MH 16 at PE 8: 2 x 16 folds, one pixel
    assert peers.finn_mvau_cycles(16, 128, 8, 8, 1) == 32


def test_finn_mvau_refuses_a_pe_that_does_not_divide_mh():
    with pytest.raises(PyflowError, match="PE 8 must divide MH 10"):
        peers.finn_mvau_cycles(10, 128, 8, 8, 1)


@pytest.mark.parametrize(("pe", "simd"), [(8, 8), (4, 2), (2, 4)])
def test_finn_dense_is_pyflows_dense_walk(pe, simd):
    network = random_network("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (3, 8, 8), pe=pe, simd=simd,
                             keep=0.5, seed=1)
    for layer in network.matrix_layers:
        assert peers.finn_dense_cycles(layer) == dense_cycles(layer) - fill_cycles(layer)


@pytest.mark.parametrize(("pe", "simd"), [(4, 4), (8, 8)])
def test_torch_weight_gives_the_golden_accumulators(pe, simd):
    """The IR's (k_y, k_x, c) columns and the (y, x, c) flatten order, moved into torch's layout, give the same acc."""
    torch = pytest.importorskip("torch")
    network = random_network("conv6k3p1 maxpool2 linear5", (3, 6, 6), pe=pe, simd=simd, keep=0.5, seed=2)
    conv, pool, flatten, linear = network.layers
    images = np.random.default_rng(0).integers(0, 256, size=(2, 3, 6, 6), dtype=np.uint8)
    x = golden.trace(network, images)
    weights = torch.from_numpy(torch_weight(conv).astype(np.float64))
    acc = torch.nn.functional.conv2d(torch.from_numpy(images).double(), weights, padding=conv.padding)
    expected = golden.accumulate(conv, images.transpose(0, 2, 3, 1).astype(np.int64))
    assert np.array_equal(acc.numpy().transpose(0, 2, 3, 1), expected)
    pooled = torch.from_numpy(x[1].transpose(0, 3, 1, 2).reshape(2, -1)).double()  # torch's (c, y, x) flatten
    acc = pooled @ torch.from_numpy(torch_weight(linear, flatten.in_shape).astype(np.float64)).T
    assert np.array_equal(acc.numpy(), golden.accumulate(linear, x[2]).reshape(2, -1))
