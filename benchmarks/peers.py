"""Peers on one ternary digits network: hls4ml 1.3.0 vs pyflow, and FINN's dense MVAU cycle model vs pyflow's cycles.

    .venv/bin/python benchmarks/peers.py [--epochs 20] [--repeats 3] [--rtl-vectors 4] [--jobs N] [--quick]

One run: the digits CNN is compressed with configs/compress-digits.yaml (fewer epochs) and exported to the IR.

1. C simulation. pyflow: ``hls.generate`` (codegen), ``csim.build`` (g++), the C testbench on the digits test
   set, on one process and split over ``--jobs`` processes as ``pyflow csim`` runs it (default one per core).
   hls4ml: a float64 torch model equal to the IR (below), ``config_from_pytorch_model`` +
   ``convert_from_pytorch_model`` + ``write`` (codegen), ``compile`` (g++), ``predict`` on the same images.
   Agreement with the golden model: logits compared with ``==``, top-1, and accuracy. Medians of --repeats;
   the NumPy golden model's throughput on the same images is the baseline.
2. Cycles. For every matrix layer FINN's dense MVAU estimate ``(MH/PE)·(MW/SIMD)·pixels`` with the IR's PE and
   SIMD, beside pyflow's modelled cycles (``pyflow.hw.cycles``) and the cycles measured on Icarus.

The hls4ml model: per matrix layer a convolution (or linear) with the IR's ternary weights (pruned tiles are zero
weights) and no bias, then a BatchNormalization whose scale and bias are the requantizer's ``m/2^shift`` and
``b/2^shift`` (eps 0, mean 0, variance 1), then a ReLU into ``ap_ufixed<bits,bits,AP_TRN,AP_SAT>`` — the
requantizer's floor and clamp. The output layer's scale and bias are ``m`` and ``b``. Every precision is set.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyflow import golden
from pyflow.compress.ternary import torch_weight
from pyflow.errors import PyflowError
from pyflow.hw.cycles import dense_cycles, fill_cycles, modelled_cycles
from pyflow.ir.model import LOGIT_BITS, M_BITS, FlattenLayer, MatrixLayer, Network, PoolLayer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "compress-digits.yaml"
DATA = "digits"
BOARD = "pynq-z2"
IO_TYPES = ("io_parallel", "io_stream")
WIDE = "ap_fixed<64,40>"  # default for layers hls4ml inserts (transposes); every value there is an 8-bit pixel


@dataclass(frozen=True)
class Settings:
    epochs: int
    repeats: int
    rtl_vectors: int
    backend: str
    io_types: tuple[str, ...]
    jobs: int

    def __post_init__(self) -> None:
        for name in ("epochs", "repeats", "rtl_vectors", "jobs"):
            value = getattr(self, name)
            if value < (0 if name in ("epochs", "rtl_vectors") else 1):
                raise PyflowError(f"peers: --{name.replace('_', '-')} must not be {value}")


@dataclass(frozen=True)
class CsimResult:
    tool: str
    codegen_s: float
    build_s: float
    images_per_s: float
    equal_logits: int  # outputs equal to the golden model's
    outputs: int
    top1: float | None  # argmax agreement with the golden model; None when the bench reports no logits
    accuracy: float | None


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# --- the network ------------------------------------------------------------------------------------------------


def make_network(folder: Path, epochs: int) -> Network:
    """Compress the digits CNN as configs/compress-digits.yaml does, with ``epochs`` per phase; the IR."""
    from pyflow.compress.api import CompressConfig, compress, export
    from pyflow.compress.config import load_yaml

    fields = {**load_yaml(CONFIG), "fp_epochs": epochs, "ternary_epochs": epochs, "finetune_epochs": epochs}
    with contextlib.redirect_stderr(io.StringIO()):  # one progress line per epoch
        compress(CompressConfig(out=str(folder / "ckpt"), **fields))
    return export(folder / "ckpt", DATA, folder / "ir")


# --- pyflow -----------------------------------------------------------------------------------------------------


def measure_pyflow(network: Network, images: np.ndarray, logits: np.ndarray, labels: np.ndarray, folder: Path,
                   repeats: int, jobs: int) -> list[CsimResult]:
    """pyflow's C simulation on one testbench process and on ``jobs`` (one result each; jobs 1: one)."""
    from pyflow.boards import load_board
    from pyflow.codegen import hls
    from pyflow.sim import csim

    board, project = load_board(BOARD), folder / "pyflow-hls"
    codegen = [_timed(lambda: hls.generate(network, board, project))[0] for _ in range(repeats)]
    builds = []
    for _ in range(repeats):
        (project / csim.BUILD_DIR / "build.json").unlink(missing_ok=True)  # force a fresh compile
        binary, seconds = csim.build(project)
        builds.append(seconds)
    inputs, expected = project / "test_images.txt", project / "test_golden.txt"
    inputs.write_text("".join(" ".join(map(str, row)) + "\n" for row in images.transpose(0, 2, 3, 1).reshape(
        len(images), -1)))
    expected.write_text("".join(" ".join(map(str, row)) + "\n" for row in logits))
    results = []
    for processes in sorted({1, jobs}):
        runs = [_timed(lambda n=processes: csim.run_parallel(binary, inputs, expected, len(images), n))
                for _ in range(repeats)]
        outcome = runs[-1][1]
        if outcome.returncode not in (0, 1) or outcome.vectors != len(images):
            raise PyflowError(f"{project}: the C testbench failed: {outcome.output.strip()[:300]}")
        exact = all(run.passed and run.outputs_compared == logits.size for _, run in runs)
        # the testbench compares logits and prints only the first mismatches: top-1 is known only when all match
        results.append(CsimResult(f"pyflow HLS x{processes} proc", statistics.median(codegen),
                                  statistics.median(builds), len(images) / statistics.median(s for s, _ in runs),
                                  outcome.outputs_compared - outcome.mismatches, logits.size, 1.0 if exact else None,
                                  float((logits.argmax(1) == labels).mean()) if exact else None))
    return results


