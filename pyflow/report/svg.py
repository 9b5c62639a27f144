"""Inline SVG plots for report.html: tile-mask heatmaps, grouped bar charts and line charts (no scripts, no external
assets).

Output is a pure function of the numbers: fixed sizes, fixed colours, numbers printed with fixed precision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

KEPT_LOW, KEPT_HIGH = (198, 219, 239), (8, 48, 107)  # lane fill 0 → 1 of a kept tile
SKIPPED = "#eeeeee"
FONT = 'font-family="sans-serif" font-size="11"'
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1")


def _shade(fill: float) -> str:
    mix = [round(lo + (hi - lo) * min(max(fill, 0.0), 1.0)) for lo, hi in zip(KEPT_LOW, KEPT_HIGH, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _blocks(tiles: Sequence[str], max_rows: int, max_cols: int) -> tuple[list[list[float | None]], int, int]:
    """Cell values (mean lane fill of the kept tiles in the block, scaled by the kept share; None: none kept)
    on a grid of at most ``max_rows × max_cols`` blocks of ``br × bc`` tiles."""
    rows, cols = len(tiles), len(tiles[0])
    br, bc = -(-rows // max_rows), -(-cols // max_cols)
    grid = []
    for r0 in range(0, rows, br):
        line = []
        for c0 in range(0, cols, bc):
            block = [ch for row in tiles[r0:r0 + br] for ch in row[c0:c0 + bc]]
            kept = [int(ch) / 9 for ch in block if ch != "."]
            line.append(sum(kept) / len(block) if kept else None)
        grid.append(line)
    return grid, br, bc


def heatmap(name: str, tiles: Sequence[str], width: int = 640, max_rows: int = 160) -> str:
    """Tile mask of one layer: rows = output folds, columns = column folds; kept tiles shaded by lane fill."""
    rows, cols = len(tiles), len(tiles[0])
    left, top = 60, 30
    grid, br, bc = _blocks(tiles, max_rows, (width - left - 20) // 2)
    cell = max(2, min(24, (width - left - 20) // len(grid[0])))
    grid_w, grid_h = cell * len(grid[0]), cell * len(grid)
    total_w, total_h = max(left + grid_w + 20, 560), top + grid_h + 40
    n_kept = sum(ch != "." for row in tiles for ch in row)
    scale = "" if br == bc == 1 else f"; one cell = {br}x{bc} tiles"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" data-layer="{escape(name)}" '
             f'width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}" role="img">',
             f"<title>{escape(name)}: tile mask, {n_kept} of {rows * cols} tiles kept (measured, IR)</title>",
             f'<text x="{left}" y="18" {FONT} font-weight="bold">{escape(name)}: {n_kept}/{rows * cols} tiles kept '
             f"(measured, IR); shade = lane fill{scale}</text>",
             f'<rect x="{left}" y="{top}" width="{grid_w}" height="{grid_h}" fill="{SKIPPED}" stroke="#999"/>']
    for r, line in enumerate(grid):
        for c, value in enumerate(line):
            if value is not None:
                parts.append(f'<rect x="{left + c * cell}" y="{top + r * cell}" width="{cell}" height="{cell}" '
                             f'fill="{_shade(value)}"/>')
    parts.append(f'<text x="{left - 6}" y="{top + 10}" {FONT} text-anchor="end">fold 0</text>')
    if rows > 1 and grid_h >= 24:  # room for the last fold's number below "fold 0"
        parts.append(f'<text x="{left - 6}" y="{top + grid_h}" {FONT} text-anchor="end">{rows - 1}</text>')
    parts += [f'<text x="{left}" y="{top + grid_h + 14}" {FONT}>column fold 0</text>',
              f'<text x="{left + grid_w}" y="{top + grid_h + 14}" {FONT} text-anchor="end">{cols - 1}</text>',
              f'<text x="{left}" y="{top + grid_h + 30}" {FONT} fill="#555">grey: skipped tile (pruned or '
              "all-zero); blue: kept tile, darker = more non-zero lanes</text>", "</svg>"]
    return "\n".join(parts)


def grouped_bars(kind: str, title: str, categories: Sequence[str],
                 series: Sequence[tuple[str, Sequence[float | None]]], y_max: float,
                 y_label: Callable[[float], str], height: int = 260) -> str:
    """Grouped vertical bars: one group per category, one bar per series (None: no bar, marked n/a)."""
    left, top, bottom = 70, 30, 60
    group = max(40, 14 * len(series) + 16)
    plot_w, plot_h = group * len(categories), height - top - bottom
    legend_w = 230
    total_w = left + plot_w + legend_w
    y_max = y_max if y_max > 0 else 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars {escape(kind)}" width="{total_w}" '
             f'height="{height}" viewBox="0 0 {total_w} {height}" role="img">',
             f"<title>{escape(title)}</title>",
             f'<text x="{left}" y="18" {FONT} font-weight="bold">{escape(title)}</text>']
    for step in range(5):
        value = y_max * step / 4
        y = top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{left}" y1="{_n(y)}" x2="{left + plot_w}" y2="{_n(y)}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{_n(y + 4)}" {FONT} text-anchor="end">{escape(y_label(value))}</text>')
    bar = (group - 16) / max(len(series), 1)
    for g, category in enumerate(categories):
        x0 = left + g * group + 8
        for s, (_, values) in enumerate(series):
            value = values[g]
            x = x0 + s * bar
            if value is None:
                parts.append(f'<text x="{_n(x + bar / 2)}" y="{top + plot_h - 3}" font-size="8" '
                             f'font-family="sans-serif" text-anchor="middle" fill="#999">n/a</text>')
                continue
            h = plot_h * min(value, y_max) / y_max
            parts.append(f'<rect x="{_n(x)}" y="{_n(top + plot_h - h)}" width="{_n(bar - 1)}" height="{_n(h)}" '
                         f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(category)}: {escape(series[s][0])} = '
                         f"{escape(y_label(value))}</title></rect>")
        parts.append(f'<text x="{_n(x0 + (group - 16) / 2)}" y="{top + plot_h + 14}" {FONT} '
                     f'text-anchor="middle">{escape(category)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>')
    for s, (label, _) in enumerate(series):
        y = top + 10 + s * 16
        parts.append(f'<rect x="{left + plot_w + 12}" y="{y - 9}" width="10" height="10" '
                     f'fill="{PALETTE[s % len(PALETTE)]}"/>')
        parts.append(f'<text x="{left + plot_w + 26}" y="{y}" {FONT}>{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart(kind: str, title: str, points: Sequence[float], series: Sequence[tuple[str, Sequence[float | None]]],
               bands: Sequence[tuple[str, float, float]], y_label: Callable[[float], str],
               x_range: tuple[float, float] | None = None, width: int = 640, height: int = 280) -> str:
    """Lines over a shared x axis (``points``, spanning ``x_range``); y from 0 to 1; ``bands`` = (label, x_from,
    x_to) shaded alternately and named above the plot (the training phases); None values break a line."""
    left, top, bottom, legend_h = 60, 42, 40, 16 * len(series)
    plot_w, plot_h = width - left - 20, height - top - bottom - legend_h
    x_min, x_max = x_range or ((min(points), max(points)) if points else (0.0, 1.0))
    span = (x_max - x_min) or 1.0

    def x_of(value: float) -> float:
        return left + plot_w * (value - x_min) / span

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * min(max(value, 0.0), 1.0)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lines {escape(kind)}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img">', f"<title>{escape(title)}</title>",
             f'<text x="{left}" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    for index, (label, start, end) in enumerate(bands):
        x0, x1 = x_of(start), x_of(end)
        if index % 2 == 0:
            parts.append(f'<rect x="{_n(x0)}" y="{top}" width="{_n(max(x1 - x0, 1))}" height="{plot_h}" '
                         'fill="#f4f4f4"/>')
        parts.append(f'<text x="{_n((x0 + x1) / 2)}" y="{top - 6}" {FONT} text-anchor="middle">{escape(label)}</text>')
    for step in range(5):
        y = top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{left}" y1="{_n(y)}" x2="{left + plot_w}" y2="{_n(y)}" stroke="#ddd"/>')
        label = escape(y_label(step / 4))
        parts.append(f'<text x="{left - 4}" y="{_n(y + 4)}" {FONT} text-anchor="end">{label}</text>')
    for s, (label, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        runs, current = [], []
        for x, value in zip(points, values, strict=True):
            if value is None:
                runs, current = runs + [current] if current else runs, []
            else:
                current.append(f"{_n(x_of(x))},{_n(y_of(value))}")
        runs += [current] if current else []
        for run in runs:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
        y = top + plot_h + 30 + s * 16
        parts.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + 14}" y="{y}" {FONT}>{escape(label)}</text>')
    parts += [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
              f'<text x="{left + plot_w}" y="{top + plot_h + 14}" {FONT} text-anchor="end">epoch</text>', "</svg>"]
    return "\n".join(parts)
