"""Write the default design of `make -C rtl_tests`: a random digits-sized network (1x8x8 input,
conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10, PE 8 x SIMD 8 with SIMD 1 on the first layer,
25 % of tiles kept) as an RTL project, unless the folder already holds one.

usage: python make_design.py FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyflow.codegen.rtl import generate
from pyflow.ir import random_network

SPEC = "conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10"


def main(folder: str) -> int:
    if (Path(folder) / "verilog" / "pyflow_top.v").is_file():
        return 0
    network = random_network(SPEC, (1, 8, 8), pe=8, simd=8, keep=0.25, seed=0, folding={"conv0": (8, 1)})
    generate(network, None, folder)
    print(f"wrote the default design to {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