# --- hls4ml -----------------------------------------------------------------------------------------------------


def _matrix_modules(layer: MatrixLayer, flattened: tuple[int, int, int] | None) -> tuple[list, dict]:
    import torch
    from torch import nn

    weights = torch_weight(layer, flattened).astype(np.float64)
    if layer.kind == "conv":
        matrix = nn.Conv2d(layer.c_in, layer.out_channels, layer.kernel, layer.stride, layer.padding, bias=False)
        norm = nn.BatchNorm2d(layer.out_channels, eps=0.0)
    else:
        matrix, norm = nn.Linear(weights.shape[1], layer.out_channels, bias=False), nn.BatchNorm1d(
            layer.out_channels, eps=0.0)
    matrix, norm = matrix.double(), norm.double()
    with torch.no_grad():
        matrix.weight.copy_(torch.from_numpy(weights))
        norm.weight.copy_(torch.from_numpy(layer.m / 2.0**layer.shift))
        norm.bias.copy_(torch.from_numpy(layer.b / 2.0**layer.shift))
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
    # |acc·m| < 2^(acc_bits+14), |b| < 2^(acc_bits+14) (export), logits < 2^31: exact with `shift` fraction bits
    whole = max(layer.acc_bits + M_BITS, LOGIT_BITS) + 1
    scaled = f"ap_fixed<{whole + layer.shift},{whole}>"
    acc = f"ap_int<{layer.acc_bits}>"
    modules = [(layer.name, matrix), (f"{layer.name}_rq", norm)]
    precisions = {layer.name: {"weight": "ap_int<2>", "bias": "ap_int<2>", "accum": acc, "result": acc},
                  f"{layer.name}_rq": {"scale": f"ap_fixed<{M_BITS + layer.shift},{M_BITS}>", "bias": scaled,
                                       "result": scaled}}
    if not layer.is_output:
        modules.append((f"{layer.name}_relu", nn.ReLU()))
        precisions[f"{layer.name}_relu"] = {"result": f"ap_ufixed<{layer.out_bits},{layer.out_bits},AP_TRN,AP_SAT>"}
    return modules, precisions


