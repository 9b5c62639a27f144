"""The flow YAML, parsed once into frozen dataclasses; every problem is one line naming the file and the field."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyflow.artifacts import DEFAULT_BOARD, SIMULATORS
from pyflow.compress.config import CompressConfig
from pyflow.config import check_keys, integer, read_yaml
from pyflow.errors import PyflowError

# set at the top level of the flow (they are shared by several stages), never in its compress section
TOP_LEVEL = ("out", "model", "data", "checkpoint", "folding", "pe", "simd", "seed")
UNSET = "-"  # the compress section's output folder until the compress stage names it


@dataclass(frozen=True)
class Verify:
    csim_vectors: int = 100
    sim_vectors: int = 100
    # "auto": Verilator, and Icarus too when its estimated run is short (pyflow.sim.rtl.choose_simulators)
    simulators: tuple[str, ...] | str = "auto"
    # Each Yosys process (one per distinct engine, out of context, and the top's glue) is stopped after
    # this many seconds (0: no limit); VGG-small's slowest unit takes ~80 s, its whole synthesis ~260 s.
    synth_seconds: int = 1800


@dataclass(frozen=True)
class FlowConfig:
    name: str
    model: str = "digits-cnn"
    data: str = "digits"
    checkpoint: str | None = None  # a trained plain state_dict: replaces the train stage
    board: str = DEFAULT_BOARD
    seed: int = 0
    train_epochs: int = 40
    folding: Any = "auto"  # "auto" (sparsity-aware), "uniform" (board default), or {layer: [pe, simd]} fixed
    # the compress section: CompressConfig's own settings (keep_tiles, penalty, epochs, …); the fields of
    # TOP_LEVEL are filled in by the compress stage (see compress_config)
    compress: CompressConfig = field(default_factory=lambda: CompressConfig(out=UNSET))
    verify: Verify = Verify()

    @property
    def keep_tiles(self) -> float | dict[str, float]:
        """The kept fraction the folding is planned for: the compress section's, else 1."""
        return self.compress.keep_tiles or 1.0

    def compress_config(self, out: str, checkpoint: str, folding: dict[str, tuple[int, int]]) -> CompressConfig:
        """The compress section completed with the flow's top-level settings."""
        return replace(self.compress, out=out, model=self.model, data=self.data, checkpoint=checkpoint,
                       seed=self.seed, folding=folding)


def load_flow(path: str | Path) -> FlowConfig:
    """Parse and check a flow YAML; every problem is one line naming the file and the field."""
    where = str(path)
    raw = check_keys(FlowConfig, read_yaml(path), where)
    verify = Verify(**check_keys(Verify, raw.get("verify", {}), f"{where}: verify"))
    for key in ("csim_vectors", "sim_vectors"):
        integer(getattr(verify, key), f"{where}: verify.{key}", 1)
    integer(verify.synth_seconds, f"{where}: verify.synth_seconds", 0)
    if verify.simulators != "auto":
        if not isinstance(verify.simulators, list | tuple) or not verify.simulators or \
                any(s not in SIMULATORS for s in verify.simulators):
            raise PyflowError(f"{where}: verify.simulators: expected auto or a list of {', '.join(SIMULATORS)}, "
                              f"got {verify.simulators!r}")
        verify = replace(verify, simulators=tuple(verify.simulators))
    raw["compress"] = _compress_section(raw.get("compress", {}), where)
    config = FlowConfig(**{**raw, "verify": verify})
    integer(config.train_epochs, f"{where}: train_epochs", 0)
    integer(config.seed, f"{where}: seed", 0)
    if not (config.folding in ("auto", "uniform") or isinstance(config.folding, dict)):
        raise PyflowError(f"{where}: folding: expected auto, uniform or a mapping layer -> [pe, simd]")
    from pyflow.boards import load_board

    try:
        load_board(config.board)  # an unknown board fails now, not after training
    except PyflowError as exc:
        raise PyflowError(f"{where}: board: {exc}") from None
    return config


def _compress_section(section: Any, where: str) -> CompressConfig:
    """The compress section as a validated CompressConfig, so bad settings fail before any stage runs."""
    if not isinstance(section, dict):
        raise PyflowError(f"{where}: compress: expected a mapping of compression settings")
    banned = set(TOP_LEVEL) & set(section)
    if banned:
        raise PyflowError(f"{where}: compress.{sorted(banned)[0]}: set at the top level of the flow, not here")
    try:
        return CompressConfig(out=UNSET, **section)
    except TypeError as exc:
        raise PyflowError(f"{where}: compress: {exc}") from None
    except PyflowError as exc:
        raise PyflowError(f"{where}: compress: {exc}") from None


