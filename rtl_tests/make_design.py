"""Write the default design of `make -C rtl_tests`: a random digits-sized network (1x8x8 input,
conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10, PE 8 x SIMD 8 with SIMD 1 on the first layer,
25 % of tiles kept) as an RTL project. The design is rendered afresh each time and replaces the folder's
only when a file differs, so a template change reaches the bench and an unchanged design keeps its
simulator build.

usage: python make_design.py FOLDER
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from pyflow.codegen.rtl import generate
from pyflow.random_ir import random_network

SPEC = "conv16k3p1 maxpool2 conv32k3p1 maxpool2 linear10"


def same_tree(left: Path, right: Path) -> bool:
    files = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file()) if right.is_dir() else []
    return files == theirs and all(filecmp.cmp(left / f, right / f, shallow=False) for f in files)


def main(folder: str) -> int:
    target = Path(folder)
    network = random_network(SPEC, (1, 8, 8), pe=8, simd=8, keep=0.25, seed=0, folding={"conv0": (8, 1)})
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fresh = generate(network, None, Path(tmp) / "design")
        if same_tree(fresh, target):
            return 0
        shutil.rmtree(target, ignore_errors=True)
        fresh.rename(target)
    print(f"wrote the default design to {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
