"""A time budget trains an annealed model; the run directory is safe to rerun and to interrupt."""

from __future__ import annotations

import dataclasses
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import FakeClock, tiny_config
from promoterlab import load_run, train
from promoterlab.models import build_model, count_parameters
from promoterlab.data.simulate import simulate_library
from promoterlab.training import budget as budget_module
from promoterlab.runs import saved_config_matches
from promoterlab.training import plan as plan_module
from promoterlab.data.dataset import EvalBatches, TrainBatches, batch_loader, load_split
from promoterlab.training.budget import MIN_BUDGET_STEPS, SAFETY, budget_widths, plan_budget, time_steps
from promoterlab.objective import Objective
from promoterlab.training.run import TrainingInterrupted


def test_plan_fits_whole_epochs_and_validates_the_last():
    plan = plan_budget(budget_seconds=100, elapsed=10, step_seconds=0.1, val_seconds=1.0, steps_per_epoch=50)
    # 90 s * (1 - SAFETY) available; an epoch costs 5 s + 1 s of validation
    assert plan.epochs == int(90 * (1 - SAFETY) // 6) and plan.steps == plan.epochs * 50
    assert plan.check_val_every_n_epoch == 1 and plan.limit_train_batches is None


def test_plan_validates_less_often_when_validation_is_costly():
    plan = plan_budget(budget_seconds=300, elapsed=0, step_seconds=0.1, val_seconds=4.0, steps_per_epoch=50)
    every = plan.check_val_every_n_epoch
    assert every == 4  # 4 s of validation against 5 s of training: at most a fifth
    assert plan.epochs % every == 0  # so the last epoch validates
    cost = plan.epochs * 5.0 + plan.epochs // every * 4.0
    assert cost <= 300 * (1 - SAFETY) < cost + every * 5.0 + 4.0


def test_plan_of_a_budget_shorter_than_an_epoch_trains_part_of_one():
    plan = plan_budget(budget_seconds=10, elapsed=2, step_seconds=0.5, val_seconds=1.0, steps_per_epoch=100)
    assert plan.epochs == 1 and plan.limit_train_batches == plan.steps
    assert plan.steps == int((8 * (1 - SAFETY) - 1.0) // 0.5)


def test_plan_of_a_short_budget_shortens_epochs_to_fill_it():
    # whole epochs: 2 of 80 steps (plus validation) would leave 40 s of 100 unused
    plan = plan_budget(budget_seconds=120, elapsed=6, step_seconds=0.45, val_seconds=5.0, steps_per_epoch=80)
    assert (plan.epochs, plan.limit_train_batches) == (3, 66) and plan.steps == 198
    assert plan.steps * 0.45 + plan.epochs * 5.0 <= 114 * (1 - SAFETY)


def lr_per_step() -> tuple[Callback, list[float]]:
    seen: list[float] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    return Record(), seen


def budgeted(config, max_time: float, **changes):
    """``config`` planned by a budget of ``max_time`` minutes (its epochs ``"auto"``)."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs="auto", max_time=max_time,
                                                                 **changes))


# The budget tests run on a fake clock (conftest.FakeClock): a step costs what the test says,
# however fast the machine is, so the plans and the deadlines are the same everywhere.


def test_budgeted_schedule_ends_annealed_within_the_budget(sim_library, tmp_path, monkeypatch):
    clock = FakeClock(step=0.25, val=0.5).install(monkeypatch)
    config = budgeted(tiny_config(sim_library, train_size=600, val_size=200), 0.25)
    record, lrs = lr_per_step()
    summary = train(config, tmp_path, callbacks=[record, clock.callback])
    budget = summary["budget"]
    assert summary["train_seconds"] <= 15
    assert budget["epochs"] >= 2 and budget["skipped_steps"] == 0 and summary["steps"] == budget["steps"]
    max_lr = config.train.max_lr
    assert max(lrs) == pytest.approx(max_lr, rel=0.05)  # the warm-up reached the peak
    assert lrs[-1] <= 0.01 * max_lr  # and the run ended annealed
    assert json.loads((tmp_path / "budget.json").read_text())["steps"] == budget["steps"]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    # per-epoch means: warming up in the first epoch, annealed in the last (a schedule compressed by
    # a re-plan may peak within the first epoch)
    assert metrics["lr"].iloc[0] < 0.9 * max_lr and metrics["lr"].iloc[-1] < metrics["lr"].max()


def test_budgeted_run_that_slows_down_still_ends_annealed_within_the_budget(sim_library, tmp_path, monkeypatch):
    """Steps three times slower than the probe measured, from the second epoch on: without
    re-planning the deadline would stop the run in the middle of its schedule."""
    clock = FakeClock(step=0.25, val=0.5, slowdown=lambda epoch: 3.0 if epoch >= 1 else 1.0).install(monkeypatch)
    record, lrs = lr_per_step()
    config = budgeted(tiny_config(sim_library, train_size=600, val_size=200), 0.25)
    summary = train(config, tmp_path, callbacks=[record, clock.callback])
    budget = summary["budget"]
    assert budget["replans"] > 0 and budget["schedule_steps"] < budget["steps"]
    assert summary["steps"] + budget["skipped_steps"] == budget["schedule_steps"]
    assert summary["train_seconds"] <= 15
    assert lrs[-1] <= 0.01 * config.train.max_lr
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert np.isfinite(metrics["val_pearson"].iloc[-1])  # the annealed model was validated


def test_probe_times_steps_after_the_warm_up_and_leaves_the_model_alone(sim_library, monkeypatch):
    readings = iter(np.arange(0.0, 1000.0, 0.1))  # each reading of the clock is 0.1 s after the last
    monkeypatch.setattr(budget_module, "time", SimpleNamespace(perf_counter=lambda: float(next(readings))))
    config = tiny_config(sim_library, train_size=600, val_size=200)
    train_set, val_set, *_ = load_split(config.data, config.seed)
    model = build_model(config.model, 18)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_loader = batch_loader(TrainBatches(train_set, seed=0), 32, shuffle=True, seed=0)
    val_loader = batch_loader(EvalBatches(val_set.codes, val_set.targets), 32, shuffle=False)
    step_s, val_s = time_steps(model, Objective("kl", 18), train_loader, val_loader, "32", torch.device("cpu"),
                               lr=1e-3, min_steps=5, min_seconds=0.5)
    # one reading per step, the first as the warm-up ends; validation: 3 of the first 4 batches timed
    assert step_s == pytest.approx(0.1) and val_s == pytest.approx(0.1 * len(val_loader))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_budget_widths_halve_down_to_an_eighth():
    assert budget_widths(1.0) == [1.0, 0.5, 0.25, 0.125]
    assert budget_widths(0.5) == [0.5, 0.25, 0.125]
    assert budget_widths(0.1) == [0.1]


def test_short_budget_trains_the_widest_model_that_fits_enough_steps(sim_library, tmp_path, monkeypatch):
    # MIN_BUDGET_STEPS made 20 so that the test trains few steps; about 12 s to spend: 11 steps
    # at width 0.5, ~27 at 0.25 (>= 20), so 0.25 trains; interrupted after its first epoch, then resumed
    monkeypatch.setattr(plan_module, "MIN_BUDGET_STEPS", 20)
    clock = FakeClock(step=0.4, val=0.1, probe={0.5: 1.0, 0.25: 0.4, 0.125: 0.1}).install(monkeypatch)
    config = budgeted(tiny_config(sim_library, width=0.5, train_size=300, val_size=100), 0.25)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path, callbacks=[StopAfterFirstEpoch(), clock.callback])
    summary = train(config, tmp_path, callbacks=[clock.callback])  # resumed at the width chosen before
    assert summary["epochs"] >= 2 and pd.read_csv(tmp_path / "metrics.csv")["epoch"].iloc[0] == 1
    budget = summary["budget"]
    assert budget["width"] == 0.25 and list(budget["steps_by_width"]) == ["0.5", "0.25"]
    assert budget["steps_by_width"]["0.5"] < 20 <= budget["steps_by_width"]["0.25"] == budget["steps"]
    assert summary["steps"] == budget["steps"] and budget["skipped_steps"] == 0
    assert summary["params"] == count_parameters(build_model(dataclasses.replace(config.model, width=0.25), 18))
    saved = load_run(tmp_path)[1]
    assert saved.model.width == 0.25 and saved.train.fit_width is False  # its config.yaml trains 0.25 again
    assert saved_config_matches(tmp_path, config)  # the same command resumes it
    fixed = dataclasses.replace(config, train=dataclasses.replace(config.train, fit_width=False))
    assert not saved_config_matches(tmp_path, fixed)  # width 0.5 asked for, without narrowing


def test_budget_keeps_the_model_without_fit_width(sim_library, tmp_path, monkeypatch):
    clock = FakeClock(step=0.5, val=0.1).install(monkeypatch)
    config = budgeted(tiny_config(sim_library, width=0.125, train_size=300, val_size=100), 0.1, fit_width=False)
    summary = train(config, tmp_path, callbacks=[clock.callback])
    assert summary["budget"]["width"] is None and summary["budget"]["steps_by_width"] == {}
    assert summary["budget"]["steps"] < MIN_BUDGET_STEPS  # too few, but the width was fixed


def test_explicit_epochs_win_over_the_budget(sim_library, tmp_path, monkeypatch):
    FakeClock().install(monkeypatch)  # time stands still: the deadline never comes
    config = tiny_config(sim_library, epochs=2, train_size=300, val_size=100)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_time=5))
    summary = train(config, tmp_path)
    assert summary["epochs"] == 2 and "budget" not in summary


def test_deadline_counts_validation_time(sim_library, tmp_path, monkeypatch):
    """The hard stop of an explicit --epochs run under --max-time counts validation too: a run
    whose validation alone outlasts the budget stops after its first epoch."""
    clock = FakeClock(step=0.0, val=2.0).install(monkeypatch)
    config = tiny_config(sim_library, epochs=20, train_size=200, val_size=100)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_time=1.5 / 60))
    summary = train(config, tmp_path, callbacks=[clock.callback])
    assert summary["epochs"] == 1 and summary["stopped_early"]


def test_metrics_csv_has_unix_line_endings_and_the_lr_used(sim_library, tmp_path):
    record, lrs = lr_per_step()
    train(tiny_config(sim_library, epochs=2, train_size=300, val_size=100), tmp_path, callbacks=[record])
    raw = (tmp_path / "metrics.csv").read_bytes()
    assert b"\r" not in raw and raw.count(b"\n") == 3
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    per_epoch = np.array_split(np.array(lrs), 2)
    np.testing.assert_allclose(metrics["lr"], [chunk.mean() for chunk in per_epoch], rtol=1e-6)


def test_non_default_bin_count_trains_end_to_end(tmp_path):
    frame = simulate_library(900, seed=3)
    path = tmp_path / "ten_bins.txt"
    frame.assign(expr=frame["expr"] * 9 / 17)[["seq", "expr"]].to_csv(path, sep="\t", header=False, index=False)
    config = tiny_config(path, epochs=1, train_size=400, val_size=200, n_bins=10)
    summary = train(config, tmp_path / "run")
    model, saved = load_run(tmp_path / "run")
    assert Objective.of(saved) == Objective("kl", 10)
    assert model(torch.zeros(3, 6, 150)).shape == (3, 10) and np.isfinite(summary["best_val_pearson"])
    too_high = dataclasses.replace(config, model=dataclasses.replace(config.model, n_bins=5))
    with pytest.raises(ValueError, match=r"--loss kl needs targets on the 0..4 bin scale"):
        train(too_high, tmp_path / "five")
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2"):
        Objective("kl", 1)


def test_constant_targets_are_refused_before_any_file(tmp_path):
    path = tmp_path / "flat.txt"
    path.write_text("".join(f"{s}\t5\n" for s in simulate_library(300, seed=2)["seq"]))
    with pytest.raises(ValueError, match="every target is 5; a model cannot learn"):
        train(tiny_config(path, epochs=1, train_size=100, val_size=50), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_another_config_in_the_directory_is_refused_unless_overwrite(sim_library, tmp_path):
    first = tiny_config(sim_library, epochs=1, train_size=300, val_size=100)
    train(first, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    other = dataclasses.replace(first, seed=1)
    with pytest.raises(ValueError, match="holds a run with a different config; .* --overwrite"):
        train(other, tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    summary = train(other, tmp_path, overwrite=True)
    assert summary["seed"] == 1 and load_run(tmp_path)[1].seed == 1


class StopAfterFirstEpoch(Callback):
    """Ctrl-C as the second epoch starts (the first is checkpointed by then)."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_epoch_and_the_same_call_resumes(sim_library, tmp_path):
    config = tiny_config(sim_library, epochs=3, train_size=300, val_size=100)
    with pytest.raises(TrainingInterrupted, match=r"kept last.ckpt and metrics.csv after epoch 1 .* resume"):
        train(config, tmp_path, callbacks=[StopAfterFirstEpoch()])
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "summary.json").exists()
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
    resumed = train(config, tmp_path)
    straight = train(config, tmp_path / "straight")
    assert resumed["epochs"] == 3
    a, b = pd.read_csv(tmp_path / "metrics.csv"), pd.read_csv(tmp_path / "straight" / "metrics.csv")
    np.testing.assert_allclose(a[["train_loss", "val_pearson"]], b[["train_loss", "val_pearson"]], rtol=1e-5)


def test_checkpoints_between_thinned_validations_do_not_warn_on_a_terminal():
    from promoterlab.training.quiet import quiet_lightning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        warnings.warn("`ModelCheckpoint(monitor='val_pearson')` could not find the monitored key in the "
                      "returned metrics: ['epoch', 'step']")
        warnings.warn("a warning a user can act on")
    assert [str(w.message) for w in caught] == ["a warning a user can act on"]
