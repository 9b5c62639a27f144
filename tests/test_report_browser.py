"""report.html rendered by headless Chromium: the plots are in the DOM and the page paints something."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from test_report import make_run

from pyflow.report import write_report

pytestmark = pytest.mark.browser

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium); `make install` installs it")
    return path


def render(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path)


def png_rows(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered RGB(A) rows of a non-interlaced 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunks.setdefault(kind, []).append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and colour in (2, 6)
    pixel = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride, rows, previous = width * pixel, [], bytes(width * pixel)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - pixel] if x >= pixel else 0
            b, c = previous[x], previous[x - pixel] if x >= pixel else 0
            predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            line[x] = (line[x] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("browser") / "run"
    network = make_run(folder)
    write_report(folder)
    return folder / "report" / "report.html", len(network.matrix_layers)


def test_dom_holds_the_plots(page, tmp_path):
    html, matrix_layers = page
    dom = render(html, tmp_path, "--dump-dom").stdout
    assert dom.count('class="heatmap"') == matrix_layers
    assert dom.count('class="bars utilization"') == 1 and dom.count('class="bars cycles"') == 1
    assert dom.count("<svg") == matrix_layers + 2
    assert dom.count("<rect") > 50 and "bit-exact in every view" in dom


def test_screenshot_is_not_blank(page, tmp_path):
    html, _ = page
    shot = tmp_path / "shot.png"
    render(html, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600")
    width, height, rows = png_rows(shot)
    assert (width, height) == (1200, 1600)
    colours = {row[x:x + 3] for row in rows[::8] for x in range(0, len(row), 24)}
    assert len(colours) > 20  # text, table rules, bars of several colours, heatmap shades
    blue_bar = bytes((0x4E, 0x79, 0xA7))  # the first bar series colour
    assert any(blue_bar in row for row in rows)
