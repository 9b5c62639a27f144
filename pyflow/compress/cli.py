"""`pyflow train | compress | export | eval` — the compression stage on the command line.

``pyflow compress`` takes its settings from flags and/or a YAML file (``--config``, same field names as
:class:`~pyflow.compress.config.CompressConfig`, plus ``epochs`` for all phases); flags given explicitly win.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    _train_parser(commands)
    _compress_parser(commands)
    _export_parser(commands)
    _eval_parser(commands)


def _train_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a model in floating point (the FP baseline)")
    parser.add_argument("--model", default="digits-cnn", help="built-in name, file.py:Class or module:Class")
    parser.add_argument("--data", default="digits",
                        help="digits, fashion-mnist[:/folder], mnist:/folder, cifar10:/folder, npz:/file.npz "
                             "or synthetic:CxHxW")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="run folder: writes model.pt and metrics.json")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from pyflow.compress.api import train

    out = train(args.model, args.data, args.epochs, args.out, args.seed)
    print(f"wrote {out / 'model.pt'} and {out / 'metrics.json'}")
    return 0


def _compress_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compress", help="PE-tile pruning + ternarization (+ WPC) of a model")
    add = parser.add_argument
    add("--config", help="YAML file of compress settings (flags override it)")
    add("--model", help="built-in name, file.py:Class or module:Class (default digits-cnn)")
    add("--data", help="digits (default), fashion-mnist[:/folder], mnist:/folder, cifar10:/folder, "
                       "npz:/file.npz or synthetic:CxHxW")
    add("--checkpoint", help="plain state_dict of the trained model (without it an FP phase trains it)")
    add("--pe", type=int)
    add("--simd", type=int)
    add("--folding", help="per-layer PExSIMD, e.g. conv0=4x1,conv1=8x8")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--keep-tiles", help="kept-tile fraction, for all layers or per layer (conv1=0.25,…)")
    target.add_argument("--compression", type=float, help="target weights-only compression ratio, e.g. 21")
    add("--penalty", choices=("none", "group-lasso", "wpc"))
    add("--tau", choices=("target", "threshold"),
        help="WPC's clip: each layer's k-th largest tile (target, default) or kappa * delta * sqrt(|g|)")
    add("--kappa", type=float, help="WPC with --tau threshold: tau = kappa * delta * sqrt(|g|)")
    add("--lam", type=float, help="penalty weight lambda (default 1)")
    add("--lam-growth", type=float,
        help="lambda's factor per penalty epoch while a layer keeps more tiles than its target (default 4; 1: fixed)")
    add("--alpha", choices=("gaussian", "empirical"), help="ternary scale estimate")
    add("--epochs", type=int, help="epochs of every phase (fp, ternary, finetune)")
    for phase in ("fp", "ternary", "finetune"):
        add(f"--{phase}-epochs", type=int)
    add("--a-bits", type=int)
    add("--seed", type=int)
    add("--out", help="compressed checkpoint folder to write")
    parser.set_defaults(func=_compress)


def config_from_args(args: argparse.Namespace) -> object:
    from pyflow.compress.config import CompressConfig, load_yaml, normalise_fields, parse_folding, parse_keep
    from pyflow.errors import PyflowError

    fields = load_yaml(args.config) if args.config else {}
    names = ("model", "data", "checkpoint", "pe", "simd", "compression", "penalty", "tau", "kappa", "lam", "lam_growth",
             "alpha", "epochs", "fp_epochs", "ternary_epochs", "finetune_epochs", "a_bits", "seed", "out")
    flags = {key: getattr(args, key) for key in names}
    flags = normalise_fields({k: v for k, v in flags.items() if v is not None}, "flags")
    if args.folding:
        flags["folding"] = parse_folding(args.folding)
    if args.keep_tiles is not None:
        flags["keep_tiles"] = parse_keep(args.keep_tiles)
    if "keep_tiles" in flags:
        fields.pop("compression", None)
    if "compression" in flags:
        fields.pop("keep_tiles", None)
    merged = {**fields, **flags}
    if "out" not in merged:
        raise PyflowError("compress: --out (or `out:` in the config file) is required")
    return CompressConfig(**merged)


def _compress(args: argparse.Namespace) -> int:
    from pyflow.compress.api import compress

    out = compress(config_from_args(args))
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    print(f"{'layer':8s} {'PExSIMD':>8s} {'tiles':>6s} {'masked':>7s} {'kept':>5s} {'requested':>9s} {'achieved':>8s}")
    for row in metrics["layers"]:
        print(f"{row['name']:8s} {row['pe']:>4d}x{row['simd']:<3d} {row['tiles_total']:6d} {row['tiles_masked']:7d} "
              f"{row['tiles_kept_by_mask']:5d} {row['requested_keep']:9.3f} {row['achieved_keep']:8.3f}")
    print(f"wrote {out}: torch accuracy {metrics['torch_accuracy']:.4f}, kept tiles (masks) "
          f"{metrics['kept_tiles']:.3f}; next: pyflow export {out} --out IR (the IR, golden accuracy, compression)")
    return 0


def _print_layers(metrics: dict) -> None:
    print(f"{'layer':8s} {'PExSIMD':>8s} {'tiles':>6s} {'masked':>7s} {'all-zero':>8s} {'kept':>5s} "
          f"{'requested':>9s} {'achieved':>8s}")
    for row in metrics["layers"]:
        requested = "-" if row["requested_keep"] is None else f"{row['requested_keep']:.3f}"
        print(f"{row['name']:8s} {row['pe']:>4d}x{row['simd']:<3d} {row['tiles_total']:6d} {row['tiles_masked']:7d} "
              f"{row['tiles_all_zero']:8d} {row['tiles_kept']:5d} {requested:>9s} {row['achieved_keep']:8.3f}")


def _export_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="compressed checkpoint -> accelerator IR (integer, packed)")
    parser.add_argument("checkpoint", help="compressed checkpoint folder written by `pyflow compress`")
    parser.add_argument("--data", default="digits", help="dataset (input shape; calibration if needed)")
    parser.add_argument("--out", required=True, help="IR folder to write")
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from pyflow.compress.api import export_evaluated

    network, result = export_evaluated(args.checkpoint, args.data, args.out)
    _print_layers(result)
    print(f"wrote {args.out} (network.json, weights.npz, eval.json): {len(network.layers)} layers; golden accuracy "
          f"{result['accuracy']:.4f} (torch {result['torch_accuracy']:.4f}, agreement {result['agreement']:.3f}); "
          f"compression {result['compression_weights_only']}x weights-only, {result['compression_with_index']}x "
          "with index")
    return 0


def _eval_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="golden-model accuracy and compression of an IR")
    parser.add_argument("ir", help="IR folder")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--json", action="store_true", help="print eval.json and write it into the IR folder")
    parser.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from pyflow.artifacts import EVAL_FILE, write_json
    from pyflow.compress.api import evaluate

    result = evaluate(args.ir, args.data)
    if args.json:
        sys.stdout.write(write_json(Path(args.ir) / EVAL_FILE, result).read_text())
        return 0
    _print_layers(result)
    print(f"golden accuracy {result['accuracy']:.4f} on {result['test_images']} test images; kept tiles "
          f"{result['kept_tiles']:.3f}; compression {result['compression_weights_only']}x weights-only, "
          f"{result['compression_with_index']}x with index")
    return 0