def torch_model(network: Network) -> tuple[Any, dict[str, dict[str, str]]]:
    """A float64 torch model computing the IR, and the hls4ml precision of every layer (by module name)."""
    from torch import nn

    modules, precisions, flattened = [], {}, None
    for layer in network.layers:
        if isinstance(layer, MatrixLayer):
            more, types = _matrix_modules(layer, flattened)
            modules += more
            precisions.update(types)
        elif isinstance(layer, PoolLayer) and layer.kind == "maxpool":
            modules.append((layer.name, nn.MaxPool2d(layer.kernel, layer.stride)))
            bits = f"ap_ufixed<{layer.in_bits},{layer.in_bits}>"
            precisions[layer.name] = {"result": bits, "accum": bits}
        elif isinstance(layer, FlattenLayer):
            flattened = layer.in_shape
            modules.append((layer.name, nn.Flatten()))
            precisions[layer.name] = {"result": f"ap_ufixed<{layer.in_bits},{layer.in_bits}>"}
        else:
            raise PyflowError(f"peers: layer {layer.name!r} ({layer.kind}) has no hls4ml counterpart here")
    return nn.Sequential(OrderedDict(modules)).double().eval(), precisions


def hls4ml_config(model: Any, network: Network, precisions: dict[str, dict[str, str]], backend: str) -> dict:
    import hls4ml

    config = hls4ml.utils.config_from_pytorch_model(model, input_shape=network.input_shape, granularity="name",
                                                    backend=backend, default_precision=WIDE)
    names = config["LayerName"]
    missing = sorted(set(precisions) - set(names))
    if missing:
        raise PyflowError(f"peers: hls4ml named the layers {sorted(names)}; no {missing[0]!r}")
    for name, types in precisions.items():
        names[name]["Precision"].update(types)
    inputs = [name for name in names if name not in precisions]
    for name in inputs:  # the input layer: uint8 pixels
        names[name]["Precision"]["result"] = f"ap_ufixed<{network.input_bits},{network.input_bits}>"
    return config


def measure_hls4ml(network: Network, images: np.ndarray, logits: np.ndarray, labels: np.ndarray, folder: Path,
                   settings: Settings, io_type: str) -> CsimResult:
    import hls4ml

    model, precisions = torch_model(network)
    codegen, builds, compiled = [], [], None
    for repeat in range(settings.repeats):
        out = folder / f"hls4ml-{io_type}-{repeat}"

        def convert(out: Path = out) -> Any:
            config = hls4ml_config(model, network, precisions, settings.backend)
            converted = hls4ml.converters.convert_from_pytorch_model(
                model, output_dir=str(out), backend=settings.backend, io_type=io_type, hls_config=config)
            converted.write()
            return converted

        with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints the topology and progress
            seconds, compiled = _timed(convert)
            codegen.append(seconds)
            builds.append(_timed(compiled.compile)[0])  # compile() writes the project again, then runs g++
    batch = np.ascontiguousarray(images, dtype=np.float64)  # float64: the double-typed entry, exact logits
    runs = [_timed(lambda: compiled.predict(batch)) for _ in range(settings.repeats)]
    predicted = np.asarray(runs[-1][1]).reshape(logits.shape)
    return CsimResult(f"hls4ml {settings.backend} {io_type}", statistics.median(codegen), statistics.median(builds),
                      len(images) / statistics.median(seconds for seconds, _ in runs),
                      int((predicted == logits).sum()), logits.size,
                      float((predicted.argmax(1) == logits.argmax(1)).mean()),
                      float((predicted.argmax(1) == labels).mean()))


# --- cycles -----------------------------------------------------------------------------------------------------


