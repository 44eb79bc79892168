"""Run directories from the command line: another config is refused, bad targets leave nothing,
a too-long sequence names its line, the plan line and the resume message are printed."""

from __future__ import annotations

import pytest

from conftest import assert_error, invoke, snapshot
from promoterlab.data.simulate import simulate_library, write_library
from promoterlab.precision import resolve_precision

TINY = ("--width", "0.0625", "--epochs", "1", "--val-size", "50", "--batch-size", "64", "--accelerator", "cpu",
        "--devices", "1", "--no-progress", "--ensemble", "1", "--test-size", "50")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return write_library(tmp_path_factory.mktemp("runs") / "lib.txt", n=250, seed=1)


@pytest.fixture(scope="module")
def run(library, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("train", library, "--output", out, *TINY)
    assert result.exit_code == 0, result.output
    return out, result


def test_train_prints_its_plan_and_where_the_run_went(run, library):
    out, result = run
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"training into {out}: {library}: 150 train / 50 val / 50 test sequences; legnet (width 0.0625")
    assert f"precision {resolve_precision('auto', 'cpu')}, batch 64, 1 epochs, seed 0" in lines[0]
    assert lines[-2].startswith("best val Pearson") and lines[-2].endswith(f"run directory: {out}")
    assert lines[1].startswith("layout: each insert") and "--seq-len" in lines[1]
    assert lines[2].startswith("estimate: about ") and lines[-1].startswith("took ")


def test_another_config_in_out_is_refused_and_nothing_changes(run, library):
    out, _ = run
    before = snapshot(out)
    assert_error(invoke("train", library, "--output", out, *TINY, "--seed", "3"), str(out),
                 "holds a run with a different config", "--overwrite")
    assert snapshot(out) == before


def test_rerunning_the_same_config_resumes_and_says_so(run, library):
    out, _ = run
    result = invoke("train", library, "--output", out, *TINY)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0].startswith(f"resuming {out} from epoch 1")


def test_constant_targets_are_refused_before_any_file(tmp_path):
    data = tmp_path / "flat.txt"
    data.write_text("".join(f"{s}\t4\n" for s in simulate_library(120, seed=2)["seq"]))
    before = snapshot(tmp_path)
    assert_error(invoke("train", data, "--output", tmp_path / "run", *TINY), "flat.txt", "every target is 4")
    assert snapshot(tmp_path) == before


def test_a_too_long_sequence_names_its_file_and_line(run, tmp_path):
    out, _ = run
    seqs = simulate_library(3, seed=2)["seq"].tolist()
    seqs[1] = "A" * 151
    data = tmp_path / "long.fa"
    data.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    before = snapshot(tmp_path)
    assert_error(invoke("predict", out, data, "-o", tmp_path / "p.tsv", "--no-progress"),
                 "long.fa:3: sequence of 151 bp")
    assert snapshot(tmp_path) == before
