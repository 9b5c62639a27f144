"""One run folder, one writer: `run_lock(folder)` holds FOLDER/.pyflow.lock for the length of a run.

The lock is flock(2) on that file, so the kernel drops it when the holding process dies, however it dies.
While it is held the file records the holder (one JSON line: pid, host, start time) so a second run can
be refused with a message naming it; a clean release removes the file. A lock file whose flock is free
was therefore left by a run that ended without releasing it (SIGKILL, a crash, a power cut): the next
run says so on stderr, clears it and proceeds.

Who holds the lock: flock belongs to the open file description, not to the process. The file is opened
close-on-exec and the flow's workers are *spawned* (a fresh interpreter that gets only its own pipes),
so neither they nor the tools they run (g++, iverilog, yosys) share the description: they can neither
release the lock nor keep it alive after the run itself has died. A *forked* child does share it, so
only the process that took the lock releases it; a forked child leaving the `with` block leaves it held.

Inside one process the lock is re-entrant for the thread that holds it (a nested `run_lock` on the same
folder is a no-op); another thread opens a second description, and flock refuses it like another process.
The lock file is a dot-file at the top of the run folder, beside the `.pyflow` marker: no stage's
artifact, no stage folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyflow.errors import PyflowError

LOCK_NAME = ".pyflow.lock"
RECORD_WAIT = 1.0  # seconds a refused run waits for a holder that has the flock but not yet its record

_held: dict[Path, tuple[int, int]] = {}  # lock file -> (pid, thread id) of this process's holder


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold the run lock of the existing ``folder``; raise PyflowError naming the holder if another run has it."""
    path = (Path(folder) / LOCK_NAME).resolve()
    me = (os.getpid(), threading.get_ident())
    if _held.get(path) == me:
        yield  # re-entered by the holder: the outer block releases
        return
    fd = _acquire(path, folder)
    _held[path] = me
    try:
        yield
    finally:
        _release(path, fd, me)


def _acquire(path: Path, folder: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise PyflowError(f"{folder}: cannot open the run lock {LOCK_NAME}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_holder(fd))
            os.close(fd)
            raise PyflowError(f"{folder}: another pyflow run is writing here ({holder}); "
                              "wait for it to finish or choose another --out") from None
        except OSError as exc:
            os.close(fd)
            raise PyflowError(f"{folder}: cannot lock {LOCK_NAME} ({exc.strerror}): "
                              "choose an --out on a local file system") from None
        if _is_current(fd, path):
            break
        os.close(fd)  # the holder removed this file as it finished: lock the one at the path now
    stale = _read(fd)
    if stale is not None:
        print(f"pyflow: {folder}: clearing the stale run lock of {_describe(stale)}, "
              "a run that ended without releasing it", file=sys.stderr, flush=True)
    _write(fd)
    return fd


def _release(path: Path, fd: int, me: tuple[int, int]) -> None:
    try:
        if me[0] == os.getpid():  # not a forked child: it shares the description with the holder
            del _held[path]
            if _is_current(fd, path):
                path.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _is_current(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (a finishing holder unlinks it before unlocking)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _write(fd: int) -> None:
    record = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode(), 0)


def _read(fd: int) -> dict | None:
    """The holder record in the lock file: None when empty, {} when unreadable (a write cut short)."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def _holder(fd: int) -> dict:
    """The record of the run holding the flock; it writes it just after locking, so wait for it briefly.

    A record naming a dead process on this host is the stale one the holder is about to overwrite.
    """
    deadline = time.monotonic() + RECORD_WAIT
    while True:
        record = _read(fd)
        if record and not _dead_here(record) or time.monotonic() > deadline:
            return record or {}
        time.sleep(0.02)


def _dead_here(record: dict) -> bool:
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _describe(record: dict) -> str:
    if "pid" not in record:
        return "a run whose pid is not recorded"
    return f"pid {record['pid']} on {record.get('host', '?')}, started {record.get('started', '?')}"
