"""Random networks the RTL tests run: a fast handful, and a seeded sweep of the hardware knobs (slow)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIGITS_SPEC = "conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10"


@dataclass(frozen=True)
class Case:
    name: str
    spec: str
    shape: tuple[int, int, int]
    pe: int
    simd: int
    keep: float
    a_bits: int = 8
    seed: int = 0
    folding: dict = field(default_factory=dict)

    def network(self):
        from pyflow.random_ir import random_network

        return random_network(self.spec, self.shape, pe=self.pe, simd=self.simd, keep=self.keep,
                              a_bits=self.a_bits, seed=self.seed, folding=self.folding or None)


FAST = (
    Case("avg-a4-k30", "conv5k3s1p1 avgpool2 conv7k1s1p0 linear3", (3, 6, 6), pe=3, simd=5, keep=0.3, a_bits=4),
    Case("max-s2-dense", "conv6k3s2p0 maxpool2 linear4", (2, 9, 9), pe=5, simd=2, keep=1.0, seed=1),
    Case("k1s2-empty", "conv4k1s2p0 linear5", (3, 5, 5), pe=2, simd=3, keep=0.0, seed=2),
    # a plain MLP on an image: the input stream must write the flattened vector packed, not per pixel
    Case("flatten-first", "flatten linear10", (1, 4, 4), pe=2, simd=4, keep=0.5),
)
VERILATOR_FAST = Case("simd1-first", "conv8k3p1 maxpool2 linear6", (1, 6, 6), pe=4, simd=4, keep=0.5, seed=3,
                      folding={"conv0": (4, 1)})
DIGITS = Case("digits", DIGITS_SPEC, (1, 8, 8), pe=8, simd=8, keep=0.25, seed=0, folding={"conv0": (8, 1)})


def sweep(count: int = 22, seed: int = 1234, *, name: str = "sweep", c_in: tuple[int, int] = (1, 5),
          sizes: tuple[int, int] = (6, 10), channels: tuple[tuple[int, int], ...] = ((2, 12), (2, 10), (2, 11)),
          lanes: tuple[int, int] = (1, 17), pinned_sizes: dict[tuple[int, int], int] | None = None) -> list[Case]:
    """Seeded random cases over kernel 1/3, stride 1/2, padding 0/1, PE/SIMD, kept 0/30/100 %, a_bits 4/8,
    max/avg pooling: conv → pool → 1x1 conv → linear. The ranges are half-open ``(low, high)``;
    ``pinned_sizes`` fixes the map size for a (kernel, stride) instead of drawing it."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        k = int(rng.choice([1, 3]))
        s, p = int(rng.choice([1, 2])), int(rng.choice([0, 1])) if k == 3 else 0
        pool = str(rng.choice(["maxpool", "avgpool"]))
        c, size = int(rng.integers(*c_in)), (pinned_sizes or {}).get((k, s)) or int(rng.integers(*sizes))
        spec = f"conv{int(rng.integers(*channels[0]))}k{k}s{s}p{p} {pool}2 conv{int(rng.integers(*channels[1]))}k1 " \
               f"linear{int(rng.integers(*channels[2]))}"
        cases.append(Case(f"{name}{index}", spec, (c, size, size), pe=int(rng.integers(*lanes)),
                          simd=int(rng.integers(*lanes)), keep=float(rng.choice([0.0, 0.3, 1.0])),
                          a_bits=int(rng.choice([4, 8])), seed=index))
    return cases


def test_sweep_covers_the_hardware_knobs():
    cases = sweep()
    networks = [case.network() for case in cases]
    matrices = [layer for network in networks for layer in network.matrix_layers]
    assert len(cases) >= 20
    assert {layer.kernel for layer in matrices} == {1, 3}
    assert {layer.stride for layer in matrices} >= {1, 2}
    assert {layer.padding for layer in matrices} == {0, 1}
    assert {case.keep for case in cases} == {0.0, 0.3, 1.0}
    assert {case.a_bits for case in cases} == {4, 8}
    assert {layer.kind for network in networks for layer in network.layers if hasattr(layer, "m") and
            not hasattr(layer, "pe")} == {"maxpool", "avgpool"}
    assert {3, 5, 7} & {case.pe for case in cases} and {3, 5, 7} & {case.simd for case in cases}
    assert max(case.pe for case in cases) <= 16 and max(case.simd for case in cases) <= 16
