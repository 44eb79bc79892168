"""Training end to end on simulated data: learning, run directory, determinism, CLI."""

from __future__ import annotations

import dataclasses
import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import FakeClock, needs_native_bf16, tiny_config
from promoterlab import evaluate, load_run, predict, predict_sequences, train
from promoterlab.cli import app
from promoterlab.config import RunConfig
from promoterlab.data.dataset import load_split
from promoterlab.data.readers import read_table
from promoterlab.data.simulate import simulate_library
from promoterlab.training.run import resolve_config


@pytest.fixture(scope="module")
def trained_run(sim_library, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train(tiny_config(sim_library, epochs=4), out)
    return out, summary


def test_tiny_legnet_learns_simulated_promoters(trained_run):
    out, summary = trained_run
    # fp32, seed 0: 0.612 with AVX-512 kernels, 0.613 with AVX2 ones (the seed is fixed: seeds 1
    # and 2 reach 0.611 and 0.40 at this tiny budget); an untrained model scores 0 +- 0.045.
    assert summary["best_val_pearson"] > 0.55
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:6]) == ["epoch", "train_loss", "train_pearson", "val_loss", "val_pearson",
                                         "val_spearman"]
    assert len(metrics) == 4 and metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]


def test_run_directory_contents(trained_run, sim_library):
    out, summary = trained_run
    for name in ("curves.png", "val_scatter.png"):  # pictures that decode, of the size plotted at 120 dpi
        height, width, _ = matplotlib.image.imread(out / name).shape
        assert width > 500 and height > 400, (name, width, height)
    best = torch.load(out / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] + 1 == summary["best_epoch"] and any(k.startswith("model.") for k in best["state_dict"])
    saved = json.loads((out / "summary.json").read_text())
    for key in ("best_val_pearson", "best_val_spearman", "best_epoch", "epochs", "train_seconds", "params"):
        assert key in saved
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["seed"] == 0 and config["version"] and config["data"]["path"] == str(sim_library)
    expected = resolve_config(tiny_config(sim_library, epochs=4), summary["train_size"]).train  # "auto" resolved
    assert RunConfig.load(out / "config.yaml").train == expected and expected.precision == "32"
    assert config["model"]["name"] == "legnet" and RunConfig.load(out / "config.yaml").model.width == 0.125


def test_saved_model_reproduces_best_validation_pearson(trained_run, sim_library):
    out, summary = trained_run
    model, config = load_run(out)
    assert not model.training
    frame = read_table(sim_library)
    split = load_split(config.data, config.seed)
    val = frame.iloc[split.rows.val]
    # Validation carries the data's singleton flags (LegNet's convention); prediction sets them to 0.
    val_set = split.val
    assert 0.05 < val_set.singleton.float().mean() < 0.95
    pred = predict(model, val_set.codes, singleton=val_set.singleton, precision="32")
    r = np.corrcoef(pred, val_set.targets)[0, 1]
    # Validation ran in fp32, as prediction does; prediction folds the BatchNorms into the
    # convolutions first, so the two agree to rounding, not to the last digit.
    assert config.train.precision == "32"
    assert r == pytest.approx(summary["best_val_pearson"], abs=1e-4)
    r_flag0 = np.corrcoef(predict_sequences(model, val["seq"].tolist(), config), val["target"])[0, 1]
    assert abs(r_flag0 - r) > 1e-3
    assert summary["val_flag0"]["pearson"] == pytest.approx(r_flag0, abs=2e-3)
    with pytest.raises(ValueError, match="3 flags for"):
        predict(model, val_set.codes, singleton=val_set.singleton[:3])


def test_val_singleton_changes_validation_only(sim_library, tmp_path):
    base = tiny_config(sim_library, epochs=1, train_size=400, val_size=200)
    zero = dataclasses.replace(base, data=dataclasses.replace(base.data, val_singleton=False))
    train(base, tmp_path / "data_flags")
    train(zero, tmp_path / "flag0")
    a, b = pd.read_csv(tmp_path / "data_flags" / "metrics.csv"), pd.read_csv(tmp_path / "flag0" / "metrics.csv")
    assert np.array_equal(a[["train_loss", "train_pearson"]].to_numpy(), b[["train_loss", "train_pearson"]].to_numpy())
    assert a["val_loss"].iloc[0] != b["val_loss"].iloc[0]
    assert RunConfig.load(tmp_path / "flag0" / "config.yaml").data.val_singleton is False


