"""HLS C++ backend: generated projects compile clean with g++ and match the golden model bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyflow.boards import load_board
from pyflow.codegen import hls
from pyflow.errors import PyflowError
from pyflow.ir.io import save
from pyflow.random_ir import random_network
from pyflow.sim import csim

BOARD = load_board("pynq-z2")
GEOMETRY = [(1, 1, 0), (1, 2, 0), (3, 1, 0), (3, 1, 1), (3, 2, 0), (3, 2, 1)]  # kernel, stride, padding
LANES = [(1, 1), (2, 3), (3, 5), (4, 4), (5, 7), (7, 2), (8, 8), (16, 16), (16, 1), (1, 16), (6, 9), (2, 12)]
KEEP = [0.0, 0.3, 1.0]
FAST = {0, 7, 11, 14, 19, 22, 27, 33, 40, 45, 53, 61}  # a representative dozen for `make test`
CSIM_KEYS = {"bit_exact", "vectors", "outputs_compared", "mismatches", "compiler", "build_seconds", "run_seconds",
             "jobs"}


def case(i: int) -> dict:
    """Network i of the grid: every geometry, PE/SIMD pair, kept fraction, a_bits and pooling kind recurs."""
    kernel, stride, padding = GEOMETRY[i % len(GEOMETRY)]
    pe, simd = LANES[i % len(LANES)]
    pool = ("maxpool2", "avgpool2")[(i // 2) % 2]
    channels = max(pe, 4) + i % 3
    spec = f"conv{channels}k{kernel}s{stride}p{padding} {pool} conv{5 + i % 4}k3s1p1 linear{3 + i % 8}"
    return {"spec": spec, "input_shape": ((3, 9, 9), (2, 8, 8), (1, 10, 10))[i % 3], "pe": pe, "simd": simd,
            "keep": KEEP[(i // 4) % 3], "a_bits": (8, 4)[(i // 3) % 2], "seed": i,
            "folding": {"conv2": LANES[(i + 5) % len(LANES)]}}


CASES = [pytest.param(i, id=f"net{i}", marks=() if i in FAST else (pytest.mark.slow,)) for i in range(66)]


def small_network(seed: int = 0):
    return random_network("conv6k3s1p1 maxpool2 conv5k3s2p1 avgpool2 linear4", (3, 10, 10), pe=3, simd=2,
                          keep=0.5, seed=seed)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One small generated and compiled project, shared by the tests that only run its testbench."""
    project = hls.generate(small_network(), BOARD, tmp_path_factory.mktemp("hls") / "prj")
    return project, csim.build(project)[0]


def test_grid_covers_the_knobs() -> None:
    cases = [case(i) for i in range(66)]
    lanes = {lane for c in cases for lane in [(c["pe"], c["simd"]), c["folding"]["conv2"]]}
    assert {pe for pe, _ in lanes} >= {1, 3, 5, 7, 16} and {simd for _, simd in lanes} >= {1, 3, 5, 7, 9, 16}
    assert {c["keep"] for c in cases} == {0.0, 0.3, 1.0} and {c["a_bits"] for c in cases} == {4, 8}
    assert all(any(f"k{k}s{s}p{p}" in c["spec"] for c in cases) for k, s, p in GEOMETRY)
    assert {pool for c in cases for pool in ("maxpool", "avgpool") if pool in c["spec"]} == {"maxpool", "avgpool"}
    fast = [case(i) for i in FAST]
    assert {c["keep"] for c in fast} == {0.0, 0.3, 1.0} and {c["a_bits"] for c in fast} == {4, 8}


@pytest.mark.csim
@pytest.mark.parametrize("index", CASES)
def test_csim_matches_golden(index: int, tmp_path: Path) -> None:
    network = random_network(**case(index))
    project = hls.generate(network, BOARD, tmp_path / "prj")
    report = csim.run_csim(project, vectors=6, seed=index)
    assert report["mismatches"] == 0 and report["bit_exact"] is True
    assert report["outputs_compared"] == 6 * network.num_classes
    assert json.loads((project / "csim.json").read_text()) == report


