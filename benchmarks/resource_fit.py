"""Fit the analytical resource model (pyflow.hw.resources) to Yosys' counts, and print its error.

Usage: .venv/bin/python benchmarks/resource_fit.py [--work DIR] [--fuzz N] [--only NAME ...]

Designs: the zoo's shapes as random IRs (VGG-small as in issue 15, the digits CNN of the tests, a
CIFAR-sized two-conv net, LeNet-5 and the TFC MLP on 28x28) and N fuzz networks (pyflow.fuzz.cases). Each is
generated for its board and synthesized out of context (pyflow.sim.yosys; units are reused from ``--work``
when unchanged). Per component (a matrix engine, a pool engine, a feature buffer) the model's structural
terms are the features and Yosys' LUT / FF the targets: each coefficient of resources.FIT is a
non-negative least-squares fit over every component of every design. The script prints the coefficients
to paste into resources.py, then per design measured vs modelled with the error per resource, after the fit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyflow.codegen.rtl import generate  # noqa: E402
from pyflow.fuzz import cases  # noqa: E402
from pyflow.hw import resources  # noqa: E402
from pyflow.hw.engines import engines  # noqa: E402
from pyflow.hw.sizing import network_sizing  # noqa: E402
from pyflow.ir.model import MatrixLayer, PoolLayer  # noqa: E402
from pyflow.random_ir import random_network  # noqa: E402
from pyflow.sim.yosys import synthesize  # noqa: E402

VGG = ("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 conv256k3p1 conv256k3p1 maxpool2 "
       "linear10")
DESIGNS = {  # name: (spec, input shape, PE, SIMD, keep, board)
    "vgg-small": (VGG, (3, 32, 32), 8, 8, 0.25, "zcu104"),
    "digits": ("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (1, 8, 8), 8, 8, 0.25, "pynq-z2"),
    "cifar-2conv": ("conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10", (3, 32, 32), 8, 4, 0.5, "zcu104"),
    "lenet5": ("conv6k5p0 maxpool2 conv16k5p0 maxpool2 linear120 linear84 linear10", (1, 28, 28), 4, 2, 0.5,
               "pynq-z2"),
    "tfc-mlp": ("flatten linear64 linear64 linear10", (1, 28, 28), 8, 16, 0.3, "pynq-z2"),
}


def design_networks(fuzz: int) -> dict[str, tuple]:
    out = {name: (random_network(spec, shape, pe=pe, simd=simd, keep=keep, seed=0), board)
           for name, (spec, shape, pe, simd, keep, board) in DESIGNS.items()}
    for case in cases(fuzz, seed=15):
        out[f"fuzz-{case.seed}"] = (case.network(), "pynq-z2")
    return out


def components(network, measured: dict) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """(kind, model features, measured cells) per engine and per feature buffer, paired in the top's order."""
    sizing = network_sizing(network)
    rows = {row["instance"]: row for row in measured["engines"]}
    buffers = sorted((row for row in measured["engines"] if row["module"] == "pf_fmap_buf"),
                     key=lambda row: (row["instance"] == "u_buf_logits", int(row["instance"][5:] or 0)
                                      if row["instance"][5:].isdigit() else 0))
    model_buffers = [buffer for sized in sizing.engines for buffer in sized.in_buffers] + [sizing.logits]
    out = []
    for buffer, row in zip(model_buffers, buffers, strict=True):
        assert int(row["parameters"]["LB"]) == buffer.lb and int(row["parameters"]["BITS"]) == buffer.bits, row
        out.append(("buffer", resources.buffer_features(buffer), row["cells"]))
    for layer, sized in zip(engines(network), sizing.engines, strict=True):
        row = rows[f"u_l{network.layers.index(layer)}_{layer.name}"]
        if isinstance(layer, MatrixLayer):
            out.append(("matrix", resources.matrix_features(layer, sized), row["cells"]))
        elif isinstance(layer, PoolLayer):
            out.append(("pool", resources.pool_features(layer, sized), row["cells"]))
    return out


def fit(samples: list[tuple[str, dict[str, float], dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per (kind, resource): non-negative least squares of the measured count on the features."""
    from scipy.optimize import nnls

    coefficients: dict[str, dict[str, float]] = {}
    for kind, resource in sorted({(k, r) for k, features, _ in samples for r in ("LUT", "FF")}):
        rows = [(features, cells) for k, features, cells in samples if k == kind]
        names = sorted({name for features, _ in rows for name in features if name.startswith(resource.lower() + "_")})
        a = np.array([[features.get(name, 0.0) for name in names] for features, _ in rows], dtype=float)
        b = np.array([cells[resource] for _, cells in rows], dtype=float)
        scale = np.maximum(a.max(axis=0), 1.0)  # columns of very different sizes: fit on a common scale
        solution, _ = nnls(a / scale, b)
        seen = a.any(axis=0)  # a term no sample has keeps its coefficient
        coefficients.update({f"{kind}.{name}": round(float(value / s), 4)
                             for name, value, s, used in zip(names, solution, scale, seen, strict=True) if used})
    return coefficients


def error(model: float, measured: float) -> str:
    return f"{100 * (model - measured) / measured:+.1f} %" if measured else ("0" if model == 0 else "n/a")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/resource_fit")
    parser.add_argument("--fuzz", type=int, default=4)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--keep-projects", action="store_true",
                        help="synthesize the projects already in --work instead of regenerating them")
    args = parser.parse_args()
    measured, samples = {}, []
    for name, (network, board) in design_networks(args.fuzz).items():
        if args.only and name not in args.only:
            continue
        from pyflow.boards import load_board

        project = Path(args.work) / name
        if not (args.keep_projects and (project / "verilog").is_dir()):
            project = generate(network, load_board(board), project)
        print(f"{name}: synthesizing {project}", file=sys.stderr, flush=True)
        measured[name] = (network, synthesize(project, progress=False))
        samples += components(network, measured[name][1])
    coefficients = fit(samples)
    print("fitted coefficients (resources.FIT):")
    for key, value in sorted(coefficients.items()):
        print(f"  {key!r}: {value},")
    print(f"\n{'design':14s} {'resource':8s} {'measured':>10s} {'model (fitted)':>18s} {'model (resources.py)':>22s}")
    for name, (network, summary) in measured.items():
        sizing = network_sizing(network)
        fitted = resources.network_estimate(network, sizing, coefficients)
        current = resources.network_estimate(network, sizing)
        for key, cell in (("lut", "LUT"), ("ff", "FF"), ("bram36", "BRAM36"), ("dsp", "DSP")):
            value = summary["cells"][cell]
            print(f"{name:14s} {cell:8s} {value:10g} {getattr(fitted, key):9g} {error(getattr(fitted, key), value):>8s}"
                  f" {getattr(current, key):12g} {error(getattr(current, key), value):>9s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
