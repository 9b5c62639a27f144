"""Valid random networks from a compact spec, for testing the backends without PyTorch (`pyflow random`).

Spec: layer tokens separated by spaces or commas::

    conv16k3s1p1   conv, 16 output channels, kernel 3, stride 1, padding 1 (k/s/p optional: 3/1/0)
    maxpool2s2     max pooling, kernel 2, stride (optional) 2;  avgpool2 likewise
    flatten        (C, H, W) → (H·W·C, 1, 1);  inserted before a linear layer when missing
    linear10       fully connected, 10 outputs; the last layer gives the logits (``linear10r``: logits
                   clamped at 0, a model ending in ReLU)
    res16s2        residual block (stride optional, 1): conv16k3s2p1 → conv16k3p1 (signed) plus the
                   skip — the block's input itself, or a conv16k1s2 (signed) when the shape changes —
                   then an add; the identity skip needs SIMD dividing the channels (a fork's readers
                   store a pixel alike)

Requantization is calibrated on random images so that activations spread over their whole range
(neither all clamped at zero nor all saturated), which is what makes a random network a good test.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

import numpy as np

from pyflow import golden
from pyflow.errors import PyflowError
from pyflow.ir.check import check_network
from pyflow.ir.fields import MAX_LANES, integer, shape3
from pyflow.ir.model import (
    INPUT,
    LOGIT_BITS,
    M_BITS,
    AddLayer,
    FlattenLayer,
    Layer,
    MatrixLayer,
    Network,
    PoolLayer,
    accumulator_bits,
)
from pyflow.ir.packing import nonzero_tiles, pack

_TOKENS = {
    "conv": re.compile(r"conv(\d+)(?:k(\d+))?(?:s(\d+))?(?:p(\d+))?"),
    "linear": re.compile(r"linear(\d+)(r?)"),
    "maxpool": re.compile(r"maxpool(\d+)(?:s(\d+))?"),
    "avgpool": re.compile(r"avgpool(\d+)(?:s(\d+))?"),
    "flatten": re.compile(r"flatten"),
    "res": re.compile(r"res(\d+)(?:s(\d+))?"),
}


@dataclass(frozen=True)
class LayerSpec:
    kind: str
    channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    relu: bool = False  # logits clamped at 0 (the last layer only)


def parse_spec(spec: str) -> list[LayerSpec]:
    layers = []
    for token in re.split(r"[\s,]+", spec.strip()):
        for kind, pattern in _TOKENS.items():
            match = pattern.fullmatch(token)
            if match:
                layers.append(_layer_spec(kind, match.groups()))
                break
        else:
            raise PyflowError(f"network spec: unknown layer token {token!r} "
                              "(expected conv16k3s1p1, linear10, maxpool2, avgpool2, flatten or res16s2)")
    return layers


def _layer_spec(kind: str, groups: tuple[str | None, ...]) -> LayerSpec:
    if kind == "linear":
        return LayerSpec(kind, int(groups[0]), relu=groups[1] == "r")
    value = [int(g) if g is not None else None for g in groups]
    if kind == "conv":
        return LayerSpec(kind, value[0], value[1] or 3, value[2] or 1, value[3] or 0)
    if kind == "flatten":
        return LayerSpec(kind)
    if kind == "res":
        return LayerSpec(kind, value[0], 3, value[1] or 1, 1)
    return LayerSpec(kind, kernel=value[0], stride=value[1] or value[0])


def random_network(spec: str, input_shape: tuple[int, int, int] = (1, 8, 8), pe: int = 4, simd: int = 4,
                   keep: float = 0.5, a_bits: int = 8, seed: int = 0,
                   folding: dict[str, tuple[int, int]] | None = None, keep_tiles: int | None = None) -> Network:
    """A valid random network: ``keep`` is the kept fraction of tiles in every matrix layer.

    ``folding`` overrides ``(pe, simd)`` per layer name (``conv0``, ``linear3``, …); ``keep_tiles``, when
    given, replaces ``keep`` by a count of kept tiles per layer (1: a single kept tile).
    """
    if not 0.0 <= keep <= 1.0:
        raise PyflowError(f"random_network: keep must lie in [0, 1], got {keep}")
    if keep_tiles is not None and keep_tiles < 0:
        raise PyflowError(f"random_network: keep_tiles must be at least 0, got {keep_tiles}")
    input_shape = _check_args(input_shape, pe, simd, seed, folding)
    rng = np.random.default_rng(seed)
    specs = parse_spec(spec)
    if specs[-1].kind not in ("conv", "linear"):
        raise PyflowError("network spec: the last layer must be conv or linear (it gives the logits)")
    calib = rng.integers(0, 256, size=(64, *input_shape), dtype=np.uint8).transpose(0, 2, 3, 1).astype(np.int64)
    layers: list[Layer] = []
    shape, bits, x = tuple(input_shape), 8, calib
    for index, item in enumerate(specs):
        name = f"{item.kind}{index}"
        last = index == len(specs) - 1
        if item.kind == "linear" and shape[1:] != (1, 1):
            layers.append(FlattenLayer(f"flatten{index}_", shape, bits))
            x, shape = golden.run_layer(layers[-1], x), layers[-1].out_shape
        if item.kind == "res":
            source = layers[-1].name if layers else INPUT
            block = _residual(item, name, source, shape, bits, a_bits, folding or {}, (pe, simd), (keep, keep_tiles),
                              rng, x)
            layers += block
            x, shape, bits = _run_block(block, source, x), block[-1].out_shape, block[-1].out_bits
            continue
        lane = (folding or {}).get(name, (pe, simd))
        layer = _random_layer(item, name, shape, bits, a_bits, lane, (keep, keep_tiles), last, rng, x)
        layers.append(layer)
        x, shape, bits = golden.run_layer(layer, x), layer.out_shape, layer.out_bits
    meta = {"spec": spec, "seed": seed, "keep": keep} | ({} if keep_tiles is None else {"keep_tiles": keep_tiles})
    return check_network(Network(name=f"random-{seed}", input_shape=tuple(input_shape), a_bits=a_bits,
                                 layers=tuple(layers), meta=meta))


def _residual(item: LayerSpec, name: str, source: str, shape: tuple[int, int, int], bits: int, a_bits: int,
              folding: dict[str, tuple[int, int]], lane: tuple[int, int], keep: tuple[float, int | None],
              rng: np.random.Generator, x: np.ndarray) -> list[Layer]:
    """A residual block reading ``source``: main branch ``<name>a`` (ReLU) → ``<name>b`` (signed), skip
    ``source`` itself or ``<name>p`` (a signed 1×1 conv), then the add ``<name>``."""
    channels, stride = item.channels, item.stride
    main_a = LayerSpec("conv", channels, 3, stride, 1)
    first = _random_layer(main_a, f"{name}a", shape, bits, a_bits, folding.get(f"{name}a", lane), keep, False, rng, x,
                          inputs=(source,))
    y = golden.run_layer(first, x)
    second = _random_layer(LayerSpec("conv", channels, 3, 1, 1), f"{name}b", first.out_shape, a_bits, a_bits,
                           folding.get(f"{name}b", lane), keep, False, rng, y, signed=True, inputs=(first.name,))
    block: list[Layer] = [first, second]
    if stride == 1 and channels == shape[0]:
        if first.c_in_pad != channels:
            raise PyflowError(f"network spec: {item.kind}{channels} at SIMD {first.simd}: the identity skip and "
                              f"{first.name} read one buffer, so SIMD must divide the {channels} channels")
        skip, skip_x, skip_signed = source, x, False
    else:
        projection = _random_layer(LayerSpec("conv", channels, 1, stride, 0), f"{name}p", shape, bits, a_bits,
                                   folding.get(f"{name}p", lane), keep, False, rng, x, signed=True, inputs=(source,))
        if projection.c_in_pad != first.c_in_pad:
            raise PyflowError(f"network spec: {projection.name} and {first.name} read one buffer, so they need "
                              "the same SIMD padding")
        block.append(projection)
        skip, skip_x, skip_signed = projection.name, golden.run_layer(projection, x), True
    a = golden.run_layer(second, y)
    block.append(_random_add(name, second.name, skip, second.out_shape, a_bits, skip_signed, a, skip_x, rng))
    return block


def _random_add(name: str, a_name: str, b_name: str, shape: tuple[int, int, int], a_bits: int, b_signed: bool,
                a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> AddLayer:
    """An add whose output spreads over [0, 2^a_bits): random positive multipliers, c centring the batch."""
    shift = 10
    m_a, m_b = (int(round(rng.uniform(0.3, 0.7) * (1 << shift))) for _ in range(2))
    total = a * m_a + b * m_b
    c = int(round((1 << (a_bits - 1)) * (1 << shift) - total.mean())) + (1 << shift >> 1)
    return AddLayer(name, shape, a_bits, (a_name, b_name), a_signed=True, b_signed=b_signed, m_a=m_a, m_b=m_b, c=c,
                    shift=shift, out_bits=a_bits)


def _run_block(block: list[Layer], source: str, x: np.ndarray) -> np.ndarray:
    """The block's add output on ``x``, the output of ``source`` (every layer of a block names its inputs)."""
    values = {source: x}
    for layer in block:
        values[layer.name] = golden.run_layer(layer, *(values[name] for name in layer.inputs))
    return values[block[-1].name]


