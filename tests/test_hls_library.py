"""The hand-written HLS header library on its own: lane order, ternary terms and the adder tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pyflow.codegen.hls import TEMPLATE_DIR, _chunk_literals
from pyflow.ir.packing import codes_to_words, words_to_codes
from pyflow.sim.csim import CXXFLAGS
from pyflow.tools import ap_types_dir

LANES = 3 * 50  # 300 bits: five 64-bit chunks, the last one partial

PROGRAM = """
#include <cstdio>
#include "pyflow_hls.h"

int main() {
    const ap_uint<64> word[] = {%(chunks)s};
    for (unsigned lane = 0; lane < %(lanes)d; ++lane) std::printf("%%u ", pyflow::lane_code(word, lane).to_uint());
    std::printf("\\n");
    const ap_uint<8> x = 200;
    std::printf("%%lld %%lld %%lld\\n", pyflow::ternary_term<12, 8>(1, x).to_int64(),
                pyflow::ternary_term<12, 8>(3, x).to_int64(), pyflow::ternary_term<12, 8>(0, x).to_int64());
    ap_int<20> values[7];
    for (int i = 0; i < 7; ++i) values[i] = (i - 3) * 1000 + 17;
    std::printf("%%lld\\n", pyflow::adder_tree<7>::sum(values).to_int64());
    return 0;
}
"""


@pytest.mark.csim
def test_library_lane_order_terms_and_adder_tree(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    codes = rng.choice([0, 1, 3], size=(1, LANES)).astype(np.uint8)
    word = int.from_bytes(codes_to_words(codes)[0].tobytes(), "little")
    chunks = ", ".join(f"ap_uint<64>({c})" for c in _chunk_literals(word, -(-2 * LANES // 64)))
    (tmp_path / "t.cpp").write_text(PROGRAM % {"chunks": chunks, "lanes": LANES})
    subprocess.run(["g++", *CXXFLAGS, "-I", str(TEMPLATE_DIR), "-isystem", str(ap_types_dir()), "t.cpp", "-o", "t"],
                   cwd=tmp_path, check=True)
    lines = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [int(v) for v in lines[0].split()] == codes[0].tolist()
    assert words_to_codes(codes_to_words(codes), LANES).tolist() == codes.tolist()
    assert lines[1].split() == ["200", "-200", "0"]
    assert int(lines[2]) == sum((i - 3) * 1000 + 17 for i in range(7))


@pytest.mark.csim
def test_warnings_are_silenced_for_the_ap_types_header_only(tmp_path: Path) -> None:
    # pyflow_hls.h mutes -Wuninitialized around <ap_int.h> (the header reads its own fresh storage);
    # our own code must still fail the build on the same warning.
    (tmp_path / "bad.cpp").write_text('#include "pyflow_hls.h"\n'
                                      "int f(volatile int *p) { int v; if (*p) v = *p; return v * 3; }\n")
    result = subprocess.run(["g++", *CXXFLAGS, "-I", str(TEMPLATE_DIR), "-isystem", str(ap_types_dir()), "-c",
                             "bad.cpp", "-o", "bad.o"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "bad.cpp:2" in result.stderr and "uninitialized" in result.stderr