def finn_mvau_cycles(mh: int, mw: int, pe: int, simd: int, pixels: int) -> int:
    """FINN's dense MVAU estimate: every weight of the ``MH × MW`` matrix is visited for every output pixel."""
    if mh % pe or mw % simd:
        raise PyflowError(f"FINN MVAU: PE {pe} must divide MH {mh} and SIMD {simd} must divide MW {mw}")
    return (mh // pe) * (mw // simd) * pixels


def finn_dense_cycles(layer: MatrixLayer) -> int:
    """FINN's estimate for ``layer`` with MH and MW padded as pyflow pads them (MH to PE, C_in to SIMD)."""
    return finn_mvau_cycles(layer.m_pad, layer.n_pad, layer.pe, layer.simd, layer.out_pixels)


def measure_rtl(network: Network, folder: Path, vectors: int) -> tuple[dict[str, Any] | None, str]:
    """The Icarus bench's sim_icarus.json (per-layer measured cycles), or None and why not."""
    import json

    from pyflow.codegen import rtl as rtl_codegen
    from pyflow.sim import rtl as rtl_sim

    if vectors == 0:
        return None, "skipped (--rtl-vectors 0)"
    try:
        project = rtl_codegen.generate(network, None, folder / "pyflow-rtl")
        summary = rtl_sim.run_sim(project, "icarus", vectors=vectors, seed=0)
    except (PyflowError, OSError, RuntimeError) as exc:
        return None, f"unavailable: {exc}"
    if not summary["bit_exact"]:
        return None, f"unavailable: the RTL differs from the golden model ({summary['mismatches']} mismatches)"
    return json.loads((project / "sim_icarus.json").read_text()), f"Icarus, {vectors} vectors, median per image"


# --- printing ---------------------------------------------------------------------------------------------------


def print_csim(results: list[CsimResult], baseline: float, golden_accuracy: float, images: int,
               repeats: int) -> None:
    print(f"\n1. C simulation, digits test set ({images} images), median of {repeats}")
    print(f"{'tool':24s} {'codegen s':>9s} {'build s':>8s} {'images/s':>9s} {'x golden':>8s} "
          f"{'logits == golden':>17s} {'top-1 agree':>11s} {'accuracy':>8s}")
    print(f"{'golden model (NumPy)':24s} {'-':>9s} {'-':>8s} {baseline:9.0f} {1:7.2f}x {'(reference)':>17s} "
          f"{'-':>11s} {golden_accuracy:8.4f}")
    for r in results:
        top1 = "-" if r.top1 is None else f"{r.top1:.4f}"
        accuracy = "-" if r.accuracy is None else f"{r.accuracy:.4f}"
        print(f"{r.tool:24s} {r.codegen_s:9.3f} {r.build_s:8.2f} {r.images_per_s:9.0f} "
              f"{r.images_per_s / baseline:7.2f}x {f'{r.equal_logits}/{r.outputs}':>17s} {top1:>11s} "
              f"{accuracy:>8s}")
    pyflows = [r for r in results if r.tool.startswith("pyflow")]
    for r in results:
        if r in pyflows:
            continue
        print(f"  {r.tool} / pyflow: codegen x{r.codegen_s / pyflows[0].codegen_s:.1f}, build x"
              f"{r.build_s / pyflows[0].build_s:.2f}")
        for pyflow in pyflows:
            print(f"  {pyflow.tool} / {r.tool}: throughput x{pyflow.images_per_s / r.images_per_s:.2f}")


def print_cycles(network: Network, sim: dict[str, Any] | None, how: str) -> None:
    measured = {row["name"]: row["cycles"] for row in sim["layers"]} if sim else {}
    print(f"\n2. Cycles per image, matrix layers: FINN dense MVAU vs pyflow (measured: {how})")
    print(f"{'layer':6s} {'MH x MW (padded)':>16s} {'PE x SIMD':>9s} {'pixels':>6s} {'kept tiles':>10s} "
          f"{'FINN dense':>10s} {'pyflow model':>12s} {'pyflow RTL':>10s} {'FINN/RTL':>8s}")
    totals = [0, 0, 0]
    for layer in network.matrix_layers:
        finn, model, rtl = finn_dense_cycles(layer), modelled_cycles(layer), measured.get(layer.name)
        totals = [totals[0] + finn, totals[1] + model, totals[2] + (rtl or 0)]
        print(f"{layer.name:6s} {f'{layer.m_pad} x {layer.n_pad}':>16s} {f'{layer.pe} x {layer.simd}':>9s} "
              f"{layer.out_pixels:6d} {f'{layer.n_kept}/{layer.tiles_total}':>10s} {finn:10d} {model:12d} "
              f"{_or_dash(rtl):>10s} {_ratio(finn, rtl):>8s}")
    rtl_total = totals[2] if measured else None
    print(f"{'total':6s} {'':16s} {'':9s} {'':6s} {'':10s} {totals[0]:10d} {totals[1]:12d} {_or_dash(rtl_total):>10s} "
          f"{_ratio(totals[0], rtl_total):>8s}")
    finn_max = max(finn_dense_cycles(layer) for layer in network.matrix_layers)
    pools = sum(row["cycles"] for row in sim["layers"] if row["name"] not in {m.name for m in network.matrix_layers}) \
        if sim else None
    print(f"  pipeline interval (slowest layer): FINN dense {finn_max}, pyflow RTL measured "
          f"{_or_dash(sim['interval_cycles'] if sim else None)}; pyflow RTL latency per image "
          f"{_or_dash(sim['cycles_per_image'] if sim else None)}; pyflow pool engines {_or_dash(pools)} cycles")
    same = all(finn_dense_cycles(layer) == dense_cycles(layer) - fill_cycles(layer) for layer in network.matrix_layers)
    print(f"  FINN dense == pyflow's dense walk (hw.cycles.dense_cycles - fill) for every layer: {same}; "
          "pyflow adds a pipeline fill per layer and image, and one cycle per output fold with no kept tile")


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ratio(a: int, b: int | None) -> str:
    return "-" if not b else f"{a / b:.2f}x"


def print_notes(network: Network, settings: Settings) -> None:
    print("\nnotes")
    print("  * the hls4ml logits are bit-identical by construction, not by hls4ml's defaults: ternary weights "
          "(ap_int<2>), the IR's accumulator width, the requantizer as a BatchNormalization (scale m/2^shift, bias "
          "b/2^shift) in ap_fixed types wide enough for acc*m+b, and the ReLU's output type ap_ufixed<8,8,AP_TRN,"
          "AP_SAT> doing the floor and the clamp. hls4ml writes weights as decimal text; these have < 53 significant "
          "bits, so they load exactly. With config_from_pytorch_model's default ap_fixed<16,6> the 0..255 pixels "
          "alone overflow; a fixed-point model rounded any other way agrees only in top-1, not in every logit.")
    print("  * hls4ml does not skip pruned tiles: they are zero weights of a dense layer; pyflow stores and walks "
          "only the kept tiles. hls4ml's BatchNormalization stays a separate per-channel multiply (not fused: the "
          "convolution's output type is set).")
    from pyflow.sim.csim import CXXFLAGS

    print(f"  * builds: pyflow g++ {CXXFLAGS[0]} of one testbench binary; hls4ml's compile() re-writes the project, "
          "then g++ -O3 of two objects and a shared library. Throughput: pyflow runs its testbench on text files, "
          f"on one process and on {settings.jobs} (the images split into contiguous slices, as `pyflow csim` does by "
          "default); hls4ml predict() calls the library once per image through ctypes (float64 in and out), in "
          "one process.")
    print("  * FINN: MH = C_out padded to a multiple of PE, MW = k*k*C_in with C_in padded to a multiple of SIMD "
          "(as in the IR); FINN itself requires PE | MH and SIMD | MW. Its sliding-window generator, pool and "
          "FIFO cycles are not modelled; the RTL column is pyflow's matrix engines only.")
    cfg = CONFIG.relative_to(CONFIG.parents[1])
    print(f"  * network: {cfg} with {settings.epochs} epochs per phase; layers "
          + ", ".join(f"{m.name} {m.pe}x{m.simd} kept {m.n_kept}/{m.tiles_total}" for m in network.matrix_layers))


def print_versions(settings: Settings) -> None:
    import importlib.metadata

    from pyflow.sim import csim, rtl

    packages = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("hls4ml", "torch", "numpy"))
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print(f"versions: Python {platform.python_version()}, {packages}, {csim.compiler_version()}, "
          f"{rtl.simulator_version('icarus') if settings.rtl_vectors else 'Icarus not run'}")
    print(f"hls4ml calls: config_from_pytorch_model(model, input_shape, granularity='name', backend="
          f"'{settings.backend}', default_precision='{WIDE}') -> every layer's Precision set; "
          f"convert_from_pytorch_model(model, output_dir, backend='{settings.backend}', io_type, hls_config); "
          "write(); compile(); predict(float64 images)")


