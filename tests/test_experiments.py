"""Experiment specs, resumable sweeps (including after kill -9) and a two-worker Optuna study."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from promoterlab.cli import app
from promoterlab.config import RunConfig
from promoterlab.data.simulate import write_library
from promoterlab.experiments.spec import load_spec, resolve_key, run_name
from promoterlab.experiments.sweep import _locked, run_one, run_sweep
from promoterlab.experiments.tune import tune

REPO = Path(__file__).resolve().parents[1]


def write_spec(tmp_path: Path, library: Path, train_size: int = 400, val_size: int = 200, **extra) -> Path:
    spec = {
        "name": "toy",
        "base": {"data": {"path": str(library), "train_size": train_size, "val_size": val_size},
                 "model": {"name": "legnet", "width": 0.125},
                 "train": {"epochs": 2, "batch_size": 64, "precision": "32", "accelerator": "cpu", "devices": "1"}},
        "axes": {"model": ["legnet"], "seed": [0]},
        "budgets": {"quick": {"train.epochs": 1, "model.width": 0.125}},
        **extra,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def test_library(tmp_path_factory) -> Path:
    return write_library(tmp_path_factory.mktemp("heldout") / "test.txt", n=300, seed=7)


def test_spec_keys_resolve_to_config_fields():
    assert resolve_key("seed") == (None, "seed")
    assert resolve_key("model") == ("model", "name")
    assert resolve_key("train_size") == ("data", "train_size")
    assert resolve_key("weight_decay") == ("train", "weight_decay")
    assert resolve_key("rho") == ("model", "rho")
    assert resolve_key("model.hidden") == ("model", "hidden")
    with pytest.raises(ValueError, match="train has no field 'lr'"):
        resolve_key("train.lr")
    assert run_name({"model": "legnet-dilated", "model.rho": 0.2, "seed": 1}) == \
        "model=legnet-dilated__model.rho=0.2__seed=1"


def test_spec_grid_budget_and_relative_paths(tmp_path, sim_library):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "lib.txt").write_text(sim_library.read_text())
    path = write_spec(tmp_path, Path("data/lib.txt"),
                      axes={"model": ["legnet", "legnet-dilated"], "train_size": [100, 200], "seed": [0, 1]})
    spec = load_spec(path, budget="quick")
    grid = spec.grid()
    assert len(grid) == 8
    name, values, config = grid[-1]
    assert name == "model=legnet-dilated__train_size=200__seed=1"
    assert values == {"model": "legnet-dilated", "train_size": 200, "seed": 1}
    assert (config.model.name, config.data.train_size, config.seed, config.train.epochs) == ("legnet-dilated", 200, 1, 1)
    assert config.data.path == str((tmp_path / "data" / "lib.txt").resolve())


@pytest.mark.parametrize("change, message", [
    ({"axes": {"train.nonsense": [1]}}, "train has no field 'nonsense'"),
    ({"axes": {"model": ["no-such-model"]}}, "no-such-model"),
    ({"colour": "blue"}, "unknown spec keys"),
    ({"axes": {"seed": []}}, "axis 'seed' has no values"),
    ({"axes": ["seed", "model"]}, "axes must be a mapping"),
    ({"axes": {"model": ["legnet-lstm", "legnet"], "hidden": [64]}}, "hidden"),  # only the 2nd combination is bad
])
def test_bad_specs_name_the_file(tmp_path, sim_library, change, message):
    path = write_spec(tmp_path, sim_library, **change)
    with pytest.raises(ValueError, match=message) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    result = CliRunner().invoke(app, ["sweep", str(path), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 2 and message.split("'")[0] in result.output
    with pytest.raises(ValueError, match="no budget 'huge'"):
        load_spec(write_spec(tmp_path, sim_library), budget="huge")


def test_sweep_with_two_workers_then_skips_finished_runs(tmp_path, sim_library, test_library):
    path = write_spec(tmp_path, sim_library, train_size=200, val_size=100, axes={"model": ["legnet"], "seed": [0, 1]},
                      test={"path": str(test_library)})
    spec = load_spec(path)
    out = tmp_path / "runs"
    outcomes = run_sweep(spec, out, workers=2)
    assert [o.status for o in outcomes] == ["trained", "trained"], outcomes
    for seed in (0, 1):
        run = out / f"model=legnet__seed={seed}"
        assert json.loads((run / "axes.json").read_text()) == {"model": "legnet", "seed": seed}
        assert RunConfig.load(run / "config.yaml").seed == seed
        predictions = pd.read_csv(run / "test_predictions.tsv", sep="\t")
        assert list(predictions.columns) == ["index", "target", "prediction"] and len(predictions) == 300
        assert json.loads((run / "test_metrics.json").read_text())["n"] == 300
    assert yaml.safe_load((out / "spec.yaml").read_text())["name"] == "toy"
    before = (out / "model=legnet__seed=0" / "metrics.csv").read_text()
    assert [o.status for o in run_sweep(spec, out)] == ["skipped", "skipped"]
    assert (out / "model=legnet__seed=0" / "metrics.csv").read_text() == before

    result = CliRunner().invoke(app, ["results", str(out)])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert summary["n_seeds"].tolist() == [2] and summary["test_pearson_mean"].notna().all()
    result = CliRunner().invoke(app, ["report", str(out), "-o", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    assert "data:image/png;base64" in (tmp_path / "report.html").read_text()

    # A run whose test evaluation is missing is finished without retraining.
    (out / "model=legnet__seed=1" / "test_metrics.json").unlink()
    assert [o.status for o in run_sweep(spec, out)] == ["skipped", "trained"]
    assert (out / "model=legnet__seed=1" / "test_metrics.json").exists()


def test_locked_run_is_left_to_its_owner(tmp_path, sim_library):
    spec = load_spec(write_spec(tmp_path, sim_library))
    name, values, config = spec.grid()[0]
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    with _locked(run_dir) as acquired:
        assert acquired
        assert run_one(run_dir, values, config, None).status == "busy"
    assert not (run_dir / "summary.json").exists()


def test_sweep_resumes_after_kill_9_without_losing_or_repeating_epochs(tmp_path, sim_library):
    path = write_spec(tmp_path, sim_library, train_size=200, val_size=100)
    spec_raw = yaml.safe_load(path.read_text())
    spec_raw["base"]["train"]["epochs"] = 4
    path.write_text(yaml.safe_dump(spec_raw, sort_keys=False))
    out = tmp_path / "killed"
    metrics = out / "model=legnet__seed=0" / "metrics.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "promoterlab", "sweep", str(path), "--output", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    # Killed as soon as epoch 2 is written, however long that takes (the hang guard aside).
    hang_guard = time.monotonic() + 900
    while process.poll() is None and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        assert time.monotonic() < hang_guard, "the sweep hangs"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert len(metrics.read_text().splitlines()) >= 3
    assert not (metrics.parent / "summary.json").exists(), "the sweep finished before it was killed"

    subprocess.run(command, env=env, check=True, capture_output=True)
    resumed = pd.read_csv(metrics)
    assert resumed["epoch"].tolist() == [1, 2, 3, 4]
    assert json.loads((metrics.parent / "summary.json").read_text())["epochs"] == 4

    # Epoch-seeded batch order makes the resumed run identical to an uninterrupted one (run with
    # the same thread count: oneDNN's reduction order, and so the last bits, depend on it).
    uninterrupted = tmp_path / "whole"
    subprocess.run(command[:-1] + [str(uninterrupted)], env=env, check=True, capture_output=True)
    whole = pd.read_csv(uninterrupted / "model=legnet__seed=0" / "metrics.csv")
    columns = ["train_loss", "train_pearson", "val_loss", "val_pearson"]
    pd.testing.assert_frame_equal(resumed[columns], whole[columns])


def test_two_workers_share_one_optuna_study(tmp_path, sim_library):
    path = write_spec(tmp_path, sim_library, train_size=200, val_size=100, search={
        "model.width": {"choices": [0.0625, 0.125]},
        "train.max_lr": {"low": 1e-3, "high": 1e-2, "log": True}})
    spec = load_spec(path)
    best = tune(spec, tmp_path / "tune", n_trials=4, workers=2)
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")
    trials = study.get_trials()
    assert 4 <= len(trials) <= 5
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 2
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert finished and all(sorted(t.intermediate_values) == [1, 2] for t in finished)
    assert best["best_val_pearson"] == pytest.approx(study.best_value)
    config = RunConfig.load(best["config"])
    assert config.model.width == study.best_params["model.width"]
    assert config.train.max_lr == pytest.approx(study.best_params["train.max_lr"])
    assert config.data.path == str(sim_library) and config.train.epochs == 2
    table = pd.read_csv(tmp_path / "tune" / "trials.csv")
    assert list(table.columns) == ["trial", "state", "model.width", "train.max_lr", "val_pearson", "epochs"]
    assert len(table) == len(trials) and table["val_pearson"].iloc[0] == pytest.approx(study.best_value)
    assert table["trial"].iloc[0] == study.best_trial.number and (tmp_path / "tune" / "trials.md").exists()
    assert "model.width=" in (tmp_path / "tune" / "settings.md").read_text()

    # Rerunning with the same total continues the study instead of starting over.
    tune(spec, tmp_path / "tune", n_trials=4)
    assert len(optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}").trials) \
        == len(trials)


def test_tune_answers_a_repeated_setting_without_training_it(tmp_path, sim_library):
    from promoterlab.experiments.tune import open_study, space_size, trial_counts

    path = write_spec(tmp_path, sim_library, train_size=200, val_size=100,
                      search={"model.width": {"choices": [0.0625, 0.125]}})
    spec = load_spec(path)
    assert space_size(spec.search) == 2
    assert space_size({"a": {"choices": [1, 2, 3]}, "b": {"low": 1, "high": 7, "step": 2}}) == 12
    assert space_size({"a": {"low": 1e-3, "high": 1e-2}}) == float("inf")
    study = open_study(spec, tmp_path / "tune")
    study.enqueue_trial({"model.width": 0.0625})
    study.enqueue_trial({"model.width": 0.0625})  # the same setting again: answered, not trained
    best = tune(spec, tmp_path / "tune", n_trials=5)  # the space holds 2 settings: the search ends there
    trials = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}").get_trials()
    assert trials[0].params == trials[1].params == {"model.width": 0.0625}
    assert trials[1].user_attrs["duplicate_of"] == 0 and trials[1].value == trials[0].value
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert sorted(t.params["model.width"] for t in trained) == [0.0625, 0.125]
    assert sorted(p.name for p in (tmp_path / "tune" / "trials").iterdir()) == \
        [f"trial-{t.number:04d}" for t in trained]
    assert trial_counts(optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")) \
        == (2, 0, 0)
    assert best["distinct_settings_finished"] == 2 and best["repeats_not_trained"] == len(trials) - 2
    assert len(pd.read_csv(tmp_path / "tune" / "trials.csv")) == 2


def test_tune_budget_counts_distinct_settings():
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    from promoterlab.experiments.tune import trial_counts

    study = optuna.create_study(direction="maximize")
    space = {"w": CategoricalDistribution([1, 2, 3, 4])}

    def add(state, w, value=None):
        study.add_trial(create_trial(state=state, params={"w": w}, distributions=space, value=value))

    add(TrialState.COMPLETE, 1, 0.5)
    add(TrialState.COMPLETE, 1, 0.5)  # a repeat: not a new setting
    add(TrialState.FAIL, 1)  # a failed copy of a setting that completed (a doubly queued retry)
    add(TrialState.FAIL, 2)  # failed for good: counts
    add(TrialState.PRUNED, 3)
    add(TrialState.WAITING, 4)
    assert trial_counts(study) == (3, 0, 1)


def test_tune_refuses_a_grid(tmp_path, sim_library):
    path = write_spec(tmp_path, sim_library, axes={"seed": [0, 1]}, search={"model.width": {"choices": [0.125]}})
    result = CliRunner().invoke(app, ["tune", str(path), "--trials", "2", "--output", str(tmp_path / "t")])
    assert result.exit_code == 2 and "must have one value each" in result.output


def _forward_shape(model_config) -> tuple[int, ...]:
    import torch

    from promoterlab.models import build_model

    model = build_model(model_config, 18).eval()
    with torch.no_grad():
        out = model(torch.nn.functional.one_hot(torch.randint(0, 4, (2, 150)), 6).float().transpose(1, 2))
    assert torch.isfinite(out).all()
    return tuple(out.shape)


@pytest.mark.parametrize("name, runs, models", [("seed_study", 45, 5), ("dilation_ratio", 15, 5), ("lstm_grid", 1, 1)])
def test_ready_specs_build_every_model(name, runs, models):
    from promoterlab.experiments.tune import fixed_values, suggest

    spec = load_spec(REPO / "experiments" / f"{name}.yaml", budget="small")
    grid = spec.grid()
    assert len(grid) == runs and (spec.test is None or spec.test.path.endswith("test.tsv.gz"))
    distinct = {}
    for _, _, config in grid:
        assert config.model.width == 0.125 and config.data.group_col == "group"
        distinct[repr(config.model)] = config.model
    assert len(distinct) == models
    for model_config in distinct.values():
        assert _forward_shape(model_config) == (2, 18), model_config
    if spec.search:
        assert spec.search["model.hidden"] == {"choices": [8, 16, 32]}  # the full-width sizes x 0.125
        trial = optuna.trial.FixedTrial({"model.hidden": 32, "model.bidirectional": True, "model.dropout": 0.5,
                                         "train.weight_decay": 1e-4})
        params = {key: suggest(trial, key, space) for key, space in spec.search.items()}
        config = spec.config({**fixed_values(spec), **params})
        assert (config.model.hidden, config.model.bidirectional, config.train.weight_decay) == (32, True, 1e-4)
        assert _forward_shape(config.model) == (2, 18)


@pytest.mark.parametrize("name, runs", [("seed_study", 45), ("seed_study_dream", 25), ("lstm_grid", 1)])
def test_converged_budget_trains_to_early_stopping_at_one_width(name, runs):
    spec = load_spec(REPO / "experiments" / f"{name}.yaml", budget="converged")
    grid = spec.grid()
    assert len(grid) == runs
    for _, values, config in grid:
        assert config.model.width == 0.25 and config.model.name == values.get("model", "legnet-lstm")
        assert (config.train.epochs, config.train.patience) == (40, 3)
        assert (config.train.schedule, config.train.cooldown_epochs) == ("plateau", 4)  # ends annealed
        assert (config.train.batch_size, config.train.eval_batch_size, config.train.precision) == ("auto",) * 3
        assert config.data.val_singleton is False or not config.data.singleton_channel  # flag-0 validation
    if name == "seed_study_dream":
        assert Path(spec.test.path).name == "public_test_data_with_MAUDE_expression.txt"
        assert Path(spec.test.dream_leaderboard).name == "public_leaderboard_ids"
        assert {values["train_size"] for _, values, _ in grid} == {5120}
    if name == "lstm_grid":
        assert spec.search["model.hidden"] == {"choices": [16, 32, 64]}
        assert spec.pruning is None  # every trial trains to its plateau
        assert load_spec(REPO / "experiments" / "lstm_grid.yaml").search["model.hidden"] == {"choices": [64, 128, 256]}


def test_budget_search_overrides_are_checked(tmp_path, sim_library):
    search = {"model.hidden": {"choices": [64, 128]}, "model.dropout": {"choices": [0.1]}}
    path = write_spec(tmp_path, sim_library, search=search,
                      budgets={"narrow": {"model.width": 0.25, "search": {"model.hidden": {"choices": [16]}}},
                               "bad": {"search": {"train.lr": {"choices": [1]}}}})
    assert load_spec(path, budget="narrow").search == {"model.hidden": {"choices": [16]},
                                                       "model.dropout": {"choices": [0.1]}}
    assert load_spec(path).search == search
    with pytest.raises(ValueError, match="train has no field 'lr'") as err:
        load_spec(path, budget="bad")
    assert str(path) in str(err.value)


def test_pruning_settings_reach_the_study(tmp_path, sim_library):
    from promoterlab.experiments.tune import open_study

    path = write_spec(tmp_path, sim_library, search={"model.width": {"choices": [0.0625]}},
                      pruning={"first_epoch": 5},
                      budgets={"full": {"pruning": False}, "bad": {"pruning": {"after": 2}}})
    spec = load_spec(path)
    assert spec.pruning == {"first_epoch": 5, "startup_trials": 3}
    pruner = open_study(spec, tmp_path / "a").pruner
    assert isinstance(pruner, optuna.pruners.MedianPruner) and pruner._n_warmup_steps == 5
    spec = load_spec(path, budget="full")
    assert spec.pruning is None and isinstance(open_study(spec, tmp_path / "b").pruner, optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="pruning must be false or a mapping") as err:
        load_spec(path, budget="bad")
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="whole numbers"):
        load_spec(write_spec(tmp_path, sim_library, pruning={"first_epoch": -1}))
    assert load_spec(write_spec(tmp_path, sim_library)).pruning == {"first_epoch": 1, "startup_trials": 3}


def write_dream_test(folder: Path, n: int = 80) -> tuple[Path, Path]:
    """A DREAM-format test file (every 4th row unmeasured, ``nan``) and public-leaderboard JSONs
    of every subset over its measured rows (the official layout, in miniature)."""
    from promoterlab.evaluation.dream import JSON_NAMES, PAIRED

    library = pd.read_csv(write_library(folder / "sim.txt", n=n, seed=11), sep="\t", header=None,
                          names=["seq", "expr"])
    library.loc[library.index % 4 == 3, "expr"] = float("nan")
    measured = folder / "measured.txt"
    library.to_csv(measured, sep="\t", header=False, index=False, na_rep="nan")
    known = [int(pos) for pos in library.index[library["expr"].notna()]]
    value = dict(zip(known, library.loc[known, "expr"].round(4)))
    leaderboard = folder / "public_leaderboard_ids"
    leaderboard.mkdir()
    for i, (name, file_name) in enumerate(JSON_NAMES.items()):
        chosen = known[i % 3::2]
        if name in PAIRED:
            entries = {f"{a},{b}": [value[a], value[b]] for a, b in zip(chosen[::2], chosen[1::2])}
        else:
            entries = {str(pos): value[pos] for pos in chosen}
        (leaderboard / file_name).write_text(json.dumps(entries))
    return measured, leaderboard


def test_dream_test_set_gets_the_official_scores(tmp_path, sim_library):
    from promoterlab.evaluation.dream import load_truth, score
    from promoterlab.experiments.results import collect_runs, seed_deltas, summarise
    from promoterlab.experiments.sweep import write_dream_score

    measured, leaderboard = write_dream_test(tmp_path)
    path = write_spec(tmp_path, sim_library, axes={"model": ["legnet"], "seed": [0]},
                      test={"path": str(measured), "dream_leaderboard": str(leaderboard)})
    spec = load_spec(path, budget="quick")
    out = tmp_path / "runs"
    assert [o.status for o in run_sweep(spec, out)] == ["trained"]
    run = out / "model=legnet__seed=0"
    # the file holds float32 predictions as round-trip text: read as float32 they are exact (read
    # as float64 they are off by ~1e-8, which moves the alt - ref differences of a barely trained
    # model's near-constant outputs, and so the score, by more than any fixed tolerance)
    predictions = pd.read_csv(run / "test_predictions.tsv", sep="\t", dtype={"prediction": np.float32})
    assert len(predictions) == 60  # the measured rows only
    positions = [pos for pos in range(80) if pos % 4 != 3]
    expected = score(dict(zip(positions, predictions["prediction"].to_numpy(np.float64))), load_truth(leaderboard))
    saved = json.loads((run / "dream_score.json").read_text())
    assert saved["pearson_score"] == pytest.approx(expected.pearson_score, rel=1e-9)
    assert saved["spearman_score"] == pytest.approx(expected.spearman_score, rel=1e-9)
    assert 0 < saved["pearson_score"] < 1 and len(saved["subsets"]) == 9

    runs = collect_runs(out)
    assert runs["dream_pearson_score"].tolist() == [saved["pearson_score"]]
    assert summarise(runs)["dream_spearman_score_mean"].tolist() == [saved["spearman_score"]]
    assert seed_deltas(runs, "dream_pearson_score").empty  # no other model to pair

    # A run missing its DREAM scores is not finished; the rerun scores it without training again.
    (run / "dream_score.json").unlink()
    before = (run / "metrics.csv").read_text()
    assert [o.status for o in run_sweep(spec, out)] == ["trained"]
    assert (run / "dream_score.json").exists() and (run / "metrics.csv").read_text() == before
    with pytest.raises(ValueError, match="measured rows are not the 59 rows"):
        write_dream_score(run, predictions.iloc[:59], measured, leaderboard)
    bad = write_spec(tmp_path, sim_library, test={"path": str(measured), "dream_leaderboard": "no/such/folder"})
    with pytest.raises(FileNotFoundError, match="no/such/folder"):
        run_sweep(load_spec(bad), tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_only_selects_a_slice_of_the_grid(tmp_path, sim_library):
    from promoterlab.experiments.sweep import select

    path = write_spec(tmp_path, sim_library, axes={"model": ["legnet", "legnet-dilated"], "seed": [0, 1, 2]})
    spec = load_spec(path)
    names = [name for name, _, _ in select(spec, {"seed": ["1", "2"], "model": ["legnet-dilated"]})]
    assert names == ["model=legnet-dilated__seed=1", "model=legnet-dilated__seed=2"]
    assert len(select(spec, {})) == 6
    result = CliRunner().invoke(app, ["sweep", str(path), "--only", "seed=7", "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not among its values" in result.output
    result = CliRunner().invoke(app, ["sweep", str(path), "--only", "colour=red", "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not an axis" in result.output
    assert not (tmp_path / "r").exists()


def test_only_without_a_value_is_refused(tmp_path, sim_library):
    path = write_spec(tmp_path, sim_library)
    for item in ("seed", "seed=", "=0"):
        result = CliRunner().invoke(app, ["sweep", str(path), "--only", item, "--output", str(tmp_path / "r")])
        assert result.exit_code == 2 and "expected AXIS=VALUE" in result.output, item
    assert not (tmp_path / "r").exists()


def test_sweep_refuses_a_folder_holding_another_config(tmp_path, sim_library):
    spec = load_spec(write_spec(tmp_path, sim_library))
    name, _, config = spec.grid()[0]
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    # A finished run of the 'quick' budget (1 epoch) must not count as the full spec's run.
    load_spec(write_spec(tmp_path, sim_library), budget="quick").grid()[0][2].save(run_dir / "config.yaml")
    (run_dir / "summary.json").write_text("{}")
    [outcome] = run_sweep(spec, tmp_path / "runs")
    assert outcome.status == "failed" and "different config" in outcome.message
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "spec.yaml"), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "different config" in result.output  # a run of the sweep failed
    assert (run_dir / "summary.json").read_text() == "{}"  # left alone
    assert load_spec(tmp_path / "spec.yaml", budget="quick").budget == "quick"
    from promoterlab.cli.experiments import _default_folder

    assert _default_folder(load_spec(tmp_path / "spec.yaml", budget="quick")) == Path("runs/toy-quick")
    assert _default_folder(spec, "-tune") == Path("runs/toy-tune")


def test_bad_storage_url_is_a_clear_error(tmp_path, sim_library):
    from promoterlab.experiments.tune import open_study

    spec = load_spec(write_spec(tmp_path, sim_library))
    with pytest.raises(ValueError, match="storage 'nosuchdb://x': cannot open it"):
        open_study(spec, tmp_path / "t", storage="nosuchdb://x")


def test_a_run_saved_before_a_config_field_existed_still_matches(tmp_path, sim_library):
    from promoterlab.runs import saved_config_matches
    from promoterlab.training.run import resolve_config

    config = load_spec(write_spec(tmp_path, sim_library)).grid()[0][2]
    saved = resolve_config(config).to_dict()
    del saved["data"]["val_singleton"]  # written before the field existed: it takes its default
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert saved_config_matches(tmp_path, config)
    saved["train"]["epochs"] += 1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert not saved_config_matches(tmp_path, config)


def test_setting_table_shows_the_best_complete_trial_per_setting():
    from promoterlab.experiments.tune import setting_table

    trials = pd.DataFrame({
        "trial": range(6), "state": ["COMPLETE"] * 4 + ["PRUNED", "FAIL"],
        "model.hidden": [16, 16, 64, 16, 64, 16], "model.dropout": [0.0, 0.1, 0.0, 0.0, 0.2, 0.2],
        "train.weight_decay": [1e-3] * 6, "val_pearson": [0.80, 0.82, 0.85, 0.81, 0.9, float("nan")],
        "epochs": [10] * 6})
    table = setting_table(trials)  # dropout and hidden both have 2 tried values: the first is across
    assert list(table.columns) == ["model.dropout", "train.weight_decay", "model.hidden=16", "model.hidden=64"]
    assert table.set_index("model.dropout").loc[0.0, "model.hidden=16"] == 0.81  # best of trials 0 and 3
    assert math.isnan(table.set_index("model.dropout").loc[0.1, "model.hidden=64"])  # not tried
    assert 0.9 not in table.to_numpy()  # the pruned trial did not converge
    single = setting_table(trials[["trial", "state", "model.hidden", "val_pearson", "epochs"]])
    assert single.to_dict("records") == [{"model.hidden=16": 0.82, "model.hidden=64": 0.85}]
    assert setting_table(trials.iloc[4:]).empty


@pytest.mark.parametrize("spec_path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_spec_finds_its_inputs_in_a_data_directory(spec_path, tmp_path):
    """``data:`` paths point into --data-dir, ``simulate:N`` writes its library there once."""
    from conftest import SHARED_DATA

    real = "path: data:" in spec_path.read_text()
    if real and not SHARED_DATA.exists():
        pytest.skip("../shared/data not available")
    data_dir = SHARED_DATA if real else tmp_path
    result = CliRunner().invoke(app, ["sweep", str(spec_path), "--dry-run", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["missing"] == [] and report["runs"]
    if not real:
        (library,) = (tmp_path / "simulated").iterdir()
        assert library.stat().st_size > 0
    empty = CliRunner().invoke(app, ["sweep", str(spec_path), "--dry-run", "--data-dir", str(tmp_path / "none")])
    assert (empty.exit_code != 0) == real  # a real spec names its missing inputs; a simulated one writes them
    if real:
        assert "not found" in empty.output
