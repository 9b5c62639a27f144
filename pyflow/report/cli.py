"""`pyflow report OUT [--board B]`: write OUT/report/ (report.json, report.md, report.html)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="PE utilization, cycles, memory, resources and bit-exactness "
                                                "of a run folder, as JSON, Markdown and HTML")
    parser.add_argument("out", help="run folder (ir/, hls/, rtl/, checkpoint/) or a `pyflow generate` output")
    parser.add_argument("--board", default=None,
                        help="board name or YAML (default: the board in OUT/run.json, else pynq-z2)")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    import json

    from pyflow.report.write import headline, write_report

    folder = write_report(args.out, args.board)
    report = json.loads((folder / "report.json").read_text())
    print(f"wrote {folder}/report.json, report.md, report.html (board {report['board']['name']}, "
          f"chosen by {report['board']['chosen_by']})")
    print(f"  {headline(report)}")
    return 0