def _check_args(input_shape: tuple[int, int, int], pe: int, simd: int, seed: int,
                folding: dict[str, tuple[int, int]] | None) -> tuple[int, int, int]:
    """One-line errors for arguments that would otherwise fail deep inside (or allocate a huge batch)."""
    where = "random_network"
    integer(None, "seed", seed, 0, 2**63 - 1, where=where)
    for name, (layer_pe, layer_simd) in [("", (pe, simd)), *(folding or {}).items()]:
        integer(None, f"{name}{'.' if name else ''}pe", layer_pe, 1, MAX_LANES, where=where)
        integer(None, f"{name}{'.' if name else ''}simd", layer_simd, 1, MAX_LANES, where=where)
    return shape3(None, "input_shape", input_shape, where=where)  # before the calibration batch is allocated


def _random_layer(item: LayerSpec, name: str, shape: tuple[int, int, int], bits: int, a_bits: int,
                  lane: tuple[int, int], keep: tuple[float, int | None], last: bool, rng: np.random.Generator,
                  x: np.ndarray, signed: bool = False, inputs: tuple[str, ...] = ()) -> Layer:
    if item.kind == "flatten":
        return FlattenLayer(name, shape, bits)
    if item.kind == "maxpool":
        return PoolLayer(name, "maxpool", shape, item.kernel, item.stride, bits)
    if item.kind == "avgpool":
        shift = 12
        m = round((1 << shift) / item.kernel**2 * rng.uniform(0.8, 1.6))
        return PoolLayer(name, "avgpool", shape, item.kernel, item.stride, bits, m=m,
                         b=int(rng.integers(-(1 << shift), 1 << shift)), shift=shift)
    pe, simd = lane
    kernel = item.kernel if item.kind == "conv" else 1
    layer = _matrix(name, item, shape, bits, a_bits, pe, simd, kernel, keep, last, rng)
    return _calibrate(_replace(layer, signed=signed, inputs=inputs), golden.accumulate(layer, x), a_bits, rng)


