"""The Python API of the compression stage (the one-command flow calls these). PyTorch is imported lazily.

* ``train(model_spec, data_spec, epochs, out, seed) -> Path`` — FP training; ``out/model.pt`` (plain
  state_dict of the given model) and ``out/metrics.json``.
* ``compress(CompressConfig) -> Path`` — the checkpoint folder (model.pt, meta.json, metrics.json: torch figures).
* ``export_evaluated(ckpt_dir, data_spec, out) -> (Network, dict)`` — the IR and its eval.json (golden accuracy,
  compression, torch agreement), both saved to ``out`` unless it is None; ``export`` returns the IR alone.
* ``evaluate(ir_dir_or_network, data_spec) -> dict`` — the eval.json content (golden accuracy, torch-free).
* ``layer_shapes(model_spec, data_spec) -> list[LayerGeometry]`` — matrix-layer geometries, before compression.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pyflow import golden
from pyflow.artifacts import EVAL_FILE
from pyflow.compress.config import CompressConfig
from pyflow.data import Dataset, load_data
from pyflow.errors import PyflowError
from pyflow.ir.fields import safe_network_name
from pyflow.ir.geometry import LayerGeometry
from pyflow.ir.metrics import compression
from pyflow.ir.model import Network
from pyflow.util import atomic_folder

CALIBRATION_IMAGES = 512

__all__ = ["CompressConfig", "compress", "evaluate", "export", "export_evaluated", "layer_shapes", "train"]


def _seed(seed: int) -> None:
    import torch

    # Small CNNs train ~4x faster on one thread than on two oversubscribed ones (2-core machines, pytest -n 2);
    # PYFLOW_TORCH_THREADS raises it for large models on large machines.
    torch.set_num_threads(int(os.environ.get("PYFLOW_TORCH_THREADS", "1")))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    from pyflow.compress.checkpoint import write_json

    write_json(path, doc)


def train(model_spec: str, data_spec: str, epochs: int, out: str | Path, seed: int = 0,
          lr: float = 2e-3, batch_size: int = 64) -> Path:
    """Train the model in floating point; write ``out/model.pt`` (plain state_dict) and ``out/metrics.json``."""
    import torch

    from pyflow.compress.train import fit
    from pyflow.models import build_model

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise PyflowError(f"train: epochs must be a non-negative integer, got {epochs!r}")
    data = load_data(data_spec)
    _seed(seed)
    model = build_model(model_spec, data.input_shape, data.num_classes, data.vector)
    accuracy = fit(model, data, epochs, "train", seed, lr, batch_size)
    with atomic_folder(out, kind="train") as tmp:
        torch.save(model.state_dict(), tmp / "model.pt")
        _write_json(tmp / "metrics.json", {"accuracy": accuracy, "data": data_spec, "epochs": epochs,
                                           "model": model_spec, "seed": seed})
    return Path(out)


def _user_model(model_spec: str, data: Dataset, checkpoint: str | None) -> Any:
    from pyflow.compress.checkpoint import load_into, load_state
    from pyflow.models import build_model

    model = build_model(model_spec, data.input_shape, data.num_classes, data.vector)
    if checkpoint:
        load_into(model, load_state(checkpoint), str(checkpoint), model_spec)
    return model


def _per_layer(names: list[str], value: Any, field: str, default: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise PyflowError(f"compress config: {field}: no layer named {unknown[0]!r} (layers: {', '.join(names)})")
        return {name: value.get(name, default) for name in names}
    return {name: value for name in names}


def layer_shapes(model_spec: str, data_spec: str) -> list[LayerGeometry]:
    """Every matrix layer's geometry (for choosing the folding before compression)."""
    from pyflow.compress.graph import geometries
    from pyflow.compress.importer import trace_graph

    data = load_data(data_spec)
    ops, _ = trace_graph(_user_model(model_spec, data, None), data.input_shape, data.vector)
    return geometries(ops)