# --- main -------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="epochs of each compression phase (default 20; --quick 3)")
    parser.add_argument("--repeats", type=int, help="median of this many timings (default 3; --quick 1)")
    parser.add_argument("--rtl-vectors", type=int, help="images through the Icarus bench (default 4; 0 skips)")
    parser.add_argument("--backend", choices=("Vivado", "Vitis"), default="Vivado", help="hls4ml backend")
    parser.add_argument("--io-type", choices=(*IO_TYPES, "both"), help="hls4ml io_type (default both; --quick "
                        "io_parallel)")
    parser.add_argument("--jobs", type=int, default=None, help="pyflow testbench processes (default: one per core)")
    parser.add_argument("--quick", action="store_true", help="3 epochs, 1 repeat, 2 RTL vectors, io_parallel only")
    args = parser.parse_args(argv)
    quick = args.quick
    io_type = args.io_type or ("io_parallel" if quick else "both")
    try:
        return Settings(epochs=_pick(args.epochs, 20, 3, quick), repeats=_pick(args.repeats, 3, 1, quick),
                        rtl_vectors=_pick(args.rtl_vectors, 4, 2, quick), backend=args.backend,
                        io_types=IO_TYPES if io_type == "both" else (io_type,),
                        jobs=_default_jobs() if args.jobs is None else args.jobs)
    except PyflowError as exc:
        parser.error(str(exc))


