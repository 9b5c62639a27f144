"""`pyflow serial`: stream images through the board over its serial port and check every logit.

The board runs the bitstream of `pyflow pnr` (the wrapper of rtl_templates/board/): the host sends one
image as bytes and reads its logits back (the byte protocol of pyflow.hw.link), compares each logit with
the golden model using ==, and prints how many matched, the board's accuracy on labelled images and the
images per second over the wire (which the UART, not the engine, bounds).

The port is set raw, 8N1, no flow control, at the board's baud (termios: POSIX only).
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyflow.errors import PyflowError
from pyflow.hw.link import LOGIT_BYTES, image_bytes, image_seconds, logits_from_bytes

BAUDS = {rate: getattr(termios, f"B{rate}") for rate in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600,
                                                         1000000, 2000000, 3000000) if hasattr(termios, f"B{rate}")}


@dataclass(frozen=True)
class LinkResult:
    images: int
    logits_compared: int
    mismatches: int
    first_mismatch: dict | None
    correct_labels: int | None  # images whose argmax is the label (None without labels)
    seconds: float

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0 and self.logits_compared > 0


def open_port(port: str, baud: int) -> int:
    """``port`` opened raw, 8N1, no flow control, at ``baud``; a one-line error when it cannot be."""
    if baud not in BAUDS:
        raise PyflowError(f"--baud: {baud} is not a standard rate (one of {', '.join(map(str, BAUDS))})")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        raise PyflowError(f"{port}: cannot open the serial port: {exc.strerror}") from None
    try:
        attrs = termios.tcgetattr(fd)
    except termios.error:
        os.close(fd)
        raise PyflowError(f"{port}: not a serial port (a terminal device is expected)") from None
    iflag, oflag, cflag, lflag, _, _, cc = attrs
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR | termios.IGNCR
               | termios.ICRNL | termios.IXON | termios.IXOFF)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB | termios.CSTOPB | getattr(termios, "CRTSCTS", 0))) | \
        termios.CS8 | termios.CREAD | termios.CLOCAL
    cc[termios.VMIN], cc[termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, BAUDS[baud], BAUDS[baud], cc])
    termios.tcflush(fd, termios.TCIOFLUSH)
    return fd


def read_exactly(fd: int, count: int, timeout: float, what: str) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise PyflowError(f"{what}: got {len(data)} of {count} bytes after {timeout:g} s (is the bitstream "
                              f"loaded, the baud right, and the overrun LED off?)")
        data += os.read(fd, count - len(data))
    return bytes(data)


def stream(fd: int, images: np.ndarray, expected: np.ndarray, labels: np.ndarray | None, timeout: float,
           port: str = "port", progress=None) -> LinkResult:
    """Send every image, read its logits, compare them with ``expected`` (``[N, logits]``) using ==."""
    mismatches, first, correct = 0, None, 0
    start = time.perf_counter()
    for index, image in enumerate(images):
        data = image_bytes(image)
        while data:  # a tty may take fewer bytes than offered
            data = data[os.write(fd, data):]
        reply = read_exactly(fd, expected.shape[1] * LOGIT_BYTES, timeout, f"{port}: image {index}")
        got = np.array(logits_from_bytes(reply, expected.shape[1]), dtype=np.int64)
        bad = np.flatnonzero(got != expected[index])
        mismatches += len(bad)
        if len(bad) and first is None:
            k = int(bad[0])
            first = {"image": index, "logit": k, "got": int(got[k]), "expected": int(expected[index][k])}
        if labels is not None:
            correct += int(np.argmax(got) == labels[index])
        if progress is not None:
            progress(index + 1, len(images))
    return LinkResult(len(images), int(expected.size), mismatches, first, correct if labels is not None else None,
                      time.perf_counter() - start)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serial", help="stream images through the board over its serial port and check "
                                                "every logit against the golden model")
    parser.add_argument("run", help="run folder (or RTL project) whose bitstream the board runs")
    parser.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("--baud", type=int, default=None, help="default: the board's (pnr.json), else 115200")
    parser.add_argument("--data", default=None, help="send the first --images test images of this dataset "
                                                     "(e.g. digits); default: seeded random images")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for one image's logits")
    parser.set_defaults(func=_serial)


def _inputs(network, data: str | None, count: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    if data is None:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, size=(count, *network.input_shape), dtype=np.uint8), None
    from pyflow.data import load_data

    dataset = load_data(data)
    if dataset.input_shape != tuple(network.input_shape):
        raise PyflowError(f"--data {data}: images are {dataset.input_shape}, the network takes "
                          f"{tuple(network.input_shape)}")
    return dataset.test_x[:count], dataset.test_y[:count]


def _board_baud(pnr: Path) -> int:
    """The baud the bitstream's wrapper was built for (pnr.json), else 115200."""
    import json

    if not pnr.is_file():
        return 115200
    try:
        baud = json.loads(pnr.read_text())["uart"]["baud"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PyflowError(f"{pnr}: unreadable or without uart.baud: pass --baud") from None
    if isinstance(baud, bool) or not isinstance(baud, int):
        raise PyflowError(f"{pnr}: uart.baud: expected an integer, got {baud!r}")
    return baud


def _serial(args: argparse.Namespace) -> int:
    from pyflow import golden
    from pyflow.ir import load

    if args.images < 1:
        raise PyflowError(f"--images: must be >= 1, got {args.images}")
    from pyflow.sim.rtl import project_dir

    rtl = project_dir(args.run)  # a run folder's rtl/ or the RTL project itself
    network = load(rtl / "ir")
    baud = args.baud if args.baud is not None else _board_baud(rtl / "pnr" / "pnr.json")
    images, labels = _inputs(network, args.data, args.images, args.seed)
    expected = golden.run(network, images).reshape(len(images), -1).astype(np.int64)
    fd = open_port(args.port, baud)
    try:
        result = stream(fd, images, expected, labels, args.timeout, args.port,
                        lambda done, total: print(f"\r  {done}/{total} images", end="", file=sys.stderr, flush=True))
    finally:
        os.close(fd)
    print(file=sys.stderr)
    wire = image_seconds(int(np.prod(network.input_shape)), expected.shape[1], baud)
    verdict = "PASS" if result.bit_exact else "FAIL"
    print(f"{verdict}: {args.port}: {result.logits_compared} logits of {result.images} images compared, "
          f"{result.mismatches} mismatches; {result.images / result.seconds:.1f} images/s over the wire "
          f"(the UART at {baud} baud allows {1 / wire:.1f})")
    if result.correct_labels is not None:
        print(f"  accuracy on the board: {result.correct_labels}/{result.images} test images of {args.data}")
    if result.first_mismatch:
        print(f"  first mismatch: {result.first_mismatch}")
    return 0 if result.bit_exact else 1