def test_same_seed_same_metrics(sim_library, tmp_path):
    first = train(tiny_config(sim_library, epochs=1, train_size=400, val_size=200), tmp_path / "a")
    second = train(tiny_config(sim_library, epochs=1, train_size=400, val_size=200), tmp_path / "b")
    a, b = pd.read_csv(tmp_path / "a" / "metrics.csv"), pd.read_csv(tmp_path / "b" / "metrics.csv")
    cols = ["train_loss", "train_pearson", "val_loss", "val_pearson"]
    assert np.array_equal(a[cols].to_numpy(), b[cols].to_numpy())
    assert first["best_val_pearson"] == second["best_val_pearson"]


def test_mse_loss_and_kl_range_check(tmp_path):
    frame = simulate_library(800, seed=5)
    path = tmp_path / "shifted.tsv"
    frame.assign(expr=frame["expr"] - 20)[["seq", "expr"]].to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match="--loss kl needs targets on the 0..17 bin scale"):
        train(tiny_config(path, epochs=1, train_size=300, val_size=200), tmp_path / "kl")
    summary = train(tiny_config(path, epochs=1, train_size=300, val_size=200, loss="mse"), tmp_path / "mse")
    model, _ = load_run(tmp_path / "mse")
    assert model(torch.zeros(2, 6, 150)).shape == (2,)
    assert np.isfinite(summary["best_val_pearson"])


def test_cli_predict_fasta_and_tsv_and_evaluate(trained_run, tmp_path):
    out, _ = trained_run
    seqs = simulate_library(5, seed=9)["seq"].tolist()
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i} promoter\n{s[:50]}\n{s[50:]}\n" for i, s in enumerate(seqs)))
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(out), str(fasta), "-o", str(tmp_path / "p.tsv"), "--no-progress"])
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert list(pred.columns) == ["id", "seq", "prediction"]
    assert pred["id"].tolist() == [f"s{i}" for i in range(5)] and pred["seq"].tolist() == seqs
    model, config = load_run(out)
    assert pred["prediction"].to_numpy() == pytest.approx(predict_sequences(model, seqs, config), abs=1e-5)

    tsv = tmp_path / "in.tsv"
    pd.DataFrame({"name": ["x", "y"], "sequence": seqs[:2]}).to_csv(tsv, sep="\t", index=False)
    result = runner.invoke(app, ["predict", str(out), str(tsv), "-o", str(tmp_path / "q.tsv"),
                                 "--seq-col", "sequence", "--id-col", "name", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "q.tsv", sep="\t")["prediction"].to_numpy() == pytest.approx(
        pred["prediction"].to_numpy()[:2], abs=1e-5)

    library = simulate_library(300, seed=11)
    measured = tmp_path / "measured.txt"
    library[["seq", "expr"]].to_csv(measured, sep="\t", header=False, index=False)
    result = runner.invoke(app, ["evaluate", str(out), str(measured), "--json", "--precision", "32"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["n"] == 300 and metrics == pytest.approx(evaluate(out, measured, precision="32"))
    assert metrics["pearson"] > 0.5  # 0.56-0.57 with AVX-512 or AVX2 kernels


def test_max_time_stops_cleanly_and_keeps_the_best_checkpoint(sim_library, tmp_path, monkeypatch):
    # A fake clock: 10 steps of 0.1 s and a validation of 0.2 s make an epoch 1.2 s, so the 3 s
    # budget stops the run in its third epoch, however fast the machine is.
    clock = FakeClock(step=0.1, val=0.2).install(monkeypatch)
    config = tiny_config(sim_library, epochs=500, train_size=300, val_size=100)
    config.train.max_time = 0.05  # minutes
    summary = train(config, tmp_path, callbacks=[clock.callback])
    assert summary["stopped_early"] and 2 <= summary["epochs"] <= 3
    assert 3.0 <= summary["train_seconds"] <= 3.0 + 1.2
    assert (tmp_path / "model.pt").exists() and (tmp_path / "best.ckpt").exists()


@needs_native_bf16
def test_bf16_mixed_precision_tracks_fp32(sim_library, tmp_path):
    predictions = {}
    for precision in ("32", "bf16"):
        config = tiny_config(sim_library, epochs=1, train_size=300, val_size=100)
        config.train.precision = precision
        train(config, tmp_path / precision)
        model, saved = load_run(tmp_path / precision)
        assert saved.train.precision == precision
        _, val_set, *_ = load_split(saved.data, saved.seed)
        predictions[precision] = predict(model, val_set.codes, precision="32")
    fp32, bf16 = predictions["32"], predictions["bf16"]
    assert not np.array_equal(fp32, bf16)  # bf16 autocast really ran
    # Same seed, same batches: one epoch in bf16 lands next to fp32 (measured: max |diff| 0.0025
    # bins, r 0.99 over the 100 validation sequences).
    np.testing.assert_allclose(bf16, fp32, rtol=0, atol=0.02)
    assert np.corrcoef(bf16, fp32)[0, 1] > 0.9