@pytest.mark.csim
@pytest.mark.parametrize(("spec", "shape", "outputs"), [
    ("conv4k3s2p0", (3, 7, 7), 4 * 3 * 3),  # a conv gives the logits: every pixel is compared
    pytest.param("linear5", (6, 1, 1), 5, marks=pytest.mark.slow),  # one layer: no feature buffer at all
])
def test_csim_single_layer_networks(spec: str, shape: tuple, outputs: int, tmp_path: Path) -> None:
    network = random_network(spec, shape, pe=2, simd=4, keep=1.0, seed=2)
    report = csim.run_csim(hls.generate(network, BOARD, tmp_path / "prj"), vectors=3)
    assert report["bit_exact"] and report["outputs_compared"] == 3 * outputs


@pytest.mark.csim
def test_testbench_fails_on_one_wrong_golden_value(built: tuple[Path, Path], tmp_path: Path) -> None:
    project, binary = built
    inputs, golden_file = hls.write_vectors(hls.load_ir(project), tmp_path, 3, seed=5)
    assert csim.run_testbench(binary, inputs, golden_file).passed
    rows = [line.split() for line in golden_file.read_text().splitlines()]
    rows[1][2] = str(int(rows[1][2]) + 1)
    golden_file.write_text("".join(" ".join(row) + "\n" for row in rows))
    result = csim.run_testbench(binary, inputs, golden_file)
    assert result.returncode == 1 and not result.passed
    assert result.mismatches == 1 and result.outputs_compared == 3 * len(rows[0])
    assert "mismatch: image 1 logit 2" in result.output and "FAIL" in result.output


@pytest.mark.csim
@pytest.mark.parametrize("jobs", [1, 2, 3, 5, 8])
def test_worker_processes_find_one_wrong_golden_value(built: tuple[Path, Path], tmp_path: Path, jobs: int) -> None:
    # the slices of 5 images over 2 or 3 workers put image 3 in the last one; 8 workers are capped at 5
    project, binary = built
    inputs, golden_file = hls.write_vectors(hls.load_ir(project), tmp_path, 5, seed=6)
    clean = csim.run_parallel(binary, inputs, golden_file, 5, jobs)
    assert clean.passed and clean.vectors == 5 and clean.output.count("PASS") == min(jobs, 5)
    rows = [line.split() for line in golden_file.read_text().splitlines()]
    rows[3][2] = str(int(rows[3][2]) - 1)
    golden_file.write_text("".join(" ".join(row) + "\n" for row in rows))
    result = csim.run_parallel(binary, inputs, golden_file, 5, jobs)
    assert result.returncode == 1 and not result.passed
    assert (result.vectors, result.mismatches, result.outputs_compared) == (5, 1, 5 * len(rows[0]))
    assert "mismatch: image 3 logit 2" in result.output  # the image's line in the files, not its slice


@pytest.mark.csim
def test_worker_processes_report_a_bad_input_as_an_error(built: tuple[Path, Path], tmp_path: Path) -> None:
    project, binary = built
    inputs, golden_file = hls.write_vectors(hls.load_ir(project), tmp_path, 4, seed=6)
    lines = inputs.read_text().splitlines()
    lines[0] = "300" + lines[0][lines[0].index(" "):]  # a pixel out of range: every worker reads every line
    inputs.write_text("\n".join(lines) + "\n")
    result = csim.run_parallel(binary, inputs, golden_file, 4, 2)
    assert result.returncode == 2 and not result.passed and "image 0: bad or missing pixel 0" in result.output


def test_vectors_are_split_into_contiguous_slices() -> None:
    assert csim._slices(7, 3) == [(0, 2), (2, 2), (4, 3)]
    assert csim._slices(2, 4) == [(0, 1), (1, 1)] and csim._slices(5, 1) == [(0, 5)]
    for vectors in range(1, 30):
        for jobs in range(1, 9):
            slices = csim._slices(vectors, jobs)
            assert [first for first, _ in slices] == [0, *np.cumsum([count for _, count in slices])[:-1]]
            assert sum(count for _, count in slices) == vectors and len(slices) == min(jobs, vectors)
            assert max(count for _, count in slices) - min(count for _, count in slices) <= 1
    with pytest.raises(PyflowError, match="csim: --jobs must be at least 1, got 0"):
        csim._slices(4, 0)


