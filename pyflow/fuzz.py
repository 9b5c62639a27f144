"""`pyflow fuzz`: seeded random networks, each proven golden == C-sim == Icarus == Verilator, shrunk on failure.

A case is the arguments of `pyflow random` (spec, input shape, PE, SIMD, per-layer folding, kept fraction,
a_bits, seed), so every failure prints the one command that rebuilds its IR. The generator draws from the
families a user can build and the RTL sweep used to miss: first layer flatten / conv / linear, pure MLPs,
pool right before linear, kernels 1/3/5/7, stride 1..3, padding 0..3, 1x1 / 2x2 / odd maps, PE and SIMD
1..16 (non-powers of two, not dividing the channels), a_bits 2..8, kept fractions 0 / one tile / 0.5 / 1,
and chains of 8 layers or more. Designs stay small so that one simulates in seconds.

Residual networks (:func:`generate_residual_case`, ``pyflow fuzz --residual``) draw blocks with identity
and projection skips, strides 1 and 2, pools between blocks, a block on the input image, and the
families in RESIDUAL_FAMILIES.

Failures shrink greedily: drop a layer, halve channels, map, PE, SIMD, fold overrides, while the smaller
case still fails (any view disagreeing with the golden model), then print the shrunk command too.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pyflow.artifacts import DEFAULT_BOARD
from pyflow.errors import PyflowError
from pyflow.hw.cycles import simulation_cost
from pyflow.ir.model import Network, conv_out_size
from pyflow.random_ir import LayerSpec, parse_spec

VIEWS = ("csim", "icarus", "verilator")
FAMILIES = ("first-flatten", "first-conv", "first-linear", "first-pool", "pure-mlp", "pool-before-linear",
            "stride3", "kernel5", "kernel7", "padding2", "padding3", "map1x1", "map2x2", "map-odd", "map11",
            "a_bits2", "pe-not-dividing", "simd-not-dividing", "pe-odd", "simd-odd", "pe16", "simd16",
            "keep0", "single-tile", "keep0.5", "keep1", "maxpool", "avgpool", "pool3", "pool-stride-ne-kernel",
            "long-chain", "per-layer-folding")
RESIDUAL_FAMILIES = ("identity-skip", "projection-skip", "block-on-input", "pool-between-blocks", "two-blocks",
                     "signed-a_bits2", "add-lanes-odd")


@dataclass(frozen=True)
class FuzzCase:
    """The arguments of one `pyflow random` call."""

    spec: str
    shape: tuple[int, int, int]
    pe: int
    simd: int
    keep: float
    a_bits: int
    seed: int
    folding: tuple[tuple[str, int, int], ...] = ()
    keep_tiles: int | None = None  # a count of kept tiles per layer instead of the fraction keep

    def network(self) -> Network:
        return _network(self)

    def build(self) -> Network:
        from pyflow.random_ir import random_network

        folds = {name: (pe, simd) for name, pe, simd in self.folding} or None
        return random_network(self.spec, self.shape, pe=self.pe, simd=self.simd, keep=self.keep,
                              a_bits=self.a_bits, seed=self.seed, folding=folds, keep_tiles=self.keep_tiles)

    def command(self) -> str:
        fold = "".join(f" --fold {name}={pe}x{simd}" for name, pe, simd in self.folding)
        keep = f"{self.keep:g}" if self.keep_tiles is None else f"{self.keep:g} --keep-tiles {self.keep_tiles}"
        return (f"pyflow random {shlex.quote(self.spec)} --input-shape {','.join(map(str, self.shape))} "
                f"--pe {self.pe} --simd {self.simd}{fold} --keep {keep} --a-bits {self.a_bits} "
                f"--seed {self.seed} --out ir")


@functools.lru_cache(maxsize=512)
def _network(case: FuzzCase) -> Network:
    """Networks are immutable and a case always builds the same one: the generator, the family test and
    the runner share it."""
    return case.build()


# ---------------------------------------------------------------- generator


@dataclass
class _Draw:
    rng: np.random.Generator
    shape: tuple[int, int, int]
    layers: list[str] = field(default_factory=list)

    def pick(self, values: list) -> Any:
        return values[int(self.rng.integers(len(values)))]


def generate_case(seed: int) -> FuzzCase:
    """One valid, small random case; the same seed always gives the same case."""
    rng = np.random.default_rng([seed, 12])
    for _ in range(100):
        case = _draw_case(rng, seed)
        if case is not None and _small_enough(case):
            return case
    raise PyflowError(f"fuzz: seed {seed} drew no valid network in 100 tries")  # not seen: the draw is loose


STYLES = ("cnn", "mlp", "long", "cnn", "flatten-mlp", "pool-first", "cnn")
SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 11)
KEEPS = (0.5, 1.0, 0.0, None, 0.5, 1.0)  # cycled by seed (lengths coprime with STYLES: all pairs occur)
A_BITS = (8, 2, 5, 4, 3, 6, 7, 8, 4, 2, 6)


def generate_residual_case(seed: int) -> FuzzCase:
    """One valid, small random residual network; the same seed always gives the same case."""
    rng = np.random.default_rng([seed, 14])
    for _ in range(100):
        case = _draw_residual(rng, seed)
        if _valid(case) and _small_enough(case):
            return case
    raise PyflowError(f"fuzz: seed {seed} drew no valid residual network in 100 tries")


def _draw_residual(rng: np.random.Generator, seed: int) -> FuzzCase:
    """conv (or a block right on the image), 1-3 residual blocks with a pool now and then, the logits."""
    simd = int(rng.choice([1, 2, 3, 4, 8]))
    unit = int(rng.choice([1, 2])) * simd  # channel counts are multiples of SIMD: identity skips need it
    size = int(rng.choice([3, 4, 5, 6, 7, 8]))
    on_input = rng.random() < 0.2
    c_in = unit if on_input else int(rng.integers(1, 5))
    layers = [] if on_input else [f"conv{unit * int(rng.integers(1, 3))}k3s1p1"]
    for _ in range(int(rng.integers(1, 4))):
        if layers and rng.random() < 0.25:
            layers.append("maxpool2s2" if rng.random() < 0.5 else "avgpool2s1")
        stride = int(rng.choice([1, 1, 2]))
        layers.append(f"res{unit * int(rng.integers(1, 3))}" + (f"s{stride}" if stride > 1 else ""))
    layers.append(f"linear{int(rng.integers(2, 11))}" if rng.random() < 0.8 else f"conv{int(rng.integers(1, 5))}k1")
    keep = KEEPS[seed % len(KEEPS)]  # None: a single kept tile per layer
    return FuzzCase(" ".join(layers), (c_in, size, size), int(rng.integers(1, 17)), simd,
                    1.0 if keep is None else keep, A_BITS[seed % len(A_BITS)], seed,
                    keep_tiles=None if keep is not None else 1)


def residual_families(case: FuzzCase) -> set[str]:
    """The RESIDUAL_FAMILIES one residual case belongs to."""
    from pyflow.hw.engines import add_lanes
    from pyflow.ir.model import INPUT, AddLayer

    network = case.network()
    adds = [layer for layer in network.layers if isinstance(layer, AddLayer)]
    found = {"identity-skip" if not add.b_signed else "projection-skip" for add in adds}
    found |= {"block-on-input"} if len(network.consumers(INPUT)) > 1 else set()
    found |= {"two-blocks"} if len(adds) >= 2 else set()
    found |= {"signed-a_bits2"} if adds and case.a_bits == 2 else set()
    found |= {"add-lanes-odd"} if any(add_lanes(add) % 2 for add in adds) else set()
    tokens = case.spec.split()
    pairs = zip(tokens, tokens[1:], strict=False)
    found |= {"pool-between-blocks"} if any("pool" in a and b.startswith("res") for a, b in pairs) else set()
    return found


def _draw_case(rng: np.random.Generator, seed: int) -> FuzzCase | None:
    style = STYLES[seed % len(STYLES)]  # every style within any 7 consecutive seeds
    size = int(rng.choice(SIZES)) if style != "long" else int(rng.choice([4, 5, 6, 8, 11]))
    draw = _Draw(rng, (int(rng.choice([1, 2, 3, 4, 5])), size, size))
    _body(draw, style)
    spec = " ".join(draw.layers)
    specs = parse_spec(spec)
    if not _fits(specs, draw.shape):
        return None
    pe, simd = int(rng.integers(1, 17)), int(rng.integers(1, 17))
    folding = _folding(rng, specs)
    keep = KEEPS[seed % len(KEEPS)]  # None: a single kept tile per layer
    a_bits = A_BITS[seed % len(A_BITS)]
    return FuzzCase(spec, draw.shape, pe, simd, 1.0 if keep is None else keep, a_bits, seed, folding,
                    None if keep is not None else 1)


def _body(draw: _Draw, style: str) -> None:
    rng = draw.rng
    if style in ("mlp", "flatten-mlp"):
        if style == "flatten-mlp":
            draw.layers.append("flatten")
        draw.layers += [f"linear{int(rng.integers(1, 13))}" for _ in range(int(rng.integers(0, 3)))]
    elif style == "long":  # ≥ 8 layers: size-keeping convs, one pool
        draw.layers += [_same_conv(draw) for _ in range(int(rng.integers(5, 8)))]
        draw.layers.insert(int(rng.integers(1, len(draw.layers))), _pool(draw))
        draw.layers.append(f"linear{int(rng.integers(1, 8))}")
    else:
        if style == "pool-first":
            draw.layers.append(_pool(draw))
        for _ in range(int(rng.integers(1, 4))):
            draw.layers.append(_pool(draw) if rng.random() < 0.3 else _conv(draw))
        if rng.random() < 0.4:
            draw.layers.append(_pool(draw))  # pool right before the linear layer (or flatten)
        if rng.random() < 0.2:
            draw.layers.append("flatten")
    if rng.random() < 0.85 or draw.layers[-1:] in (["flatten"], []) or "pool" in draw.layers[-1]:
        draw.layers.append(f"linear{int(rng.integers(1, 11))}")
    else:
        draw.layers.append(_conv(draw))  # conv logits (C x H x W per image)


def _conv(draw: _Draw) -> str:
    k = int(draw.pick([1, 1, 3, 3, 5, 7, 7]))
    s = int(draw.pick([1, 1, 2, 3]))
    p = int(draw.rng.integers(0, min(k, 4)))
    return f"conv{int(draw.rng.integers(1, 11))}k{k}s{s}p{p}"


def _same_conv(draw: _Draw) -> str:
    k = int(draw.pick([1, 3, 3, 5]))
    return f"conv{int(draw.rng.integers(1, 7))}k{k}s1p{k // 2}"


def _pool(draw: _Draw) -> str:
    kind = draw.pick(["maxpool", "avgpool"])
    k = int(draw.pick([2, 2, 3]))
    s = int(draw.pick([k, k, 1, 2, 3]))
    return f"{kind}{k}s{s}"


def _fits(specs: list[LayerSpec], shape: tuple[int, int, int]) -> bool:
    """Every layer's output is at least 1x1 (conv) / the pool kernel fits its input."""
    c, h, _ = shape
    for item in specs:
        if item.kind in ("conv", "res"):
            h, c = conv_out_size(h, item.kernel, item.stride, item.padding), item.channels
        elif item.kind in ("maxpool", "avgpool"):
            if item.kernel > h:
                return False
            h = (h - item.kernel) // item.stride + 1
        elif item.kind in ("flatten", "linear"):
            h, c = 1, (item.channels if item.kind == "linear" else c * h * h)
        if h < 1:
            return False
    return True


