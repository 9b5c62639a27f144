"""`pyflow generate IR --backend hls|rtl|both --board B --out OUT`.

With ``--backend both`` the projects go to ``OUT/hls`` and ``OUT/rtl``; otherwise OUT is the project.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyflow.artifacts import DEFAULT_BOARD

BACKENDS = ("hls", "rtl", "both")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="generate the HLS C++ and/or Verilog project of an IR")
    parser.add_argument("ir", help="IR folder written by `pyflow export` or `pyflow random`")
    parser.add_argument("--backend", choices=BACKENDS, default="both")
    parser.add_argument("--board", default=DEFAULT_BOARD, help="board name (see `pyflow boards`) or a YAML file")
    parser.add_argument("--out", required=True, help="output folder (replaced if pyflow wrote it)")
    parser.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from pyflow.boards import load_board
    from pyflow.ir import load

    network, board, out = load(args.ir), load_board(args.board), Path(args.out)
    for backend in ("hls", "rtl") if args.backend == "both" else (args.backend,):
        target = out / backend if args.backend == "both" else out
        generate(backend, network, board, target)
        print(f"wrote {target} ({backend})")
    return 0


def generate(backend: str, network, board, out: Path) -> Path:
    """Dispatch to a backend; each writes its folder atomically and deterministically."""
    if backend == "hls":
        from pyflow.codegen.hls import generate as generate_hls
        return generate_hls(network, board, out)
    from pyflow.codegen.rtl import generate as generate_rtl
    return generate_rtl(network, board, out)