def _matrix(name: str, item: LayerSpec, shape: tuple[int, int, int], bits: int, a_bits: int, pe: int,
            simd: int, kernel: int, keep: tuple[float, int | None], last: bool,
            rng: np.random.Generator) -> MatrixLayer:
    c_in = shape[0]
    m_pad, c_in_pad = -(-item.channels // pe) * pe, -(-c_in // simd) * simd
    ternary = np.zeros((m_pad, kernel, kernel, c_in_pad), dtype=np.int8)
    ternary[:item.channels, :, :, :c_in] = rng.integers(-1, 2, size=(item.channels, kernel, kernel, c_in))
    ternary = ternary.reshape(m_pad, -1)
    grid = (m_pad // pe, ternary.shape[1] // simd)
    mask = np.zeros(grid[0] * grid[1], dtype=bool)
    mask[rng.permutation(mask.size)[:round(keep[0] * mask.size) if keep[1] is None else keep[1]]] = True
    packed = pack(ternary, mask.reshape(grid) & nonzero_tiles(ternary, pe, simd), pe, simd)
    zeros = np.zeros(item.channels, dtype=np.int64)
    return MatrixLayer(name=name, kind=item.kind, in_shape=shape, out_channels=item.channels, kernel=kernel,
                       stride=item.stride, padding=item.padding, pe=pe, simd=simd, in_bits=bits,
                       out_bits=LOGIT_BITS if last else a_bits,
                       acc_bits=accumulator_bits(kernel * kernel * c_in, bits), shift=0, m=zeros, b=zeros,
                       words=packed.words, row_ptr=packed.row_ptr, col_idx=packed.col_idx, is_output=last,
                       relu=item.relu)


def _calibrate(layer: MatrixLayer, acc: np.ndarray, a_bits: int, rng: np.random.Generator) -> MatrixLayer:
    """Pick m, b, shift so the calibration batch spreads over [0, 2^a_bits) (or small int32 logits)."""
    channels = layer.out_channels
    sign = rng.choice([-1, 1], size=channels, p=[0.2, 0.8])
    if layer.is_output:
        m = sign * rng.integers(1, 8, size=channels)
        b = rng.integers(-1000, 1000, size=channels)
        return _replace(layer, m=m, b=b, shift=0)
    spread = acc.reshape(-1, channels).std(axis=0) + 1.0
    centre = acc.reshape(-1, channels).mean(axis=0)
    gain = (1 << a_bits) / (3.0 * spread) * rng.uniform(0.7, 1.3, size=channels)  # ±1.5σ spans the range
    shift = max(0, min(24, (M_BITS - 2) - int(np.ceil(np.log2(gain.max())))))
    m = np.maximum(1, np.round(gain * (1 << shift))).astype(np.int64) * sign
    middle = 0 if layer.signed else 1 << (a_bits - 1)  # a signed activation centres on zero
    b = np.round((middle - m / (1 << shift) * centre) * (1 << shift)).astype(np.int64)
    return _replace(layer, m=m, b=b + (1 << shift >> 1), shift=shift)


def _replace(layer: MatrixLayer, **changes: object) -> MatrixLayer:
    fields = {key: getattr(layer, key) for key in layer.__dataclass_fields__}
    return MatrixLayer(**{**fields, **changes})

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
    from pyflow.ir import save

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
    folding = {}
    for item in items:
        match = re.fullmatch(r"(\w+)=(\d+)x(\d+)", item)
        if not match:
            raise PyflowError(f"--fold: expected LAYER=PExSIMD (e.g. conv0=8x1), got {item!r}")
        folding[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return folding