def _folding(rng: np.random.Generator, specs: list[LayerSpec]) -> tuple[tuple[str, int, int], ...]:
    """Now and then a per-layer (PE, SIMD) override, as a user's folding file would give."""
    names = [f"{item.kind}{index}" for index, item in enumerate(specs) if item.kind in ("conv", "linear")]
    chosen = [name for name in names if rng.random() < 0.15]
    return tuple((name, int(rng.integers(1, 17)), int(rng.integers(1, 17))) for name in chosen)


# A simulation costs about (cycles per image) x (lanes: PE x SIMD of every matrix layer, C of every pool);
# these caps keep one network to seconds on Icarus (a 1e6 network took 2 min) and its Verilator build small.
MAX_CYCLES = 4_000
MAX_COST = 120_000
MAX_ROM_TILES = 300


def _small_enough(case: FuzzCase) -> bool:
    try:
        network = case.network()
    except PyflowError:
        return False
    cycles, cost = simulation_cost(network)
    tiles = sum(layer.tiles_total for layer in network.matrix_layers)
    return cycles <= MAX_CYCLES and cost <= MAX_COST and tiles <= MAX_ROM_TILES


def cases(count: int, seed: int, residual: bool = False) -> list[FuzzCase]:
    """``count`` cases from the seed: case i is generate_case(seed + i) (or the residual generator's)."""
    draw = generate_residual_case if residual else generate_case
    return [draw(seed + index) for index in range(count)]