def _default_jobs() -> int:
    from pyflow.sim.csim import default_jobs

    return default_jobs()


def _pick(given: int | None, full: int, quick_value: int, quick: bool) -> int:
    if given is not None:
        return given
    return quick_value if quick else full


def main(argv: list[str] | None = None) -> int:
    from pyflow.data import load_data

    settings = parse_args(argv)
    start = time.perf_counter()
    data = load_data(DATA)
    with tempfile.TemporaryDirectory(prefix="pyflow-peers-") as tmp:
        folder = Path(tmp)
        seconds, network = _timed(lambda: make_network(folder, settings.epochs))
        images, labels = data.test_x, data.test_y
        logits = golden.run(network, images)
        baseline = len(images) / statistics.median(
            _timed(lambda: golden.run(network, images))[0] for _ in range(settings.repeats))
        results = measure_pyflow(network, images, logits, labels, folder, settings.repeats, settings.jobs)
        results += [measure_hls4ml(network, images, logits, labels, folder, settings, io_type)
                    for io_type in settings.io_types]
        sim, how = measure_rtl(network, folder, settings.rtl_vectors)
    print_versions(settings)
    print(f"network: ternary digits CNN compressed in {seconds:.1f} s")
    print_csim(results, baseline, float((logits.argmax(1) == labels).mean()), len(images), settings.repeats)
    print_cycles(network, sim, how)
    print_notes(network, settings)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PyflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
