"""The report: PE utilization, cycles, memory, compression, resources and bit-exactness of one run.

``build_report(run_dir, board=None) -> dict`` gathers every figure (each labelled modelled or
measured); ``write_report(run_dir, board=None) -> Path`` writes ``report/report.json``, ``report.md``
and a self-contained ``report.html`` into the run folder, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_report(run_dir: str | Path, board: str | None = None) -> dict[str, Any]:
    from pyflow.report.build import build_report as build

    return build(run_dir, board)


def write_report(run_dir: str | Path, board: str | None = None) -> Path:
    from pyflow.report.write import write_report as write

    return write(run_dir, board)


__all__ = ["build_report", "write_report"]