# ---------------------------------------------------------------- families


def families(case: FuzzCase) -> set[str]:
    """The families (FAMILIES) that one case belongs to."""
    network = case.network()
    specs = parse_spec(case.spec)
    found = set(_first_layer(specs)) | _map_families(network) | _lane_families(network)
    found |= _kernel_families(network) | _pool_families(network) | _keep_families(case, network)
    if all(item.kind in ("flatten", "linear") for item in specs):
        found.add("pure-mlp")
    kinds = [getattr(layer, "kind", "flatten") for layer in network.layers]
    if any(a.endswith("pool") and b in ("flatten", "linear") for a, b in zip(kinds, kinds[1:], strict=False)):
        found.add("pool-before-linear")
    if case.a_bits == 2:
        found.add("a_bits2")
    if len(network.layers) >= 8:
        found.add("long-chain")
    if case.folding:
        found.add("per-layer-folding")
    return found


def _first_layer(specs: list[LayerSpec]) -> list[str]:
    first = specs[0].kind
    return ["first-pool" if first.endswith("pool") else f"first-{first}"]


def _map_families(network: Network) -> set[str]:
    sizes = {layer.in_shape[1] for layer in network.layers if getattr(layer, "kind", "") in ("conv", "maxpool",
                                                                                            "avgpool")}
    sizes |= {network.input_shape[1]}
    found = {"map1x1"} if 1 in sizes else set()
    found |= {"map2x2"} if 2 in sizes else set()
    found |= {"map-odd"} if any(size % 2 and size > 1 for size in sizes) else set()
    return found | ({"map11"} if 11 in sizes else set())


