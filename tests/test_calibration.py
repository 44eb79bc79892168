"""Calibrated intervals: nominal coverage on data with known noise, the saved calibration, training
writes it, and predict --interval uses it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import assert_error, invoke, tiny_config
from promoterlab.evaluation.calibration import (Calibration, CalibrationError, coverage, fit_calibration,
                                                load_calibration)
from promoterlab.runs import CALIBRATION, Run


def noisy(n: int, seed: int):
    """Measurements with a known, varying noise sd, and a predictor that knows the mean."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.2, 2.0, n)
    mean = rng.uniform(0, 17, n)
    y = mean + sigma * rng.normal(size=n)
    features = {"constant": np.ones(n), "predictive_sd": sigma, "ensemble_sd": rng.uniform(0, 1, n)}
    return y, mean, features


def test_intervals_reach_nominal_coverage_with_known_noise():
    val, test = noisy(3000, 0), noisy(20000, 1)
    calibration = fit_calibration(*val)
    assert calibration.feature == "predictive_sd"  # the scale that tracks the noise gives the narrowest
    report = coverage(*test, calibration, levels=(0.5, 0.68, 0.9, 0.95))
    for level, row in report.items():
        assert abs(row["coverage"] - float(level)) < 0.015, (level, row)
    # Wider where the noise is larger.
    lower, upper = calibration.interval(np.zeros(2), {"predictive_sd": np.array([0.2, 2.0])}, 0.68)
    assert upper[1] - lower[1] > 2 * (upper[0] - lower[0])
    constant = fit_calibration(val[0], val[1], {"constant": val[2]["constant"]})
    plain = coverage(*test, constant)
    assert abs(plain["0.95"]["coverage"] - 0.95) < 0.015
    assert report["0.95"]["mean_width"] < plain["0.95"]["mean_width"]


def test_coverage_holds_on_average_for_small_validation_sets():
    """Split conformal: at least the nominal coverage in expectation, whatever n."""
    covered = []
    for seed in range(200):
        val, test = noisy(30, seed), noisy(200, 10_000 + seed)
        calibration = fit_calibration(val[0], val[1], {"constant": val[2]["constant"]})
        covered.append(coverage(*test, calibration, levels=(0.9,))["0.9"]["coverage"])
    assert 0.9 <= np.mean(covered) < 0.95


def test_calibration_round_trip_and_bad_input():
    calibration = fit_calibration(*noisy(500, 2))
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again == calibration
    assert again.multiplier(0.5) < again.multiplier(0.68) < again.multiplier(0.95)
    with pytest.raises(ValueError, match="between 0 and 1"):
        again.multiplier(1.0)
    with pytest.raises(CalibrationError, match="version"):
        Calibration.from_dict({"feature": "constant"})
    with pytest.raises(ValueError, match="at least one measured"):
        fit_calibration(np.array([np.nan]), np.array([1.0]), {"constant": np.ones(1)})


@pytest.fixture(scope="module")
def trained(sim_library, tmp_path_factory):
    """A 2-model ensemble (each member a model run) trained for one epoch."""
    from promoterlab.training.train import train

    out = tmp_path_factory.mktemp("calibrated") / "ens"
    config = tiny_config(sim_library, epochs=1, train_size=600, val_size=300)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, test_size=300),
                                 train=dataclasses.replace(config.train, ensemble=2, precision="32"))
    return out, train(config, out)


def test_training_saves_the_calibration_and_reports_test_coverage(trained):
    out, summary = trained
    for folder in (out, out / "seed=0", out / "seed=1"):
        assert (folder / CALIBRATION).is_file()
        saved = json.loads((folder / "summary.json").read_text())
        assert saved["calibration"]["n"] == 300
        assert set(saved["test_coverage"]) == {"0.68", "0.95"}
        assert saved["test_coverage"]["0.95"]["n"] == 300
        assert 0.8 < saved["test_coverage"]["0.95"]["coverage"] <= 1.0
    assert summary["calibration"]["scale"] in ("constant", "ensemble_sd", "predictive_sd")
    assert load_calibration(Run.open(out)).feature == summary["calibration"]["scale"]


def test_predict_interval_adds_bounds_around_the_prediction(trained, sim_library, tmp_path):
    out, _ = trained
    seqs = pd.read_csv(sim_library, sep="\t", header=None).iloc[:20, :1]
    seqs.columns = ["seq"]
    path = tmp_path / "seqs.tsv"
    seqs.to_csv(path, sep="\t", index=False)
    for run, columns in ((out, ["sd", "n_models", "lower", "upper"]), (out / "seed=1", ["lower", "upper"])):
        result = invoke("predict", run, path, "-o", tmp_path / "p.tsv", "--interval", "0.9", "--no-progress")
        assert result.exit_code == 0, result.output
        table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
        assert list(table.columns) == ["id", "seq", "prediction", *columns]
        assert (table["lower"] < table["prediction"]).all() and (table["prediction"] < table["upper"]).all()
        plain = invoke("predict", run, path, "-o", tmp_path / "q.tsv", "--no-progress")
        assert plain.exit_code == 0
        np.testing.assert_allclose(pd.read_csv(tmp_path / "q.tsv", sep="\t")["prediction"], table["prediction"],
                                   atol=1e-5)


def test_predict_interval_refuses_runs_without_a_calibration(trained, tmp_path):
    out, _ = trained
    path = tmp_path / "seqs.txt"
    path.write_text("ACGT" * 20 + "\t0\n")
    assert_error(invoke("predict", out, path, "-o", tmp_path / "p.tsv", "--interval", "1.5"),
                 "--interval", "between 0 and 1")
    assert_error(invoke("predict", out / "seed=0", out / "seed=1", path, "-o", tmp_path / "p.tsv",
                        "--interval", "0.9"), "separately named runs")
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.pt").write_bytes((out / "seed=0" / "model.pt").read_bytes())
    result = invoke("predict", old, path, "-o", tmp_path / "p.tsv", "--interval", "0.9")
    assert_error(result, f"{old / CALIBRATION}: not found", "predict without --interval")
    assert not (tmp_path / "p.tsv").exists()


def test_design_reports_the_calibrated_interval(trained, tmp_path):
    out, _ = trained
    result = invoke("design", out, "--goal", "max", "--n", "3", "--steps", "2", "--interval", "0.68", "-o",
                    tmp_path / "d.tsv", "--quiet")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "d.tsv", sep="\t")
    assert len(table) == 3 and (table["lower"] < table["prediction"]).all()
    assert (table["prediction"] < table["upper"]).all()
    assert result.stdout == "" and result.stderr == ""  # --quiet