@pytest.mark.csim
def test_testbench_fails_when_it_compares_nothing(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, binary = built
    (tmp_path / "in.txt").write_text("")
    (tmp_path / "golden.txt").write_text("")
    result = csim.run_testbench(binary, tmp_path / "in.txt", tmp_path / "golden.txt")
    assert result.returncode != 0 and result.outputs_compared == 0


@pytest.mark.csim
def test_build_is_reused_and_sources_compile_clean(built: tuple[Path, Path]) -> None:
    project, binary = built
    assert {"-Wall", "-Werror"} <= set(csim.CXXFLAGS)
    stamp = (project / "csim" / "build.json").read_text()
    assert csim.build(project)[0] == binary and (project / "csim" / "build.json").read_text() == stamp


def test_generation_is_deterministic(tmp_path: Path) -> None:
    network = small_network(seed=3)
    first = hls.generate(network, BOARD, tmp_path / "a")
    second = hls.generate(network, BOARD, tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert {"src/pyflow_hls.h", "src/weights.h", "src/top.cpp", "tb/tb.cpp", "run_hls.tcl",
            "ir/network.json"} <= {str(f) for f in files}


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hls, "write_vectors", interrupt)
    with pytest.raises(KeyboardInterrupt):
        hls.generate(small_network(), BOARD, tmp_path / "prj")
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_folder_pyflow_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PyflowError, match="not a pyflow output folder"):
        hls.generate(small_network(), BOARD, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_project_names_the_board_and_uses_no_proprietary_headers(tmp_path: Path) -> None:
    project = hls.generate(small_network(), load_board("zcu104"), tmp_path / "prj")
    tcl = (project / "run_hls.tcl").read_text()
    board = load_board("zcu104")
    assert f"set_part {board.part}" in tcl and f"-period {1000 / board.clock_mhz:.3f}" in tcl
    assert all(step in tcl for step in ("csim_design", "csynth_design", "cosim_design", "export_design"))
    sources = [p.read_text() for p in project.rglob("*") if p.suffix in (".h", ".cpp")]
    assert not any("hls_stream.h" in text or "ap_shift_reg.h" in text for text in sources)
    assert not any("#include" in line and "hls_" in line for text in sources for line in text.splitlines())


def test_wide_words_are_split_into_64_bit_chunks() -> None:
    assert hls._chunk_literals((1 << 64) * 5 + 7, 2) == ["0x0000000000000007ULL", "0x0000000000000005ULL"]


def test_csim_needs_a_project(tmp_path: Path) -> None:
    with pytest.raises(PyflowError, match="not an HLS project"):
        csim.run_csim(tmp_path)


def test_missing_compiler_gives_install_hint(built: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PyflowError, match=r"g\+\+ is not installed; install it with: apt-get install"):
        csim.build(built[0])


@pytest.mark.csim
def test_cli_generate_and_csim(tmp_path: Path) -> None:
    save(small_network(seed=7), tmp_path / "ir")
    run = [sys.executable, "-m", "pyflow"]
    subprocess.run([*run, "generate", str(tmp_path / "ir"), "--backend", "hls", "--board", "pynq-z2",
                    "--out", str(tmp_path / "both" / "hls")], check=True, capture_output=True)
    result = subprocess.run([*run, "csim", str(tmp_path / "both"), "--vectors", "3", "--seed", "2", "--jobs", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "csim PASS: 12 outputs compared over 3 vectors, 0 mismatches" in result.stdout
    assert "on 2 processes" in result.stdout
    report = json.loads((tmp_path / "both" / "hls" / "csim.json").read_text())
    assert set(report) == CSIM_KEYS and report["compiler"].startswith("g++")
    bad = subprocess.run([*run, "csim", str(tmp_path / "ir")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("pyflow: error:") and "Traceback" not in bad.stderr
    bad = subprocess.run([*run, "csim", str(tmp_path / "both"), "--jobs", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "csim: --jobs must be at least 1, got 0" in bad.stderr and "Traceback" not in \
        bad.stderr