def _lane_families(network: Network) -> set[str]:
    found = set()
    for layer in network.matrix_layers:
        found |= {"pe-not-dividing"} if layer.out_channels % layer.pe else set()
        found |= {"simd-not-dividing"} if layer.c_in % layer.simd else set()
        found |= {"pe-odd"} if layer.pe % 2 and layer.pe > 1 else set()
        found |= {"simd-odd"} if layer.simd % 2 and layer.simd > 1 else set()
        found |= {"pe16"} if layer.pe == 16 else set()
        found |= {"simd16"} if layer.simd == 16 else set()
    return found


def _kernel_families(network: Network) -> set[str]:
    found = set()
    for layer in network.matrix_layers:
        found |= {"stride3"} if layer.stride == 3 else set()
        found |= {f"kernel{layer.kernel}"} if layer.kernel in (5, 7) else set()
        found |= {f"padding{layer.padding}"} if layer.padding in (2, 3) else set()
    return found


def _pool_families(network: Network) -> set[str]:
    found = set()
    for layer in network.layers:
        if getattr(layer, "kind", "") in ("maxpool", "avgpool"):
            found.add(layer.kind)
            found |= {"pool3"} if layer.kernel == 3 else set()
            found |= {"pool-stride-ne-kernel"} if layer.stride != layer.kernel else set()
    return found


