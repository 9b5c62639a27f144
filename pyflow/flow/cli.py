"""`pyflow run FLOW.yaml` and `pyflow demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyflow.artifacts import project_root
from pyflow.flow.config import load_flow
from pyflow.flow.runner import STAGES, run_flow

DEMOS = ("digits", "digits-ulx3s", "fashion")  # configs/<name>.yaml


def headline(run_dir: Path) -> str:
    """The report's path and the few numbers a user looks at first, from the written report."""
    from pyflow.report.write import headline as report_headline

    report = json.loads((run_dir / "report" / "report.json").read_text())
    views = ", ".join(f"{view} {doc['status']}" for view, doc in report["verification"]["views"].items())
    return (f"report: {run_dir / 'report' / 'report.html'}\n  bit-exact vs golden: {views}\n"
            f"  {report_headline(report)}")


def register(commands: Any) -> None:
    parser = commands.add_parser("run", help="the whole flow from a YAML file: train → … → report")
    parser.add_argument("flow", help="flow YAML (configs/digits.yaml is the built-in default)")
    parser.add_argument("--out", help="run folder (default runs/<name>)")
    parser.add_argument("--from", dest="start", choices=STAGES, help="first stage to run")
    parser.add_argument("--to", dest="stop", choices=STAGES, help="last stage to run")
    parser.add_argument("--force", action="store_true", help="run the selected stages even if up to date")
    parser.set_defaults(func=_run)
    demo = commands.add_parser("demo", help="a built-in flow: configs/<name>.yaml into runs/<name>")
    demo.add_argument("name", nargs="?", default="digits", choices=DEMOS,
                      help="digits (default: the quick 8x8 run) or fashion (Fashion-MNIST, ~15 minutes)")
    demo.add_argument("--out", help="run folder (default runs/<name>)")
    demo.set_defaults(func=_demo)


def _run(args: Any) -> int:
    config = load_flow(args.flow)
    run_dir = run_flow(config, args.out or Path("runs") / config.name, args.start, args.stop, args.force)
    if (run_dir / "report" / "report.json").is_file():
        print(headline(run_dir))
    return 0


def _demo(args: Any) -> int:
    args.flow, args.start, args.stop, args.force = project_root() / "configs" / f"{args.name}.yaml", None, None, False
    return _run(args)
