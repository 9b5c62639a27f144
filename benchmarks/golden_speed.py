"""Golden-model throughput: the exact-float (BLAS) matmul against the int64 reference path and against
dense ``torch.nn.functional.conv2d`` on the same ternary weights, all measured in one run.

    .venv/bin/python benchmarks/golden_speed.py [--repeats 5] [--seed 0]

For each network (25 % kept tiles, PE=8, SIMD=8): whole-network images/s on the int64 path (the golden
model before the float path) and on the default path, with their ratio; then the matrix layers alone —
the golden model's ``accumulate`` against ``conv2d`` on the same dense ternary weights and the same
inputs (float32, torch's own threads). Medians of ``--repeats`` with standard deviations; every run's
logits are checked ``==`` between the two golden paths.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pyflow import golden
from pyflow.ir.model import INPUT, MatrixLayer
from pyflow.random_ir import random_network

NETWORKS = {
    "digits (1x8x8)": ("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (1, 8, 8), 1000, {"conv0": (8, 1)}),
    "vgg-small (3x32x32)": ("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 "
                            "conv256k3p1 conv256k3p1 maxpool2 linear10", (3, 32, 32), 64, {"conv0": (8, 3)}),
}
KEEP, PE, SIMD = 0.25, 8, 8


def timed(action, repeats: int) -> tuple[float, float]:
    """Median and standard deviation of ``action``'s wall seconds (after one warm-up call)."""
    action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), statistics.stdev(times) if repeats > 1 else 0.0


def torch_weights(layer: MatrixLayer) -> torch.Tensor:
    """The dense ternary matrix in torch's ``[O, C, k, k]`` order (pruned tiles are zeros)."""
    k = layer.kernel
    matrix = golden.dense_matrix(layer, np.float32).reshape(layer.m_pad, k, k, layer.c_in_pad)
    return torch.from_numpy(np.ascontiguousarray(matrix[:layer.out_channels, :, :, :layer.c_in].transpose(0, 3, 1, 2)))


def matrix_layer_inputs(network, images) -> list[tuple[MatrixLayer, np.ndarray]]:
    values = dict(zip((layer.name for layer in network.layers), golden.trace(network, images), strict=True))
    values[INPUT] = images.transpose(0, 2, 3, 1).astype(np.int64)
    return [(layer, values[network.inputs_of(layer)[0]]) for layer in network.matrix_layers]


def measure(spec, shape, batch, folding, repeats: int, seed: int) -> dict[str, tuple[float, float]]:
    network = random_network(spec, shape, pe=PE, simd=SIMD, keep=KEEP, seed=seed, folding=folding)
    images = np.random.default_rng(seed).integers(0, 256, size=(batch, *shape), dtype=np.uint8)
    assert np.array_equal(golden.run(network, images), golden.run(network, images, np.int64)), spec
    layers = matrix_layer_inputs(network, images)
    convs = [(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)), torch_weights(layer), layer)
             for layer, x in layers]

    def dense_conv2d():
        with torch.no_grad():
            for x, w, layer in convs:
                torch.nn.functional.conv2d(x, w, stride=layer.stride, padding=layer.padding)

    return {"int64": timed(lambda: golden.run(network, images, np.int64), repeats),
            "float": timed(lambda: golden.run(network, images), repeats),
            "accumulate": timed(lambda: [golden.accumulate(layer, x) for layer, x in layers], repeats),
            "conv2d": timed(dense_conv2d, repeats), "batch": (batch, 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"golden model, {KEEP:.0%} kept tiles, PE={PE} SIMD={SIMD}, seed {args.seed}, median ± std of "
          f"{args.repeats} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for name, (spec, shape, batch, folding) in NETWORKS.items():
        r = measure(spec, shape, batch, folding, args.repeats, args.seed)
        rate = {key: batch / r[key][0] for key in ("int64", "float")}
        print(f"{name} ({batch} images)\n"
              f"  whole network  int64 path {rate['int64']:9.1f} images/s (±{r['int64'][1]:.3f} s)   "
              f"float path {rate['float']:9.1f} images/s (±{r['float'][1]:.3f} s)   "
              f"float/int64 {rate['float'] / rate['int64']:.1f}x")
        print(f"  matrix layers  golden accumulate {r['accumulate'][0]:.4f} s (±{r['accumulate'][1]:.4f})   "
              f"dense conv2d {r['conv2d'][0]:.4f} s (±{r['conv2d'][1]:.4f})   "
              f"golden/conv2d time {r['accumulate'][0] / r['conv2d'][0]:.2f}x")


if __name__ == "__main__":
    main()