def _keep_families(case: FuzzCase, network: Network) -> set[str]:
    if case.keep_tiles == 1:
        return {"single-tile"} if any(layer.n_kept == 1 for layer in network.matrix_layers) else set()
    found = {f"keep{case.keep:g}"}
    return found | ({"keep0"} if any(layer.n_kept == 0 for layer in network.matrix_layers) else set())


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class Options:
    """How each case is checked: the views, the vectors per view, Verilator's randomized initial state."""

    views: tuple[str, ...] = VIEWS
    vectors: int = 4
    random_init: bool = True  # Verilator: --x-assign/--x-initial unique, +verilator+rand+reset+2
    defines: tuple[str, ...] = ()  # extra Verilog defines (the planted-bug test)


@dataclass(frozen=True)
class Outcome:
    case: FuzzCase
    failures: tuple[str, ...]  # one line per view that disagreed with the golden model
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.failures


def check_case(case: FuzzCase, options: Options, work: Path) -> Outcome:
    """Generate the case's HLS and RTL projects under ``work`` and run every view; never raises."""
    start = time.perf_counter()
    failures = []
    try:
        network = case.network()
    except PyflowError as exc:
        return Outcome(case, (f"ir: {exc}",), time.perf_counter() - start)
    for view in options.views:
        try:
            problem = _run_view(network, view, options, work / view, case.seed)
        except PyflowError as exc:
            problem = str(exc)
        if problem:
            failures.append(f"{view}: {problem}")
    return Outcome(case, tuple(failures), time.perf_counter() - start)


def _run_view(network: Network, view: str, options: Options, folder: Path, seed: int) -> str:
    if view == "csim":
        from pyflow.boards import load_board
        from pyflow.codegen import hls
        from pyflow.sim.csim import run_csim

        project = hls.generate(network, load_board(DEFAULT_BOARD), folder)
        report = run_csim(project, vectors=options.vectors, seed=seed, quick=True)
        return "" if report["bit_exact"] else f"{report['mismatches']} of {report['outputs_compared']} logits differ"
    from pyflow.codegen.rtl import generate
    from pyflow.sim.rtl import BuildOptions, run_sim

    build = BuildOptions(random_init=options.random_init and view == "verilator", defines=options.defines,
                         quick_compile=True)
    summary = run_sim(generate(network, None, folder), view, vectors=options.vectors, seed=seed, build=build)
    if summary["bit_exact"]:
        return ""
    first = summary["_raw"].get("first_mismatch") or {}
    message = first.get("message") or f"first {first}"
    return f"{summary['mismatches']} of {summary['outputs_compared']} logits differ; {message}"


# ---------------------------------------------------------------- shrinking


