"""RTL generation: deterministic, ROMs that round-trip to the IR, CLI and error paths, the cycle model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyflow.cli import main
from pyflow.codegen.rtl import generate
from pyflow.errors import PyflowError
from pyflow.hw.cycles import dense_cycles, modelled_cycles
from pyflow.hw.engines import pe_latency, tree_latency
from pyflow.hw.sizing import IDX_FIELD_BITS, alignment_bits, lane_banks, rq_bits
from pyflow.ir import M_BITS, load, save
from pyflow.ir.model import MatrixLayer
from pyflow.random_ir import random_network

SPEC = "conv6k3s1p1 avgpool2 conv5k1 maxpool2 linear4"


@pytest.fixture(scope="module")
def network():
    return random_network(SPEC, (3, 8, 8), pe=3, simd=2, keep=0.5, seed=4)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _words(path: Path) -> list[int]:
    return [int(line, 16) for line in path.read_text().splitlines() if line and not line.startswith("//")]


def test_generation_is_byte_identical(network, tmp_path):
    first = _files(generate(network, None, tmp_path / "a"))
    second = _files(generate(network, None, tmp_path / "b"))
    assert first == second
    assert "verilog/pyflow_top.v" in first and "Makefile" in first and "ir/network.json" in first
    assert b"pf_matrix_layer" in first["verilog/pyflow_top.v"] and b"pf_pool_layer" in first["verilog/pyflow_top.v"]


def test_roms_round_trip_to_the_ir(network, tmp_path):
    project = generate(network, None, tmp_path / "p")
    assert load(project / "ir").name == network.name
    for index, layer in enumerate(network.layers):
        if not isinstance(layer, MatrixLayer):
            continue
        stem = project / "verilog" / f"l{index}_{layer.name}"
        weights = _words(Path(f"{stem}_w.mem"))
        assert weights[:-1] == [int.from_bytes(w.tobytes(), "little") for w in layer.words] and weights[-1] == 0
        mask = (1 << IDX_FIELD_BITS) - 1
        decoded = [((w >> 16 & mask) + (w & mask) * layer.kernel) * layer.chunks + (w >> 32)
                   for w in _words(Path(f"{stem}_idx.mem"))[:-1]]
        assert decoded == layer.col_idx.tolist()
        assert _words(Path(f"{stem}_ptr.mem")) == layer.row_ptr.tolist()
        lane_bits, rq_w = M_BITS + rq_bits(layer), rq_bits(layer)
        for fold, word in enumerate(_words(Path(f"{stem}_rq.mem"))[:-1]):
            for lane in range(layer.pe):
                channel, field = fold * layer.pe + lane, word >> (lane * lane_bits)
                m = (field & 0xFFFF) - ((field & 0x8000) << 1)
                b = (field >> M_BITS) & ((1 << rq_w) - 1)
                b -= (b >> (rq_w - 1)) << rq_w
                assert (m, b) == ((int(layer.m[channel]), int(layer.b[channel])) if channel < layer.out_channels
                                  else (0, 0))


def test_refuses_a_folder_pyflow_did_not_write(network, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PyflowError, match="not a pyflow output folder"):
        generate(network, None, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_generate_rtl(network, tmp_path, capsys):
    save(network, tmp_path / "ir")
    assert main(["generate", str(tmp_path / "ir"), "--backend", "rtl", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "verilog" / "pyflow_top.v").is_file()


def test_sim_names_a_folder_that_is_not_a_project(tmp_path, capsys):
    assert main(["sim", str(tmp_path), "--sim", "icarus"]) == 2
    assert "not an RTL project" in capsys.readouterr().err


def test_missing_simulator_says_how_to_install(network, tmp_path, monkeypatch, capsys):
    import pyflow.tools

    project = generate(network, None, tmp_path / "p")
    real = pyflow.tools.version_of
    monkeypatch.setattr(pyflow.tools, "version_of", lambda name: None if name == "iverilog" else real(name))
    assert main(["sim", str(project), "--sim", "icarus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pyflow: error: iverilog is not installed; install it with: apt-get install -y iverilog"


def test_cycle_model(network):
    conv = network.layers[0]
    kept = np.diff(conv.row_ptr)
    assert modelled_cycles(conv) == conv.out_pixels * int(np.maximum(kept, 1).sum()) + 11 + pe_latency(conv.simd)
    assert dense_cycles(conv) == conv.out_pixels * conv.out_folds * conv.col_folds + 11 + pe_latency(conv.simd)
    pool = network.layers[1]
    assert modelled_cycles(pool) == 16 * 4 + 9
    assert [tree_latency(n) for n in (1, 2, 3, 4, 5, 8, 9, 16, 17)] == [1, 1, 1, 1, 2, 2, 2, 2, 3]


@pytest.mark.rtl
def test_project_makefile_runs_the_bench(network, tmp_path):
    project = generate(network, None, tmp_path / "both" / "rtl")  # the `--backend both` layout
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["make", "-C", str(project), "sim", "SIM=icarus", "VECTORS=2"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "PASS: icarus: 8 outputs compared, 0 mismatches" in result.stdout
    summary = json.loads((project / "sim_icarus.json").read_text())
    assert summary["bit_exact"] and summary["vectors"] == 2
    assert main(["sim", str(tmp_path / "both"), "--sim", "icarus", "--vectors", "1"]) == 0  # parent folder


def test_a_relative_project_folder_resolves(network, tmp_path, monkeypatch):
    """Verilator and Yosys run inside the project: a relative OUT must reach them absolute."""
    from pyflow.sim.rtl import project_dir

    generate(network, None, tmp_path / "run" / "rtl")
    monkeypatch.chdir(tmp_path)
    assert project_dir("run") == (tmp_path / "run" / "rtl").resolve()
    assert project_dir(Path("run") / "rtl").is_absolute()


@pytest.mark.parametrize("steps,lb,expected", [
    ([32, 16], 5, 4),   # conv writes: pixel stride 32, output folds of PE 16
    ([12, 8], 4, 2),    # a stride of 12 only guarantees multiples of 4
    ([0, 0], 3, 3),     # one pixel, one fold: every access at offset 0
    ([0, 2], 5, 1),     # a flattened input read 2 lanes at a time
    ([1], 0, 0),        # the input stream, element by element
    ([64], 3, 3),       # never more than the lane memories
])
def test_feature_buffer_alignment(steps, lb, expected):
    assert alignment_bits(steps, lb) == expected


def test_feature_buffer_lane_memories():
    assert lane_banks(1024, 16) == (4, 6)   # 16 lane memories of 64 rows
    assert lane_banks(128, 32) == (5, 2)
    assert lane_banks(10, 1) == (0, 4)
    assert lane_banks(3, 4) == (2, 1)       # one row still needs a 1-bit row address