def compress(config: CompressConfig) -> Path:
    """Run the phases of DESIGN §1 and write the compressed checkpoint folder ``config.out``."""
    from pyflow.compress.chain import ChainNet, calibrate
    from pyflow.compress.checkpoint import save_compressed
    from pyflow.compress.importer import trace_graph
    from pyflow.compress.train import (
        TilePenalty,
        accuracy,
        as_float,
        check_finite,
        fit,
        fraction_for_compression,
        freeze_masks,
        tiles_to_keep,
    )

    if not isinstance(config, CompressConfig):
        raise PyflowError("compress: expected a CompressConfig")
    data = load_data(config.data)
    _seed(config.seed)
    user = _user_model(config.model, data, config.checkpoint)
    ops, sources = trace_graph(user, data.input_shape, data.vector)
    names = [op["name"] for op in ops if op["op"] in ("conv", "linear")]
    _per_layer(names, config.folding, "folding", None)  # refuses unknown layer names
    folding = {name: config.folding_for(name) for name in names}
    model = ChainNet(ops, folding, config.a_bits, config.alpha)
    model.load_from(sources)
    run = dict(seed=config.seed, lr=config.lr, batch_size=config.batch_size)
    history: list[dict[str, Any]] = []
    fp_accuracy = fit(model, data, 0 if config.checkpoint else config.fp_epochs, "fp", **run, history=history)
    if config.compression is not None:
        requested = dict.fromkeys(names, fraction_for_compression(model, config.compression))
    else:
        requested = _per_layer(names, 1.0 if config.keep_tiles is None else config.keep_tiles, "keep_tiles", 1.0)
    model.set_ternary(True)
    penalty = None
    if config.penalty != "none" and config.lam > 0:
        targets = {layer.geom.name: tiles_to_keep(layer.tiles_total, requested[layer.geom.name])
                   for layer in model.matrices()}
        penalty = TilePenalty(model, config.penalty, config.lam, config.kappa, config.tau, config.lam_growth,
                              targets, -(-len(data.train_x) // config.batch_size))
    fit(model, data, config.ternary_epochs, f"ternary+{config.penalty}", **run, extra_loss=penalty,
        threshold_lr=config.threshold_lr, history=history)
    before = accuracy(model, data.test_x, data.test_y)
    nonzero_cut = freeze_masks(model, requested)
    after = accuracy(model, data.test_x, data.test_y)
    calibrate(model, as_float(data.train_x[:CALIBRATION_IMAGES]))
    check_finite(model, "calibration", None)
    model.set_act_quant(True)
    quantized = accuracy(model, data.test_x, data.test_y)
    print(f"[freeze] accuracy {before:.4f} -> {after:.4f} ({nonzero_cut} of the removed tiles still held non-zero "
          f"codes); with {config.a_bits}-bit activations {quantized:.4f}", file=sys.stderr, flush=True)
    torch_accuracy = fit(model, data, config.finetune_epochs, "finetune", **{**run, "lr": config.finetune_lr},
                         threshold_lr=config.threshold_lr, history=history)
    meta = {"model": config.model, "data": config.data, "input_shape": list(data.input_shape), "vector": data.vector,
            "num_classes": data.num_classes, "a_bits": config.a_bits, "alpha": config.alpha,
            "folding": {n: list(v) for n, v in folding.items()}, "ops": model.ops, "requested_keep": requested,
            "config": config.to_json(), "ternary": True, "act_quant": True}
    # the torch figures only: the IR, its golden accuracy and compression belong to export
    metrics = {"torch_accuracy": torch_accuracy, "fp_accuracy": fp_accuracy,
               "freeze": {"accuracy_before": before, "accuracy_after": after, "removed_nonzero_tiles": nonzero_cut,
                          "accuracy_act_quant": quantized},
               **mask_figures(model, requested), "history": history}
    with atomic_folder(config.out, kind="compressed-checkpoint") as tmp:
        save_compressed(tmp, model, meta, metrics)
    print(f"compressed {config.model}: torch accuracy {torch_accuracy:.4f}, kept tiles (masks) "
          f"{metrics['kept_tiles']:.3f}; `pyflow export` builds the IR and its golden figures", file=sys.stderr)
    return Path(config.out)


def mask_figures(model: Any, requested: dict[str, float]) -> dict[str, Any]:
    """Tiles kept by each layer's frozen mask, beside the fraction asked (export then drops all-zero tiles)."""
    layers = []
    for layer in model.matrices():
        kept, total = int(layer.tile_mask.sum()), layer.tiles_total
        layers.append({"name": layer.geom.name, "pe": layer.pe, "simd": layer.simd, "tiles_total": total,
                       "tiles_masked": total - kept, "tiles_kept_by_mask": kept,
                       "requested_keep": requested[layer.geom.name], "achieved_keep": round(kept / total, 6)})
    kept = sum(item["tiles_kept_by_mask"] for item in layers)
    return {"kept_tiles": round(kept / sum(item["tiles_total"] for item in layers), 6), "layers": layers}


def _network_name(model_spec: str) -> str:
    return safe_network_name(Path(model_spec.split(":")[-1]).stem)  # a file name may hold any character


def _ir_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {"source": {key: meta[key] for key in ("model", "data", "a_bits", "alpha", "folding")}}


def export(ckpt_dir: str | Path, data_spec: str, out: str | Path | None) -> Network:
    """The IR of a compressed checkpoint (see :func:`export_evaluated`)."""
    return export_evaluated(ckpt_dir, data_spec, out)[0]


def export_evaluated(ckpt_dir: str | Path, data_spec: str, out: str | Path | None) -> tuple[Network, dict[str, Any]]:
    """The IR of a compressed checkpoint and its evaluation (the eval.json content): golden accuracy and
    compression, and the torch model's test accuracy and its agreement with the golden predictions.

    Activation scales are calibrated on training images if missing. With ``out``, the IR and its eval.json
    are written there.
    """
    from pyflow.compress.chain import ActQuant, calibrate
    from pyflow.compress.checkpoint import load_compressed, write_json
    from pyflow.compress.export import to_network, torch_logits
    from pyflow.compress.train import as_float
    from pyflow.ir.io import save

    model, meta = load_compressed(ckpt_dir)
    data = load_data(data_spec)
    if tuple(data.input_shape) != tuple(meta["input_shape"]):
        raise PyflowError(f"--data {data_spec}: images are {data.input_shape}, the checkpoint {ckpt_dir} was "
                          f"compressed for {tuple(meta['input_shape'])}")
    if any(float(m.scale) <= 0 for m in model.children() if isinstance(m, ActQuant)):
        calibrate(model, as_float(data.train_x[:CALIBRATION_IMAGES]))
    network = to_network(model, _network_name(meta["model"]), data.input_shape, meta["requested_keep"],
                         _ir_meta(meta))
    golden_pred = golden.predict(network, data.test_x)  # once: accuracy and agreement both use it
    torch_pred = torch_logits(model, data.test_x).argmax(1).numpy()
    evaluation = {**_evaluation(network, data, golden_pred),
                  "torch_accuracy": float(np.mean(torch_pred == data.test_y)),
                  "agreement": float(np.mean(golden_pred == torch_pred))}
    if out is not None:
        save(network, out)
        write_json(Path(out) / EVAL_FILE, evaluation)
    return network, evaluation


def evaluate(ir_dir_or_network: str | Path | Network, data_spec: str | Dataset) -> dict[str, Any]:
    """Golden-model accuracy on the test set and the compression figures (the eval.json content)."""
    from pyflow.ir.io import load

    network = ir_dir_or_network if isinstance(ir_dir_or_network, Network) else load(ir_dir_or_network)
    data = data_spec if isinstance(data_spec, Dataset) else load_data(data_spec)
    if tuple(data.input_shape) != tuple(network.input_shape):
        raise PyflowError(f"data {data.name}: images are {data.input_shape}, the network {network.name!r} takes "
                          f"{tuple(network.input_shape)}")
    return _evaluation(network, data, golden.predict(network, data.test_x))


def _evaluation(network: Network, data: Dataset, predictions: np.ndarray) -> dict[str, Any]:
    """eval.json from the golden model's test-set predictions."""
    return {"accuracy": float(np.mean(predictions == data.test_y)), "test_images": int(len(data.test_y)),
            **compression(network)}
