"""The byte protocol of the board wrapper (rtl_templates/board/pf_board_io.v), one home for the host
(`pyflow serial`) and the cocotb bench of the wrapper (rtl_tests/test_board.py).

Host to board: one byte per input element, in the order pyflow_top streams them (HWC: channel innermost).
Board to host: every logit as ``LOGIT_BYTES`` bytes, least significant first, two's complement. The host
sends one image and reads all of its logits before it sends the next (the wrapper holds one byte: a byte
sent while the engine is still busy is an overrun, shown on an LED).
"""

from __future__ import annotations

import numpy as np

from pyflow.errors import PyflowError

LOGIT_BYTES = 4
UART_FRAME_BITS = 10  # start, 8 data bits, stop


def image_bytes(image: np.ndarray) -> bytes:
    """The bytes of one ``(C, H, W)`` image of 8-bit unsigned elements, in stream order."""
    if image.ndim != 3:
        raise PyflowError(f"link: an image must be (C, H, W), got shape {image.shape}")
    if image.size and (image.min() < 0 or image.max() > 255):
        raise PyflowError(f"link: image elements must be 0..255, got {image.min()}..{image.max()}")
    return np.ascontiguousarray(image.transpose(1, 2, 0)).astype(np.uint8).tobytes()


def logits_from_bytes(data: bytes, count: int) -> list[int]:
    """``count`` signed logits from the board's ``count * LOGIT_BYTES`` bytes."""
    if len(data) != count * LOGIT_BYTES:
        raise PyflowError(f"link: expected {count * LOGIT_BYTES} bytes for {count} logits, got {len(data)}")
    return [int.from_bytes(data[i:i + LOGIT_BYTES], "little", signed=True) for i in range(0, len(data), LOGIT_BYTES)]


def logit_bytes(logits: list[int] | np.ndarray) -> bytes:
    """The bytes the board sends for ``logits`` (the fake board of the host's tests)."""
    return b"".join(int(v).to_bytes(LOGIT_BYTES, "little", signed=True) for v in logits)


def image_seconds(image_elements: int, logits: int, baud: int) -> float:
    """The time on the wire of one image and its logits (the UART, not the engine, bounds the rate)."""
    return (image_elements + logits * LOGIT_BYTES) * UART_FRAME_BITS / baud