def smaller(case: FuzzCase) -> Iterator[FuzzCase]:
    """Candidate cases one step smaller than ``case``, the biggest reductions first."""
    specs = case.spec.split()
    for index in range(len(specs)):
        if len(specs) > 1:
            yield replace(case, spec=" ".join(specs[:index] + specs[index + 1:]), folding=())
    for index, token in enumerate(specs):
        for fewer in _fewer_channels(token):
            yield replace(case, spec=" ".join(specs[:index] + [fewer] + specs[index + 1:]))
    c, h, w = case.shape
    for shape in ((c, max(1, h // 2), max(1, w // 2)), (c, h - 1, w - 1), (max(1, c // 2), h, w), (c - 1, h, w)):
        if min(shape) >= 1 and shape != case.shape:
            yield replace(case, shape=shape)
    if case.folding:
        yield replace(case, folding=())
    for pe in sorted({1, case.pe // 2, case.pe - 1} - {0, case.pe}):
        yield replace(case, pe=pe)
    for simd in sorted({1, case.simd // 2, case.simd - 1} - {0, case.simd}):
        yield replace(case, simd=simd)


def _fewer_channels(token: str) -> list[str]:
    match = re.fullmatch(r"(conv|linear|res)(\d+)(.*)", token)
    if not match or int(match.group(2)) <= 1:
        return []
    n = int(match.group(2))
    return [f"{match.group(1)}{m}{match.group(3)}" for m in sorted({1, n // 2, n - 1} - {0, n})]


def size(case: FuzzCase) -> tuple[int, ...]:
    """How big a case is, for the shrinker's 'strictly smaller' (layers, then total work)."""
    return (len(case.spec.split()), sum(int(t) for t in re.findall(r"\d+", case.spec)),
            int(np.prod(case.shape)), case.pe + case.simd, len(case.folding))


def shrink(outcome: Outcome, still_fails: Callable[[FuzzCase], Outcome], budget: int = 60) -> Outcome:
    """Greedy shrinking: take the first smaller candidate that is valid and still fails; repeat."""
    best, tried = outcome, 0
    progress = True
    while progress and tried < budget:
        progress = False
        for candidate in smaller(best.case):
            if not _valid(candidate):
                continue
            tried += 1
            result = still_fails(candidate)
            if not result.passed:
                best, progress = result, True
                break
            if tried >= budget:
                break
    return best


def _valid(case: FuzzCase) -> bool:
    try:
        case.network()
    except PyflowError:
        return False
    return True


# ---------------------------------------------------------------- command line


def run(count: int, seed: int, options: Options, work: Path, shrink_failures: bool = True,
        log: Callable[[str], None] = print, budget: int = 60, stop_after: int | None = None,
        residual: bool = False) -> list[Outcome]:
    """Check ``count`` cases from ``seed``; log each failure's command and its shrunk command (at most
    ``budget`` shrink attempts each); stop after ``stop_after`` failures."""
    outcomes, start = [], time.perf_counter()
    for index, case in enumerate(cases(count, seed, residual)):
        outcome = check_case(case, options, work / f"case{index}")
        outcomes.append(outcome)
        elapsed = time.perf_counter() - start
        print(f"[{index + 1}/{count}] {'ok' if outcome.passed else 'FAIL'} in {outcome.seconds:.1f} s; "
              f"about {elapsed / (index + 1) * (count - index - 1) / 60:.0f} min left", file=sys.stderr, flush=True)
        if outcome.passed:
            shutil.rmtree(work / f"case{index}", ignore_errors=True)
            continue
        log(report_failure(outcome))
        if shrink_failures:
            shrunk = shrink(outcome, lambda c, i=index: _check_fresh(c, options, work / f"shrink{i}"), budget)
            log(f"  shrunk: {shrunk.case.command()}  # {shrunk.failures[0]}")
        if stop_after is not None and sum(not o.passed for o in outcomes) >= stop_after:
            break
    return outcomes


def _check_fresh(case: FuzzCase, options: Options, folder: Path) -> Outcome:
    shutil.rmtree(folder, ignore_errors=True)
    return check_case(case, options, folder)


def report_failure(outcome: Outcome) -> str:
    return f"FAIL: {outcome.case.command()}  # " + " | ".join(outcome.failures)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("fuzz", help="random networks: golden == C-sim == Icarus == Verilator")
    parser.add_argument("-n", "--count", type=int, default=20, help="networks to check (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="first case's seed (default: from the clock)")
    parser.add_argument("--views", default=",".join(VIEWS), help="comma-separated: csim,icarus,verilator")
    parser.add_argument("--vectors", type=int, default=4)
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--residual", action="store_true", help="residual networks (forks, skips, adds)")
    parser.add_argument("--work", default=None, help="folder for the generated projects (default: a temp dir)")
    parser.set_defaults(func=_fuzz)


def _fuzz(args: argparse.Namespace) -> int:
    seed = int(time.time()) % 1_000_000 if args.seed is None else args.seed
    views = tuple(view for view in args.views.split(",") if view)
    unknown = set(views) - set(VIEWS)
    if unknown or not views:
        raise PyflowError(f"--views: unknown view(s) {sorted(unknown)} (choose from {', '.join(VIEWS)})")
    if args.count < 1 or args.vectors < 1:
        raise PyflowError("--count and --vectors must be at least 1")
    kind = "residual networks" if args.residual else "networks"
    print(f"pyflow fuzz: {args.count} {kind} from seed {seed} on {', '.join(views)}", flush=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pyflow-fuzz-"))
    start = time.perf_counter()
    outcomes = run(args.count, seed, Options(views=views, vectors=args.vectors), work, not args.no_shrink,
                   log=lambda line: print(line, flush=True), residual=args.residual)
    failed = sum(not outcome.passed for outcome in outcomes)
    print(f"pyflow fuzz: {len(outcomes) - failed}/{len(outcomes)} passed, seed {seed}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    if not args.work and not failed:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0
