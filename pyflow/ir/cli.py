"""`pyflow random`: write a random (valid, calibrated) IR — the test input of the backends."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("random", help="write a random IR from a compact layer spec")
    parser.add_argument("spec", help='layers, e.g. "conv8k3p1 maxpool2 conv16k3p1 linear10"')
    parser.add_argument("--input-shape", default="1,8,8", help="C,H,W of the uint8 input (default 1,8,8)")
    parser.add_argument("--pe", type=int, default=4)
    parser.add_argument("--simd", type=int, default=4)
    parser.add_argument("--keep", type=float, default=0.5, help="kept fraction of tiles per layer")
    parser.add_argument("--keep-tiles", type=int, default=None, help="kept tiles per layer (overrides --keep)")
    parser.add_argument("--fold", action="append", default=[], metavar="LAYER=PExSIMD",
                        help="per-layer folding, e.g. conv0=8x1 (repeatable)")
    parser.add_argument("--a-bits", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="IR folder to write")
    parser.set_defaults(func=_random)


def _random(args: argparse.Namespace) -> int:
    from pyflow.errors import PyflowError
    from pyflow.ir import random_network, save

    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        raise PyflowError(f"--input-shape: expected C,H,W integers, got {args.input_shape!r}") from None
    if len(shape) != 3:
        raise PyflowError(f"--input-shape: expected C,H,W, got {args.input_shape!r}")
    network = random_network(args.spec, shape, pe=args.pe, simd=args.simd, keep=args.keep,
                             a_bits=args.a_bits, seed=args.seed, folding=_folding(args.fold) or None,
                             keep_tiles=args.keep_tiles)
    save(network, args.out)
    kept = sum(layer.n_kept for layer in network.matrix_layers)
    total = sum(layer.tiles_total for layer in network.matrix_layers)
    print(f"wrote {args.out}: {len(network.layers)} layers, {kept}/{total} tiles kept")
    return 0



def _folding(items: list[str]) -> dict[str, tuple[int, int]]:
    import re

    from pyflow.errors import PyflowError

    folding = {}
    for item in items:
        match = re.fullmatch(r"(\w+)=(\d+)x(\d+)", item)
        if not match:
            raise PyflowError(f"--fold: expected LAYER=PExSIMD (e.g. conv0=8x1), got {item!r}")
        folding[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return folding
