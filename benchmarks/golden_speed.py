"""Golden-model throughput (images/s, median of 5) at 25 % kept tiles vs dense, measured in one run.

    .venv/bin/python benchmarks/golden_speed.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from pyflow import golden
from pyflow.random_ir import random_network

NETWORKS = {
    "digits (1x8x8)": ("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (1, 8, 8), 1000,
                       {"conv0": (8, 1)}),
    "vgg-small (3x32x32)": ("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 "
                            "conv256k3p1 conv256k3p1 maxpool2 linear10", (3, 32, 32), 16, {"conv0": (8, 3)}),
}
REPEATS = 5


def images_per_second(network, images) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        golden.run(network, images)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def main() -> None:
    print(f"golden model throughput, images/s, median of {REPEATS} (PE=8, SIMD=8)")
    print(f"{'network':22s} {'dense':>10s} {'25% kept':>10s} {'speed-up':>9s}")
    for name, (spec, shape, batch, folding) in NETWORKS.items():
        images = np.random.default_rng(0).integers(0, 256, size=(batch, *shape), dtype=np.uint8)
        rates = [images_per_second(random_network(spec, shape, pe=8, simd=8, keep=keep, folding=folding), images)
                 for keep in (1.0, 0.25)]
        print(f"{name:22s} {rates[0]:10.1f} {rates[1]:10.1f} {rates[1] / rates[0]:8.2f}x")


if __name__ == "__main__":
    main()
