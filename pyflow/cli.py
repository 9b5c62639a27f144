"""The `pyflow` command line: one subcommand per stage; each stage module registers its own.

A module in COMMAND_MODULES provides ``register(subparsers)`` and sets ``func`` on its parsers;
heavy imports (torch, jinja2, cocotb) happen inside the command, so `pyflow --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pyflow.errors import PyflowError

COMMAND_MODULES = (
    "pyflow.tools",
    "pyflow.random_ir",
    "pyflow.compress.cli",
    "pyflow.codegen.cli",
    "pyflow.boards",
    "pyflow.flow",
    "pyflow.report.cli",
    "pyflow.sim.csim",
    "pyflow.sim.rtl",
    "pyflow.sim.pnr",
    "pyflow.host",
    "pyflow.fuzz",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyflow", description="trained PyTorch CNN → proven sparse ternary FPGA accelerator")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PyflowError as exc:
        print(f"pyflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
