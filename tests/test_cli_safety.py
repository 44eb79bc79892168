"""Nothing a user types destroys a file, poisons a model or ends in a traceback (issue 17), and
the terminal stays quiet (issue 12).

Each case asserts the exit code, the one-line ``error:`` message and that no file was created,
changed or left behind. One tiny model is trained once, in a subprocess, for the whole module.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import assert_error, invoke, snapshot
from promoterlab.cli import app
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.simulate import write_library
from promoterlab.files import OutputError, check_output, output_stream
from promoterlab.models import model_config

LIGHTNING_BANNERS = ("GPU available", "TPU available", "💡 Tip", "Loading `train_dataloader`", "Trainer.fit")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def library(workdir) -> Path:
    return write_library(workdir / "lib.txt", n=250, seed=1)


@pytest.fixture(scope="module")
def trained(workdir, library) -> tuple[Path, subprocess.CompletedProcess]:
    """A run trained by the real command line (1 epoch, 200 sequences, about 10,000 parameters)."""
    run = workdir / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "promoterlab", "train", str(library), "--output", str(run), "--width", "0.0625",
         "--epochs", "1", "--val-size", "50", "--batch-size", "64", "--accelerator", "cpu", "--devices", "1",
         "--no-progress", "--ensemble", "1", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return run, done


@pytest.fixture
def sequences(tmp_path, library) -> Path:
    path = tmp_path / "in.fa"
    seqs = library.read_text().splitlines()[:4]
    path.write_text("".join(f">s{i}\n{line.split()[0]}\n" for i, line in enumerate(seqs)))
    return path


def test_a_model_or_width_given_keeps_the_budget_from_narrowing_it(trained, library, tmp_path):
    assert RunConfig.load(trained[0] / "config.yaml").train.fit_width is False  # --width 0.0625
    config = tmp_path / "run.yaml"
    RunConfig(model=model_config("legnet", width=0.0625)).save(config)
    result = invoke("train", library, "--config", config, "--output", tmp_path / "run", "--epochs", "1",
                    "--val-size", "50", "--batch-size", "64", "--accelerator", "cpu", "--ensemble", "1",
                    "--no-progress", "--quiet")
    assert result.exit_code == 0, result.output
    saved = RunConfig.load(tmp_path / "run" / "config.yaml")
    assert saved.train.fit_width is True and saved.model.width == 0.0625


# --- outputs: never an input, never a replaced device, never a missing or wrong place ----------------


def test_predict_refuses_to_overwrite_its_input(trained, sequences, tmp_path):
    run, _ = trained
    link, hard = tmp_path / "link.fa", tmp_path / "hard.fa"
    link.symlink_to(sequences)
    os.link(sequences, hard)
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path, run)
    for output in (sequences, link, hard, tmp_path / "sub" / ".." / "in.fa", run / "model.pt"):
        result = invoke("predict", run, sequences, "-o", output, "--no-progress")
        assert_error(result, str(output), "is also an input")
    assert snapshot(tmp_path, run) == before


def test_predict_streams_to_standard_output_and_devices(trained, sequences, tmp_path, capfd):
    run, _ = trained
    result = invoke("predict", run, sequences, "-o", "-", "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "id\tseq\tprediction" and len(result.stdout.splitlines()) == 5
    before = snapshot(tmp_path)
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    for device in ("/dev/null", link, "/dev/stdout"):
        result = invoke("predict", run, sequences, "-o", device, "--no-progress")
        assert result.exit_code == 0, result.output
    assert os.path.islink("/dev/stdout") and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert "id\tseq\tprediction" in capfd.readouterr().out  # what went to /dev/stdout (fd 1)
    after = snapshot(tmp_path)
    del after[str(link)]
    assert after == before


def test_predict_streams_into_a_named_pipe(trained, sequences, tmp_path):
    run, _ = trained
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = invoke("predict", run, sequences, "-o", fifo, "--no-progress")
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert received and received[0].startswith("id\tseq\tprediction") and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("where, message", [("missing/p.tsv", "directory"), (".", "is a directory")])
def test_predict_checks_the_output_before_predicting(trained, sequences, tmp_path, monkeypatch, where, message):
    from promoterlab import api

    run, _ = trained
    monkeypatch.setattr(api, "predict_file", lambda *a, **k: pytest.fail("predicted before checking the output"))
    before = snapshot(tmp_path)
    output = tmp_path / where
    result = invoke("predict", run, sequences, "-o", output, "--no-progress")
    assert_error(result, str(output), message)
    if where.startswith("missing"):
        assert "does not exist" in result.stderr
    assert snapshot(tmp_path) == before


def test_dream_predict_refuses_its_test_file_as_output(trained, sequences, tmp_path):
    run, _ = trained
    before = snapshot(tmp_path)
    result = invoke("dream", "predict", run, "--test", sequences, "-o", sequences, "--no-progress")
    assert_error(result, str(sequences), "is also an input")
    assert snapshot(tmp_path) == before


def test_report_and_folders_refuse_a_wrong_kind_of_path(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "file.txt").write_text("keep")
    before = snapshot(tmp_path)
    assert_error(invoke("report", tmp_path / "runs", "-o", tmp_path / "runs"), "is a directory")
    assert_error(invoke("results", tmp_path / "runs", "-o", tmp_path / "file.txt"), "file.txt", "not a directory")
    assert_error(invoke("demo", "--output", tmp_path / "file.txt"), "file.txt", "not a directory")
    assert snapshot(tmp_path) == before


def test_output_stream_is_atomic_and_checks_like_check_output(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("input")
    with pytest.raises(OutputError, match="in.txt: is also an input"):
        check_output(tmp_path / "in.txt", [source])
    with pytest.raises(RuntimeError), output_stream(tmp_path / "out.txt") as handle:
        handle.write("half")
        raise RuntimeError("failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
    with output_stream(tmp_path / "out.txt", [source]) as handle:
        handle.write("header\n")
        handle.write("rows\n")
    assert (tmp_path / "out.txt").read_text() == "header\nrows\n" and source.read_text() == "input"


# --- every range and count is checked before any work --------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    (["--clip-targets", "17,0"], "--clip-targets"),
    (["--clip-targets", "0"], "--clip-targets"),
    (["--width", "0"], "--width must be > 0"),
    (["--width", "-1"], "--width must be > 0"),
    (["--epochs", "0"], "--epochs"),
    (["--val-size", "0"], "--val-size"),
    (["--train-size", "0"], "--train-size"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--weight-decay", "-0.1"], "--weight-decay"),
    (["--max-time", "0"], "--max-time"),
    (["--patience", "0"], "--patience"),
    (["--precision", "17"], "--precision"),
    (["--devices", "0"], "--devices"),
    (["--num-nodes", "0"], "--num-nodes"),
    (["--loss", "l1"], "--loss"),
    (["--model", "legnet-dilated", "--model-opt", "rho=abc"], "--model-opt rho=abc"),
    (["--model-opt", "width"], "--model-opt expects KEY=VALUE"),
    (["--model-opt", "nonsense=1"], "nonsense"),
    (["--model", "no-such-model"], "no-such-model"),
])
def test_train_checks_every_option_before_any_work(library, tmp_path, args, fragment):
    before = snapshot(library.parent)
    result = invoke("train", library, "--output", tmp_path / "run", *args)
    assert_error(result, fragment)
    assert not (tmp_path / "run").exists() and snapshot(library.parent) == before


def test_config_checks_protect_the_python_api():
    with pytest.raises(ValueError, match="clip_targets must be LOW,HIGH with LOW < HIGH"):
        DataConfig(clip_targets=[17, 0])
    with pytest.raises(ValueError, match="val_size must be an integer >= 1"):
        DataConfig(val_size=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="precision must be one of"):
        RunConfig.from_dict({"train": {"precision": "half"}})


@pytest.mark.parametrize("args, fragment", [
    (["models", "--repeats", "0"], "--repeats"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["sweep", "spec.yaml", "--workers", "0"], "--workers"),
    (["tune", "spec.yaml", "--trials", "0"], "--trials"),
    (["predict", "run", "in.fa", "-o", "p.tsv", "--batch-size", "0"], "--batch-size"),
])
def test_count_options_of_other_commands(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2 and fragment in result.output
    assert list(tmp_path.iterdir()) == []


# --- one error line, naming the file or option --------------------------------------------------------


def test_truncated_gzip_is_one_error_line(library, trained, tmp_path):
    run, _ = trained
    packed = gzip.compress(library.read_bytes())
    cut = tmp_path / "lib.txt.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    not_gzip = tmp_path / "plain.txt.gz"
    not_gzip.write_bytes(library.read_bytes())
    before = snapshot(tmp_path)
    assert_error(invoke("train", cut, "--output", tmp_path / "run"), str(cut), "damaged or truncated gzip")
    assert_error(invoke("train", not_gzip, "--output", tmp_path / "run"), str(not_gzip), "gzip")
    assert_error(invoke("predict", run, cut, "-o", tmp_path / "p.tsv", "--no-progress"), str(cut), "gzip")
    assert snapshot(tmp_path) == before  # no run folder left behind, no predictions


def test_a_cut_short_or_foreign_model_file_is_one_error_line(trained, sequences, tmp_path):
    run, _ = trained
    cut = tmp_path / "model.pt"
    data = (run / "model.pt").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    before = snapshot(tmp_path)
    for model_file in (cut, sequences, foreign):
        result = invoke("predict", model_file, sequences, "-o", tmp_path / "p.tsv", "--no-progress")
        assert_error(result, str(model_file), "not a promoterlab model file")
        assert_error(invoke("evaluate", model_file, sequences), str(model_file), "not a promoterlab model")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_error_line(trained, sequences, library, tmp_path):
    run, _ = trained
    result = invoke("predict", run, sequences, "-o", tmp_path / "p.tsv", "--device", "cuda")
    assert_error(result, "--device cuda", "CUDA is not available")
    assert_error(invoke("evaluate", run, library, "--device", "cuda:0"), "--device cuda:0")
    assert_error(invoke("predict", run, sequences, "-o", tmp_path / "p.tsv", "--device", "gpu0"), "--device gpu0")
    assert_error(invoke("train", library, "--output", tmp_path / "run", "--accelerator", "gpu"), "--accelerator gpu")
    assert list(tmp_path.iterdir()) == [sequences]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "name: x\naxes: {seed: [0]}\n"])
def test_an_empty_sweep_spec_fails_before_creating_anything(tmp_path, text):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    before = snapshot(tmp_path)
    for command in ("sweep", "tune"):
        extra = ["--trials", "1"] if command == "tune" else []
        result = invoke(command, spec, "--output", tmp_path / "runs", *extra)
        assert_error(result, str(spec), "empty" if "axes" not in text else "no training data")
    assert snapshot(tmp_path) == before


def test_evaluate_json_is_strict_and_notices_go_to_stderr(trained, library, tmp_path):
    run, _ = trained
    rows = library.read_text().splitlines()[:3]
    seqs = [row.split("\t")[0] for row in rows]
    one = tmp_path / "one.txt"
    one.write_text(f"{rows[0]}\n" + "".join(f"{s}\tnan\n" for s in seqs[1:]))
    result = invoke("evaluate", run, one, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # strict: no NaN
    assert metrics["n"] == 1 and metrics["pearson"] is None and isinstance(metrics["mse"], float)
    assert "dropped 2 rows" in result.stderr and "dropped" not in result.stdout
    none = tmp_path / "none.txt"
    none.write_text("".join(f"{s}\tnan\n" for s in seqs))
    result = invoke("evaluate", run, none, "--json")
    assert result.exit_code == 2 and result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"error: {none}: no row") and last.endswith("measured value"), result.stderr


def test_a_failed_train_leaves_no_folder_behind(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\t1\nACGU\t2\n")
    before = snapshot(tmp_path)
    assert_error(invoke("train", bad, "--output", tmp_path / "run", "--val-size", "1"), f"{bad}:2")
    assert_error(invoke("train", tmp_path / "nope.txt", "--output", tmp_path / "run"), "nope.txt: file not found")
    assert_error(invoke("train", bad, "--output", bad), str(bad), "not a directory")
    assert snapshot(tmp_path) == before


# --- help, version and a quiet terminal ---------------------------------------------------------------


def test_version_and_train_help_show_the_config_defaults():
    from promoterlab import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"promoterlab {__version__}"
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    run = RunConfig()  # the defaults the help states come from the config dataclasses
    for default in (f"default {run.model.name}", f"(default: {run.train.loss})", f"(default: {run.train.max_lr})",
                    f"(default: {run.data.seq_len})", f"(default: {run.data.left_adapter})",
                    f"(default: {run.train.weight_decay})", f"default {run.seed}", "auto: 12 minutes",
                    "auto: a tenth of the rows"):
        assert default in text, default


def test_help_answers_without_importing_torch():
    code = "import sys; from promoterlab.cli import app; print(sorted(m for m in ('torch', 'pandas', " \
           "'lightning', 'promoterlab.api') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-m", "promoterlab", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "train" in done.stdout  # how fast: benchmarks/cli_startup.py


def test_training_prints_no_lightning_banners(trained):
    _, done = trained
    assert json.loads(done.stdout)["epochs"] == 1  # stdout is the summary JSON alone
    for banner in LIGHTNING_BANNERS:
        assert banner not in done.stderr, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_quiet_prints_only_errors_and_json_the_summary(library, tmp_path, monkeypatch):
    import logging

    from promoterlab import api

    def fake_train(config, out, progress=False, **kwargs):
        logging.getLogger("promoterlab").info("plan: 200 rows")
        logging.getLogger("promoterlab").warning("something to know")
        return {"best_val_pearson": 0.5, "progress": progress}

    monkeypatch.setattr(api, "train", fake_train)
    result = invoke("train", library, "--output", tmp_path / "run", "--ensemble", "1")
    assert result.exit_code == 0 and result.stdout == ""  # messages only, on stderr
    assert result.stderr.splitlines() == ["plan: 200 rows", "something to know"]
    result = invoke("train", library, "--output", tmp_path / "run", "--ensemble", "1", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["progress"] is True
    result = invoke("train", library, "--output", tmp_path / "run", "--quiet", "--ensemble", "1", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"best_val_pearson": 0.5, "progress": False}
    assert result.stderr.splitlines() == ["something to know"]
