"""HLS backend speed: generate time, g++ build time and C-simulation throughput, median of 5.

    .venv/bin/python benchmarks/hls_speed.py [--repeats 5] [--out runs/hls_speed]

Two networks at 25 % kept tiles: digits-sized (1x8x8) and VGG-small-sized (3x32x32). The baseline,
measured in the same run, is the NumPy golden model's throughput on the same images; the C simulation's
throughput is printed beside it as a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pyflow import golden
from pyflow.boards import load_board
from pyflow.codegen import hls
from pyflow.random_ir import random_network
from pyflow.sim import csim

NETWORKS = {
    "digits": ("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (1, 8, 8), 200),
    "vgg-small": ("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 conv256k3p1 conv256k3p1 "
                  "maxpool2 linear10", (3, 32, 32), 4),
}
KEEP, PE, SIMD = 0.25, 8, 8


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(name: str, folder: Path, repeats: int) -> dict[str, float]:
    spec, shape, images = NETWORKS[name]
    network = random_network(spec, shape, pe=PE, simd=SIMD, keep=KEEP, seed=0)
    board, project = load_board("pynq-z2"), folder / name
    generate = [_timed(lambda: hls.generate(network, board, project)) for _ in range(repeats)]
    build = []
    for _ in range(repeats):
        (project / csim.BUILD_DIR / "build.json").unlink(missing_ok=True)  # force a fresh compile
        build.append(csim.build(project)[1])
    runs = [csim.run_csim(project, vectors=images, seed=i) for i in range(repeats)]
    assert all(run["bit_exact"] for run in runs), f"{name}: C simulation is not bit-exact"
    batch = hls.random_images(network, images, 0)
    baseline = [_timed(lambda: golden.run(network, batch)) for _ in range(repeats)]
    return {"generate_s": statistics.median(generate), "build_s": statistics.median(build),
            "csim_images_per_s": images / statistics.median(run["run_seconds"] for run in runs),
            "golden_images_per_s": images / statistics.median(baseline),
            "kept_tiles": sum(layer.n_kept for layer in network.matrix_layers),
            "tiles": sum(layer.tiles_total for layer in network.matrix_layers), "images": images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in NETWORKS:
            r = measure(name, Path(folder), args.repeats)
            print(f"{name:10s} kept {r['kept_tiles']}/{r['tiles']} tiles  generate {r['generate_s']:.3f} s  "
                  f"g++ build {r['build_s']:.2f} s  csim {r['csim_images_per_s']:.1f} images/s "
                  f"({r['images']} images/run)  golden {r['golden_images_per_s']:.1f} images/s  "
                  f"csim/golden {r['csim_images_per_s'] / r['golden_images_per_s']:.2f}x  "
                  f"[median of {args.repeats}]")


if __name__ == "__main__":
    main()
