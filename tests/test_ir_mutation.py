"""Mutation fuzz of valid IRs: `load` refuses in one line or returns a network that runs and generates cleanly.

The fast case is a fixed seed and a few hundred mutations; the slow one thousands. A failure message holds
the seed, case index and mutations; `pyflow.mutate.replay` rebuilds that folder.
"""

import pytest

import pyflow.ir.untrusted
from pyflow import mutate

FAST_SEED, SLOW_SEED = 20261202, 7


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return mutate.make_bases(tmp_path_factory.mktemp("bases"))


def _run(bases, tmp_path, count, seed, generate_every=25):
    result = mutate.fuzz(bases, count, seed, tmp_path, generate_every=generate_every)
    print(result.summary())
    assert not result.failures, "\n".join(result.failures[:10])
    assert result.tried == count == result.refused + result.valid
    return result


def test_mutated_irs_load_or_fail_in_one_line(bases, tmp_path):
    result = _run(bases, tmp_path, 300, FAST_SEED)
    assert result.refused > 200 and result.valid > 5 and result.generated >= 1  # both outcomes are exercised


@pytest.mark.slow
def test_many_mutated_irs_load_or_fail_in_one_line(bases, tmp_path):
    result = _run(bases, tmp_path, 4000, SLOW_SEED, generate_every=40)
    assert result.generated >= 3


def test_fuzz_reports_a_planted_loader_bug(bases, tmp_path, monkeypatch):
    """A narrowed except in the NPZ reader lets zlib/EOF/header errors escape raw: the fuzz must say so."""
    import zipfile

    monkeypatch.setattr(pyflow.ir.untrusted, "_READ_ERRORS", (zipfile.BadZipFile,))
    result = mutate.fuzz(bases, 150, FAST_SEED, tmp_path, generate_every=0)
    assert result.failures
    assert all(f"seed={FAST_SEED} case=" in failure and "mutations=[" in failure for failure in result.failures)


def test_fuzz_reports_a_file_written_outside_out(bases, tmp_path, monkeypatch):
    """A backend that leaks a file next to OUT is a failure of the fuzz, not a pass."""
    import pyflow.codegen.cli

    real = pyflow.codegen.cli.generate

    def leaky(backend, network, board, out):
        (out.parent.parent / "leaked.txt").write_text("x")
        return real(backend, network, board, out)
    monkeypatch.setattr(pyflow.codegen.cli, "generate", leaky)
    result = mutate.fuzz(bases, 60, FAST_SEED, tmp_path, generate_every=1)
    assert result.valid and any("wrote outside OUT" in failure for failure in result.failures)


def test_replay_rebuilds_the_same_case(bases, tmp_path):
    first = mutate.replay(bases, FAST_SEED, 17, tmp_path / "a")
    second = mutate.replay(bases, FAST_SEED, 17, tmp_path / "b")
    assert first == second
    for name in ("network.json", "weights.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
