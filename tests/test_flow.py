"""`pyflow run`: the flow YAML's one-line errors, stage skipping, and bad input leaving nothing behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyflow.errors import PyflowError
from pyflow.flow import load_flow, run_flow, runner, stages

TINY = """name: tiny
model: digits-cnn
data: digits
board: pynq-z2
seed: 0
train_epochs: 1
folding: auto
compress: {keep_tiles: 0.5, penalty: wpc, ternary_epochs: 1, finetune_epochs: 1}
verify: {csim_vectors: 3, sim_vectors: 3, simulators: [icarus]}
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def pyflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyflow", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t + "colour: red\n", r"unknown field 'colour'"),
    (lambda t: t.replace("board: pynq-z2", "board: nexys"), r"unknown board 'nexys'"),
    (lambda t: t.replace("penalty: wpc", "penalty: l7"), r"compress: .*penalty.*l7"),
    (lambda t: t.replace("keep_tiles: 0.5", "keep_tiles: 2"), r"compress: .*keep_tiles.*2"),
    (lambda t: t.replace("compress: {", "compress: {bogus: 1, "), r"compress: .*bogus"),
    (lambda t: t.replace("[icarus]", "[modelsim]"), r"verify.simulators"),
    (lambda t: t.replace("[icarus]", "[]"), r"verify.simulators: expected auto or a list"),
    (lambda t: t.replace("[icarus]", "fastest"), r"verify.simulators: expected auto or a list"),
    (lambda t: t.replace("csim_vectors: 3", "csim_vectors: 0"), r"verify.csim_vectors: must be an integer >= 1"),
    (lambda t: t.replace("folding: auto", "folding: fast"), r"folding: expected auto, uniform or a mapping"),
    (lambda t: t.replace("simulators:", "synth_seconds: -1, simulators:"),
     r"verify.synth_seconds: must be an integer >= 0"),
    (lambda t: t.replace("name: tiny\n", ""), r"missing field 'name'"),
])
def test_flow_yaml_errors(tmp_path, edit, message):
    path = write(tmp_path, edit(TINY))
    with pytest.raises(PyflowError, match=message) as info:
        load_flow(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_bad_yaml_exits_nonzero_and_writes_nothing(tmp_path):
    write(tmp_path, TINY + "colour: red\n")
    result = pyflow("run", "flow.yaml", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "pyflow: error: flow.yaml: unknown field 'colour'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_foreign_out_folder_is_refused(tmp_path):
    write(tmp_path, TINY)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    result = pyflow("run", "flow.yaml", "--out", "mine", cwd=tmp_path)
    assert result.returncode == 2 and "exists and is not a pyflow output folder" in result.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"\x80\x02 definitely not a checkpoint")
    write(tmp_path, TINY.replace("train_epochs: 1", "train_epochs: 1\ncheckpoint: weights.pt"))
    result = pyflow("run", "flow.yaml", "--out", "run", "--to", "compress", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("pyflow: error: ")
    assert "weights.pt" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_unsupported_layer_is_named(tmp_path):
    (tmp_path / "mynet.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3)\n"
        "        self.fc = nn.Linear(144, 10)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.flatten(torch.sigmoid(self.conv(x)), 1))\n")
    write(tmp_path, TINY.replace("model: digits-cnn", "model: mynet.py:Net"))
    result = pyflow("run", "flow.yaml", "--out", "run", "--to", "fold", cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pyflow: error: ") and "sigmoid" in last
    assert not (tmp_path / "run" / "fold").exists()


def test_from_needs_earlier_stages(tmp_path):
    with pytest.raises(PyflowError, match=r"stage 'train' has no up-to-date result .*run without --from first"):
        run_flow(load_flow(write(tmp_path, TINY)), tmp_path / "run", start="compress")


@pytest.mark.parametrize("cpus", [1, 2])
def test_side_by_side_stages_raise_the_first_failure_and_record_none(tmp_path, monkeypatch, capsys, cpus):
    """csim and synth run one after the other (1 core) or in worker processes; either way a failure comes
    back as the stage's own one-line error, after the other stage has run."""
    monkeypatch.setattr(runner, "_cpus", lambda: cpus)
    config, run = load_flow(write(tmp_path, TINY)), tmp_path / "run"
    run.mkdir()
    done = {"csim": "stale", "synth": "stale", "generate": "kept"}
    with pytest.raises(PyflowError, match=r"hls: not an HLS project"):
        runner._run_stages([(6, "csim", "new"), (8, "synth", "new")], config, run, run / "run.json", done)
    assert json.loads((run / "run.json").read_text())["stages"] == {"generate": "kept"}
    assert "[8/10] synth …" in capsys.readouterr().err  # synth was started although csim had failed


def test_synth_time_limit_says_what_to_do(tmp_path, monkeypatch):
    from pyflow.sim.yosys import SynthesisTimeout

    def too_slow(rtl_dir, timeout):
        assert timeout == 1800  # the default limit
        raise SynthesisTimeout(f"{rtl_dir}: yosys synth_xilinx did not finish within {timeout} s")

    monkeypatch.setattr("pyflow.sim.yosys.synthesize", too_slow)
    with pytest.raises(PyflowError, match=r"within 1800 s: raise verify.synth_seconds .* or run --to sim and "
                                          r"then `pyflow report .*run` for modelled resources only"):
        stages._synth(load_flow(write(tmp_path, TINY)), tmp_path / "run")


def test_unknown_stage(tmp_path):
    with pytest.raises(PyflowError, match=r"--to: unknown stage 'deploy'"):
        run_flow(load_flow(write(tmp_path, TINY)), tmp_path / "run", stop="deploy")


@pytest.mark.rtl
@pytest.mark.csim
def test_tiny_flow_end_to_end_then_skips(tmp_path):
    """Every stage runs and is bit-exact; a second run skips all; a changed verify setting reruns only csim+report."""
    write(tmp_path, TINY)
    first = pyflow("run", "flow.yaml", "--out", "run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "run"
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["verification"]["views"]["csim"]["status"] == "passed"
    assert report["verification"]["views"]["icarus"]["status"] == "passed"
    assert report["verification"]["views"]["verilator"]["status"] == "not run"
    assert "report.html" in first.stdout
    assert "pnr: skipped: board pynq-z2 (xc7z020clg400-1) has no open place and route flow" in first.stderr
    assert report["clock"]["used"]["basis"] == "modelled" and report["clock"]["fmax_mhz"]["value"] == "not run"
    lines = first.stderr.splitlines()
    if runner._cpus() > 1:  # the verification stages start together
        # substrings: a worker's line may share the parent's when the two are written at once
        csim_done = next((i for i, line in enumerate(lines) if "[6/10] csim: done" in line), None)
        synth_start = next((i for i, line in enumerate(lines) if "[8/10] synth …" in line), None)
        assert csim_done is not None and synth_start is not None, first.stderr[-3000:]
        assert synth_start <= csim_done
    second = pyflow("run", "flow.yaml", "--out", "run", cwd=tmp_path)
    assert second.returncode == 0
    assert second.stderr.count("up to date, skipped") == 10  # pnr included: it skips a board without an open flow
    write(tmp_path, TINY.replace("csim_vectors: 3", "csim_vectors: 4"))
    third = pyflow("run", "flow.yaml", "--out", "run", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    rerun = [line.split("]")[1].split()[0] for line in third.stderr.splitlines() if line.endswith("…")]
    assert rerun == ["csim", "report"]
    assert json.loads((run / "hls" / "csim.json").read_text())["vectors"] == 4


def test_a_changed_template_regenerates(tmp_path, monkeypatch):
    """generate's fingerprint covers hls_templates/ and rtl_templates/, so an edited engine is re-verified."""
    for folder in ("hls_templates", "rtl_templates"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "engine.v").write_text("module a; endmodule\n")
    monkeypatch.setattr(stages, "project_root", lambda: tmp_path)
    before = stages._templates_digest()
    assert stages._templates_digest() == before
    (tmp_path / "rtl_templates" / "engine.v").write_text("module b; endmodule\n")
    assert stages._templates_digest() != before


def test_auto_simulators_drop_icarus_where_it_would_be_slow(tmp_path):
    """``auto`` keeps Icarus for a digits-sized top and drops it for VGG-small, saying why."""
    from pyflow.random_ir import random_network
    from pyflow.sim.rtl import ICARUS_BUDGET_SECONDS, choose_simulators

    small = random_network("conv8k3p1 maxpool2 linear10", (1, 8, 8), pe=4, simd=4)
    vgg = random_network("conv64k3p1 conv64k3p1 maxpool2 conv128k3p1 conv128k3p1 maxpool2 linear10", (3, 32, 32),
                         pe=8, simd=8, keep=0.25)
    chosen, why = choose_simulators(small, 20)
    assert chosen == ("icarus", "verilator") and "both" in why
    chosen, why = choose_simulators(vgg, 1)
    assert chosen == ("verilator",) and f"over {ICARUS_BUDGET_SECONDS} s" in why and "Icarus estimated" in why
    assert load_flow(write(tmp_path, TINY.replace("[icarus]", "auto"))).verify.simulators == "auto"
