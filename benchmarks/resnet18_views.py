"""The zoo's ResNet-18 on 3x32x32 inputs through export, C-simulation and Verilator, with each stage's time.

usage: .venv/bin/python benchmarks/resnet18_views.py [--pe 16] [--simd 16] [--keep 0.5] [--csim-vectors 4]
                                                     [--sim-vectors 2] [--work DIR]

No CIFAR-10 ships with the machine, so the data are synthetic (seeded): 512 + 128 images, each 0.6 x one of
10 fixed random patterns (its class) + 0.4 x noise — learnable, so the quantizers see realistic ranges. One
epoch per phase (float, ternary + WPC, fine-tune) at a uniform PE x SIMD folding; accuracy on such data
means nothing, bit-exactness is the point: the golden model is compared with the fake-quantized torch model
(agreement), then C-simulation and Verilator with the golden model (``==`` on every logit, every engine's
cycle counter with the cycle model). Printed: each stage's wall time, the graph (adds, skip buffers' banks),
the cycle model's interval and latency, and the verdicts. The same steps from the command line, 2026-12-03
on 2 cores: export 50 s, C-sim 54 s for 4 images, Verilator 10.5 min (build ~8 min) for 2 images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pyflow.boards import load_board
from pyflow.codegen import hls, rtl
from pyflow.compress.api import CompressConfig, compress, export_evaluated
from pyflow.hw import cycles
from pyflow.hw.sizing import network_sizing
from pyflow.ir.model import AddLayer
from pyflow.sim.csim import run_csim
from pyflow.sim.rtl import run_sim


def synthetic_cifar(path: Path, seed: int = 18) -> str:
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (10, 3, 32, 32)).astype(np.float32)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, count)
        images = 0.6 * patterns[labels] + 0.4 * rng.integers(0, 256, (count, 3, 32, 32))
        return images.astype(np.uint8), labels.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = draw(512), draw(128)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


def timed(label: str, work):
    start = time.perf_counter()
    result = work()
    print(f"{label}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pe", type=int, default=16)
    parser.add_argument("--simd", type=int, default=16)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--csim-vectors", type=int, default=4)
    parser.add_argument("--sim-vectors", type=int, default=2)
    parser.add_argument("--work", default=None, help="folder for the artifacts (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="pyflow-resnet18-"))
    work.mkdir(parents=True, exist_ok=True)
    data = synthetic_cifar(work / "data.npz")
    config = CompressConfig(out=str(work / "ckpt"), model="resnet18", data=data, pe=args.pe, simd=args.simd,
                            keep_tiles=args.keep, fp_epochs=1, ternary_epochs=1, finetune_epochs=1, seed=0)
    timed("compress (1 epoch per phase)", lambda: compress(config))
    network, evaluation = timed("export", lambda: export_evaluated(work / "ckpt", data, work / "ir"))
    adds = [layer for layer in network.layers if isinstance(layer, AddLayer)]
    banks = {e.name: [b.banks for b in e.in_buffers] for e in network_sizing(network).engines if e.engine == "add"}
    print(f"{len(network.layers)} IR layers, {len(network.matrix_layers)} matrix layers, {len(adds)} adds; banks "
          f"per add input {banks}; golden vs torch agreement {evaluation['agreement']:.4f}")
    print(f"cycle model: interval {cycles.interval_cycles(network)}, latency {cycles.latency_cycles(network)}")
    project = timed("generate", lambda: (hls.generate(network, load_board("zcu104"), work / "hls"),
                                         rtl.generate(network, None, work / "rtl")))
    csim = timed("C-simulation", lambda: run_csim(project[0], vectors=args.csim_vectors))
    print(f"  C-sim: {csim['mismatches']} mismatches of {csim['outputs_compared']} logits")
    sim = timed("Verilator", lambda: run_sim(project[1], "verilator", vectors=args.sim_vectors, stall=0.0))
    exact_cycles = all(layer["cycles"] == layer["modelled_cycles"] for layer in sim["layers"])
    print(f"  Verilator: {sim['mismatches']} mismatches of {sim['outputs_compared']} logits, every engine's cycles "
          f"== model: {exact_cycles}, latency {sim['cycles_per_image']} cycles")
    passed = csim["bit_exact"] and sim["bit_exact"] and exact_cycles and evaluation["agreement"] >= 0.99
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
