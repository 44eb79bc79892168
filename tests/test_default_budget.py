"""The default train fits a laptop and says how long it will take (issue 32, section 2): a time
budget unless the length is given, shared by an ensemble's models; an estimate from measured
steps before training, the time taken after it."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import tiny_config
from promoterlab.config import DEFAULT_TIME_BUDGET, RunConfig, TrainConfig, time_budget
from promoterlab.training.budget import BudgetPlan
from promoterlab.training.plan import FINISH_SECONDS, estimate_line, estimate_seconds, took_line
from promoterlab.training.train import member_configs


def test_the_default_is_a_time_budget_unless_the_length_is_given():
    assert time_budget(TrainConfig()) == DEFAULT_TIME_BUDGET
    assert time_budget(TrainConfig(epochs=5)) is None  # explicit epochs: no budget
    assert time_budget(TrainConfig(max_time=3.0)) == 3.0 and time_budget(TrainConfig(max_time=None)) is None
    assert time_budget(TrainConfig(schedule="plateau", patience=2)) is None
    assert time_budget(TrainConfig(averaging="swa")) is None
    assert time_budget(TrainConfig(devices="2", strategy="ddp")) is None
    # a run saved before the default budget existed keeps training by epochs
    old = RunConfig.from_dict({"version": "0.1.0", "train": {"epochs": "auto"}})
    assert old.train.max_time is None and time_budget(old.train) is None


def test_an_ensemble_shares_the_budget(tmp_path):
    config = tiny_config(tmp_path / "x.txt")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs="auto", max_time="auto"))
    members = member_configs(config, 3)
    assert [m.train.max_time for m in members] == [DEFAULT_TIME_BUDGET / 3] * 3
    given = dataclasses.replace(config, train=dataclasses.replace(config.train, max_time=6.0))
    assert [m.train.max_time for m in member_configs(given, 2)] == [3.0, 3.0]
    fixed = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=4))
    assert all(m.train.max_time is None for m in member_configs(fixed, 3))


def test_the_estimate_adds_up_the_planned_epochs():
    plan = BudgetPlan(budget_seconds=240.0, step_seconds=0.5, val_seconds=4.0, steps_per_epoch=80, epochs=6,
                      steps=480, limit_train_batches=None, check_val_every_n_epoch=1)
    total, per_epoch = estimate_seconds(None, None, None, plan, epochs=6, model=None, elapsed=10.0)
    assert per_epoch == pytest.approx(80 * 0.5 + 4.0)  # 44 s: the steps of an epoch and its validation
    assert total == pytest.approx(10.0 + 6 * 44.0 + 2 * 4.0 + FINISH_SECONDS)
    thinned = dataclasses.replace(plan, check_val_every_n_epoch=2, steps=240, limit_train_batches=40)
    assert estimate_seconds(None, None, None, thinned, 6, None, 0.0)[1] == pytest.approx(40 * 0.5 + 2.0)
    assert estimate_line(3, 6, 38.2, 240.0) == "estimate: about 12 min: 3 models x 6 epochs x 38 s (measured on " \
                                               "this machine)"
    assert estimate_line(1, 6, 38.2, 60.0) == "estimate: about 60 s: 6 epochs x 38 s (measured on this machine)"
    assert took_line(696.0, 720.0) == "took 11.6 min (estimated 12 min)" and took_line(42.0, None) == "took 42 s"


def test_without_a_budget_the_estimate_comes_from_a_short_probe(sim_library, tmp_path):
    from promoterlab import train

    summary = train(tiny_config(sim_library, epochs=2, train_size=300, val_size=100), tmp_path)
    assert summary["estimated_seconds"] > 0 and "budget" not in summary
