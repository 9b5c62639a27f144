"""Run the stages in order, skip the unchanged ones, run the verification stages side by side."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pyflow.errors import PyflowError
from pyflow.flow.config import FlowConfig
from pyflow.flow.stages import STAGE_TABLE, progress
from pyflow.runlock import run_lock
from pyflow.util import MARKER, check_output_folder

STAGES = ("train", "fold", "compress", "export", "generate", "csim", "sim", "synth", "pnr", "report")
DEPENDS = {"train": (), "fold": (), "compress": ("train", "fold"), "export": ("compress",),
           "generate": ("export",), "csim": ("generate",), "sim": ("generate",), "synth": ("generate",),
           "pnr": ("generate",), "report": ("export", "csim", "sim", "synth", "pnr")}
# The verification stages only read the generated projects: they run side by side, one process each
# (Icarus, Yosys and nextpnr use one core each), so on 2 cores synth adds no wall time to the simulations.
# pnr places and routes on the board when it has an open flow (ECP5), and says it skips otherwise.
CONCURRENT = ("csim", "sim", "synth", "pnr")


def _fingerprint(settings: Any, upstream: list[str]) -> str:
    from pyflow import __version__

    text = json.dumps({"settings": settings, "upstream": upstream, "pyflow": __version__}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _select(start: str | None, stop: str | None) -> tuple[str, ...]:
    for name, value in (("--from", start), ("--to", stop)):
        if value is not None and value not in STAGES:
            raise PyflowError(f"{name}: unknown stage {value!r} (stages: {', '.join(STAGES)})")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(stop) if stop else len(STAGES) - 1
    if first > last:
        raise PyflowError(f"--from {start} comes after --to {stop}")
    return STAGES[first:last + 1]


def _save_state(path: Path, config: FlowConfig, done: dict[str, str]) -> None:
    state = {"board": config.board, "name": config.name, "config": asdict(config), "stages": done}
    path.write_text(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")


def run_flow(config: FlowConfig, run_dir: str | Path, start: str | None = None, stop: str | None = None,
             force: bool = False) -> Path:
    """Run the stages from ``start`` to ``stop``; a stage whose fingerprint is unchanged is skipped."""
    run_dir = check_output_folder(run_dir)
    selected = _select(start, stop)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):  # a second run on this folder is refused before it writes anything
        return _run_selected(config, run_dir, selected, force)


def _run_selected(config: FlowConfig, run_dir: Path, selected: tuple[str, ...], force: bool) -> Path:
    (run_dir / MARKER).write_text("run\n")
    state_file = run_dir / "run.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    done: dict[str, str] = state.get("stages", {})
    prints: dict[str, str] = {}
    pending: list[tuple[int, str, str]] = []  # verification stages waiting to run side by side
    for position, name in enumerate(STAGES, 1):
        if pending and name not in CONCURRENT:
            _run_stages(pending, config, run_dir, state_file, done)
            pending = []
        stage = STAGE_TABLE[name]
        prints[name] = _fingerprint(stage.settings(config), [prints[d] for d in DEPENDS[name]])
        fresh = done.get(name) == prints[name] and all(p.exists() for p in stage.artifacts(config, run_dir))
        if name not in selected:
            if not fresh and STAGES.index(name) < STAGES.index(selected[0]):
                raise PyflowError(f"stage {name!r} has no up-to-date result in {run_dir}: run without --from first")
            continue
        if fresh and not force:
            progress(f"[{position}/{len(STAGES)}] {name}: up to date, skipped")
            continue
        pending.append((position, name, prints[name]))
        if name not in CONCURRENT:
            _run_stages(pending, config, run_dir, state_file, done)
            pending = []
    if pending:
        _run_stages(pending, config, run_dir, state_file, done)
    return run_dir


def _run_stages(batch: list[tuple[int, str, str]], config: FlowConfig, run_dir: Path, state_file: Path,
                done: dict[str, str]) -> None:
    """Run ``batch`` ((position, name, fingerprint) of each stage) and record each fingerprint as it finishes.

    When a stage fails, the others still run to the end; then the first failure (in stage order) is raised.
    """
    for _, name, _ in batch:
        done.pop(name, None)
    _save_state(state_file, config, done)  # a stage that fails leaves no fingerprint behind
    failures: dict[int, Exception] = {}
    for (position, name, fingerprint), future in _launch(batch, config, run_dir):
        try:
            seconds = future.result()
        except Exception as exc:  # raised below, once the other stages have finished
            failures[position] = exc
            continue
        done[name] = fingerprint
        _save_state(state_file, config, done)
        progress(f"[{position}/{len(STAGES)}] {name}: done in {seconds:.1f} s")
    if failures:
        raise failures[min(failures)]


def _launch(batch: list[tuple[int, str, str]], config: FlowConfig,
            run_dir: Path) -> Iterator[tuple[tuple[int, str, str], Future]]:
    """Each stage of ``batch`` with its finished future, in the order they finish.

    With more than one stage and more than one core, the stages run side by side in spawned worker
    processes (the cocotb runner redirects file descriptors and sets environment variables process-wide).
    """
    workers = min(len(batch), _cpus())
    if workers == 1:
        for entry in batch:
            progress(f"[{entry[0]}/{len(STAGES)}] {entry[1]} …")
            future: Future = Future()
            try:
                future.set_result(_timed_stage(entry[1], config, run_dir))
            except Exception as exc:  # handed to the caller like a worker's failure
                future.set_exception(exc)
            yield entry, future
        return
    for position, name, _ in batch:
        progress(f"[{position}/{len(STAGES)}] {name} …")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_timed_stage, entry[1], config, run_dir): entry for entry in batch}
        for future in as_completed(futures):
            yield futures[future], future


def _timed_stage(name: str, config: FlowConfig, run_dir: Path) -> float:
    begin = time.perf_counter()
    STAGE_TABLE[name].run(config, run_dir)
    return time.perf_counter() - begin


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


