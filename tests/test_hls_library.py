"""The hand-written HLS header library on its own: lane order, ternary terms, the adder tree, the residual
add, saturation and the fork."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pyflow import golden
from pyflow.codegen.context import environment, layer_context
from pyflow.codegen.hls import TEMPLATE_DIR, _chunk_literals, _layer_extras
from pyflow.ir.model import M_MAX, M_MIN, MAX_SHIFT, AddLayer
from pyflow.ir.packing import codes_to_words, words_to_codes
from pyflow.sim.csim import CXXFLAGS
from pyflow.tools import ap_types_dir

LANES = 3 * 50  # 300 bits: five 64-bit chunks, the last one partial

PROGRAM = """
#include <cstdio>
#include "pyflow_hls.h"

int main() {
    const unsigned long long word[] = {%(chunks)s};
    for (unsigned lane = 0; lane < %(lanes)d; ++lane) std::printf("%%u ", pyflow::lane_code(word, lane));
    std::printf("\\n");
    const int xs[] = {0, 1, 15, 200, 255};
    for (unsigned code = 0; code < 4; ++code) {
        for (int x : xs) std::printf("%%d ", pyflow::ternary_term(code, x));
    }
    std::printf("\\n");
    static_assert(sizeof(pyflow::lane_sum<32>::type) == 4 && sizeof(pyflow::lane_sum<33>::type) == 8, "lane_sum");
    const pyflow::lane_sum<40>::type wide = 1LL << 38;  // an accumulator wider than an int: long long terms
    std::printf("%%lld %%lld\\n", pyflow::ternary_term(1, wide), pyflow::ternary_term(3, wide));
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
    chunks = ", ".join(_chunk_literals(word, -(-2 * LANES // 64)))
    (tmp_path / "t.cpp").write_text(PROGRAM % {"chunks": chunks, "lanes": LANES})
    subprocess.run(["g++", *CXXFLAGS, "-I", str(TEMPLATE_DIR), "-isystem", str(ap_types_dir()), "t.cpp", "-o", "t"],
                   cwd=tmp_path, check=True)
    lines = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [int(v) for v in lines[0].split()] == codes[0].tolist()
    assert words_to_codes(codes_to_words(codes), LANES).tolist() == codes.tolist()
    xs = [0, 1, 15, 200, 255]  # codes 00 -> 0, 01 -> +x, 10 (invalid, refused on load) -> 0, 11 -> -x
    assert [int(v) for v in lines[1].split()] == [0] * 5 + xs + [0] * 5 + [-x for x in xs]
    assert lines[2].split() == [str(1 << 38), str(-(1 << 38))]
    assert int(lines[3]) == sum((i - 3) * 1000 + 17 for i in range(7))


@pytest.mark.csim
def test_warnings_are_silenced_for_the_ap_types_header_only(tmp_path: Path) -> None:
    # pyflow_hls.h mutes -Wuninitialized around <ap_int.h> (the header reads its own fresh storage);
    # our own code must still fail the build on the same warning.
    (tmp_path / "bad.cpp").write_text('#include "pyflow_hls.h"\n'
                                      "int f(volatile int *p) { int v; if (*p) v = *p; return v * 3; }\n")
    result = subprocess.run(["g++", *CXXFLAGS, "-I", str(TEMPLATE_DIR), "-isystem", str(ap_types_dir()), "-c",
                             "bad.cpp", "-o", "bad.o"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "bad.cpp:2" in result.stderr and "uninitialized" in result.stderr


ADD_CASES = [  # a_signed, b_signed, m_a, m_b, c, shift: the extremes of every field
    (False, True, 177, -196, 10156, 8),
    (True, True, M_MIN, M_MAX, (1 << 25) - 1, 0),
    (True, False, M_MAX, M_MIN, -(1 << 25) + 1, MAX_SHIFT),
    (False, False, -3, 5, -7, 1),
]

ADD_PROGRAM = """
#include <cstdio>
#include "pyflow_hls.h"

%(configs)s
template <class CFG>
void show(const int a_values[], const int b_values[]) {
    typename CFG::in_a_t a[CFG::IN_SIZE];
    typename CFG::in_b_t b[CFG::IN_SIZE];
    typename CFG::out_t out[CFG::OUT_SIZE];
    for (unsigned i = 0; i < CFG::IN_SIZE; ++i) a[i] = a_values[i], b[i] = b_values[i];
    pyflow::add_layer<CFG>(a, b, out);
    for (unsigned i = 0; i < CFG::OUT_SIZE; ++i) std::printf("%%u ", out[i].to_uint());
    std::printf("\\n");
}

int main() {
%(calls)s
    for (int v = -20; v <= 20; ++v) {
        std::printf("%%d %%u ", pyflow::saturate<ap_int<4> >::apply(ap_int<12>(v)).to_int(),
                    pyflow::saturate<ap_uint<4> >::apply(ap_int<12>(v)).to_uint());
    }
    std::printf("\\n");
    ap_int<6> in[5] = {-32, -1, 0, 7, 31}, first[5], second[5];
    pyflow::fork<ap_int<6>, 5>(in, first, second);
    for (int i = 0; i < 5; ++i) std::printf("%%d %%d ", first[i].to_int(), second[i].to_int());
    std::printf("\\n");
    return 0;
}
"""


def _add_values(signed: bool, rng: np.random.Generator, count: int) -> np.ndarray:
    low, high = (-128, 127) if signed else (0, 255)
    return np.concatenate([[low, high, 0, low + 1, high - 1], rng.integers(low, high + 1, count - 5)])


@pytest.mark.csim
def test_library_add_saturate_and_fork(tmp_path: Path) -> None:
    """add_layer (rendered from layer_add.h.j2) == the golden add at every field's extremes; saturate clamps to
    the range of ap_int / ap_uint; fork copies."""
    rng, count = np.random.default_rng(4), 48
    layers = [AddLayer(f"add{i}", (count, 1, 1), 8, ("x", "y"), *case, out_bits=8) for i, case in enumerate(ADD_CASES)]
    env = environment(TEMPLATE_DIR)
    contexts = [{**ctx, **_layer_extras(ctx)} for ctx in (layer_context(layer, i, layer.inputs)
                                                        for i, layer in enumerate(layers))]
    configs = "\n".join(env.get_template("layer_add.h.j2").render(layer=ctx) for ctx in contexts)
    values = [(_add_values(layer.a_signed, rng, count), _add_values(layer.b_signed, rng, count)) for layer in layers]
    calls = "\n".join(f"    {{ const int a[] = {{{', '.join(map(str, a))}}}, b[] = {{{', '.join(map(str, b))}}}; "
                      f"show<{ctx['ident']}>(a, b); }}" for ctx, (a, b) in zip(contexts, values, strict=True))
    (tmp_path / "t.cpp").write_text(ADD_PROGRAM % {"configs": configs, "calls": calls})
    subprocess.run(["g++", *CXXFLAGS, "-I", str(TEMPLATE_DIR), "-isystem", str(ap_types_dir()), "t.cpp", "-o", "t"],
                   cwd=tmp_path, check=True)
    lines = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.splitlines()
    for layer, (a, b), line in zip(layers, values, lines, strict=False):
        expected = golden.run_layer(layer, a.reshape(1, 1, 1, -1), b.reshape(1, 1, 1, -1)).ravel()
        assert [int(v) for v in line.split()] == expected.tolist(), layer.name
    saturated = [int(v) for v in lines[len(layers)].split()]
    assert saturated[0::2] == np.clip(np.arange(-20, 21), -8, 7).tolist()
    assert saturated[1::2] == np.clip(np.arange(-20, 21), 0, 15).tolist()
    assert lines[len(layers) + 1].split() == [str(v) for v in (-32, -32, -1, -1, 0, 0, 7, 7, 31, 31)]
