"""One run folder, one writer: a second `pyflow run` on a busy folder is refused, a killed run's lock is cleared."""

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from test_flow import TINY as FLOW_TINY

from pyflow import runlock
from pyflow.errors import PyflowError
from pyflow.flow import load_flow, run_flow
from pyflow.runlock import LOCK_NAME, run_lock

# The tiny flow of tests/test_flow.py, with a checkpoint so the train stage only checks that the file exists.
TINY = FLOW_TINY.replace("train_epochs: 1\n", "train_epochs: 1\ncheckpoint: weights.pt\n")
assert "checkpoint: weights.pt" in TINY

# A real run_flow whose first stage signals that it is running and then waits: it holds the run lock
# exactly as a run busy training would.
HOLDER = """
import sys, time
from dataclasses import replace
from pathlib import Path
from pyflow.flow import load_flow, run_flow, stages

def hold(config, run_dir):
    Path(sys.argv[2]).write_text("running")
    time.sleep(120)

stages.STAGE_TABLE["train"] = replace(stages.STAGE_TABLE["train"], run=hold)
run_flow(load_flow(sys.argv[1]), sys.argv[3], stop="train", force=True)
"""

# Exits 0 when it could take the lock on argv[1], 2 with the one-line refusal when it could not.
TAKE = """
import sys
from pathlib import Path
from pyflow.errors import PyflowError
from pyflow.runlock import run_lock
try:
    with run_lock(Path(sys.argv[1])):
        pass
except PyflowError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    (tmp_path / "weights.pt").write_bytes(b"a trained state_dict")
    (tmp_path / "flow.yaml").write_text(TINY)
    return tmp_path


@pytest.fixture
def holder(flow_dir: Path):
    """A `pyflow run` child busy in its first stage on flow_dir/run."""
    ready = flow_dir / "ready"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, "flow.yaml", str(ready), "run"], cwd=flow_dir,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, f"the holder run ended early: {child.stderr.read()}"
            assert time.monotonic() < deadline, "the holder run did not reach its first stage"
            time.sleep(0.05)
        yield child
    finally:
        child.kill()
        child.wait()
        child.stderr.close()


def pyflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyflow", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def take(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TAKE, str(folder)], capture_output=True, text=True, timeout=60)


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its modification time and, for a file, its bytes."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in [folder, *sorted(folder.rglob("*"))]}


def record(folder: Path) -> dict:
    return json.loads((folder / LOCK_NAME).read_text())


@pytest.mark.parametrize("command", [["run", "flow.yaml", "--out", "run"], ["demo", "--out", "run"]])
def test_a_second_run_is_refused_naming_the_holder(flow_dir, holder, command):
    run = flow_dir / "run"
    holding = record(run)
    assert holding["pid"] == holder.pid and holding["host"] == socket.gethostname()
    started = time.mktime(time.strptime(holding["started"], "%Y-%m-%d %H:%M:%S UTC")) - time.timezone
    assert abs(time.time() - started) < 120
    before = snapshot(run)
    result = pyflow(*command, cwd=flow_dir)
    assert result.returncode == 2
    assert result.stderr == (f"pyflow: error: run: another pyflow run is writing here (pid {holder.pid} on "
                             f"{socket.gethostname()}, started {holding['started']}); wait for it to finish "
                             "or choose another --out\n")
    assert result.stdout == ""
    assert snapshot(run) == before
    assert holder.poll() is None  # the holder is still running, undisturbed


def test_a_killed_runs_lock_is_reported_and_cleared(flow_dir, holder):
    run = flow_dir / "run"
    dead = record(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert record(run) == dead  # the kill left the file behind; only its flock died with the process
    result = pyflow("run", "flow.yaml", "--out", "run", "--to", "train", cwd=flow_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (f"pyflow: run: clearing the stale run lock of pid {dead['pid']} on {dead['host']}, "
                        f"started {dead['started']}, a run that ended without releasing it")
    assert sum("lock" in line for line in lines) == 1
    assert "[1/10] train: done" in result.stderr
    assert not (run / LOCK_NAME).exists()
    assert "train" in json.loads((run / "run.json").read_text())["stages"]


@pytest.mark.parametrize("checkpoint,error", [("weights.pt", None), ("missing.pt", r"missing.pt: file not found")])
def test_the_lock_is_released_after_a_run(flow_dir, checkpoint, error):
    config = load_flow(flow_dir / "flow.yaml")
    config = replace(config, checkpoint=str(flow_dir / checkpoint))
    run = flow_dir / "run"
    if error:
        with pytest.raises(PyflowError, match=error):
            run_flow(config, run, stop="train")
    else:
        run_flow(config, run, stop="train")
    assert not (run / LOCK_NAME).exists() and runlock._held == {}
    assert take(run).returncode == 0  # another process gets it


def test_the_refusal_names_the_holder_exactly(tmp_path):
    with run_lock(tmp_path):
        result = take(tmp_path)
    held = f"pid {os.getpid()} on {socket.gethostname()}"
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path}: another pyflow run is writing here ({held}, started 20")
    assert result.stderr.endswith("UTC); wait for it to finish or choose another --out\n")


def test_reentrant_in_its_thread_refused_in_another(tmp_path):
    refusals: list[str] = []

    def other_thread() -> None:
        try:
            with run_lock(tmp_path):
                pass
        except PyflowError as exc:
            refusals.append(str(exc))

    with run_lock(tmp_path):
        with run_lock(tmp_path):
            pass
        assert take(tmp_path).returncode == 2  # the inner block did not release it
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(refusals) == 1 and f"(pid {os.getpid()} on " in refusals[0]
    assert not (tmp_path / LOCK_NAME).exists() and take(tmp_path).returncode == 0


def _worker(folder: str) -> tuple[bool, str]:
    """In a spawned worker: whether it has the lock file open, and what taking the lock says."""
    lock = str(Path(folder) / LOCK_NAME)
    fds = Path("/proc/self/fd")
    inherited = any(os.path.realpath(fd) == lock for fd in fds.iterdir() if fd.is_symlink())
    try:
        with run_lock(Path(folder)):
            return inherited, "taken"
    except PyflowError as exc:
        return inherited, str(exc)


def test_spawned_workers_neither_hold_nor_release_the_lock(tmp_path):
    """The flow runs csim, sim and synth in spawned workers, as here; they must not inherit the lock."""
    folder = tmp_path.resolve()
    with run_lock(folder):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_worker, [str(folder)]))
        still_held = take(folder).returncode
    assert all(not inherited and "another pyflow run is writing here" in said for inherited, said in results)
    assert still_held == 2


def test_a_forked_child_leaving_the_block_keeps_the_lock(tmp_path):
    """A forked child shares the flock; only the process that took the lock may release it."""
    pid = -1
    try:
        with run_lock(tmp_path):
            pid = os.fork()
            if pid:  # the parent, still inside the block, once the child has left it
                assert os.waitpid(pid, 0)[1] == 0
                held = (tmp_path / LOCK_NAME).exists(), take(tmp_path).returncode
    except BaseException:
        if pid == 0:
            os._exit(1)
        raise
    if pid == 0:  # the child, out of the block: end it without running pytest's clean-up
        os._exit(0)
    assert held == (True, 2)
    assert take(tmp_path).returncode == 0
