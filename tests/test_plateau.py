"""The plateau schedule: warm-up, hold, cool-down set off by validation or by the epoch cap."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from conftest import tiny_config
from promoterlab import train
from promoterlab.config import TrainConfig
from promoterlab.training.plateau import PlateauSchedule


def schedule(**kwargs) -> PlateauSchedule:
    settings = dict(max_lr=0.01, div_factor=25.0, final_div_factor=1e4, patience=2, cooldown_epochs=4,
                    max_epochs=40, warmup_epochs=2)
    return PlateauSchedule(**{**settings, **kwargs})


def fake_trainer(epoch: int, score: float) -> SimpleNamespace:
    return SimpleNamespace(current_epoch=epoch, sanity_checking=False, should_stop=False,
                           callback_metrics={"val_pearson": torch.tensor(score)})


def run_scores(plateau: PlateauSchedule, scores: list[float]) -> int:
    """Feed one validation score per epoch; return the epochs trained until the callback stops."""
    for epoch, score in enumerate(scores):
        trainer = fake_trainer(epoch, score)
        plateau.on_validation_end(trainer, None)
        if trainer.should_stop:
            return epoch + 1
    return len(scores)


def test_learning_rate_warms_up_holds_and_cools_down():
    plateau = schedule()
    assert plateau.lr_at(0.0) == pytest.approx(0.01 / 25)
    assert plateau.lr_at(1.0) == pytest.approx((0.01 / 25 + 0.01) / 2)  # half-way through a cosine warm-up
    assert plateau.lr_at(2.0) == plateau.lr_at(15.5) == 0.01
    plateau.cooldown_start, plateau.cooldown_length = 10, 4
    end = 0.01 / 25 / 1e4
    assert plateau.lr_at(9.99) == 0.01 and plateau.lr_at(10.0) == pytest.approx(0.01)
    assert plateau.lr_at(12.0) == pytest.approx((0.01 + end) / 2)
    assert plateau.lr_at(14.0) == pytest.approx(end) and plateau.lr_at(30.0) == pytest.approx(end)


def test_plateau_starts_the_cooldown_after_patience_epochs_without_improvement():
    plateau = schedule(patience=2, cooldown_epochs=3)
    # best at epoch 3 (1-based); epochs 4 and 5 do not improve (5's gain is below the minimum delta)
    epochs = run_scores(plateau, [0.5, 0.6, 0.7, 0.69, 0.70005, 0.9, 0.9, 0.9, 0.9, 0.9])
    assert (plateau.cooldown_start, plateau.cooldown_length, plateau.reason) == (5, 3, "plateau")
    assert epochs == 8 and plateau.best == pytest.approx(0.7)


def test_a_run_still_improving_cools_down_before_the_cap():
    plateau = schedule(patience=3, cooldown_epochs=4, max_epochs=10)
    epochs = run_scores(plateau, [0.1 * i for i in range(1, 11)])
    assert (plateau.cooldown_start, plateau.cooldown_length, plateau.reason) == (6, 4, "cap")
    assert epochs == 10


def test_state_round_trip_resumes_the_count():
    first = schedule(patience=3)
    run_scores(first, [0.5, 0.6, 0.55])
    resumed = schedule(patience=3)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert (resumed.best, resumed.wait, resumed.cooldown_start) == (pytest.approx(0.6), 1, None)
    trainer = fake_trainer(3, 0.58)
    resumed.on_validation_end(trainer, None)
    trainer = fake_trainer(4, 0.59)
    resumed.on_validation_end(trainer, None)
    assert resumed.cooldown_start == 5 and resumed.reason == "plateau"


@pytest.mark.parametrize("changes, message", [
    (dict(schedule="plateau"), "give patience"),
    (dict(schedule="plateau", patience=2, max_time=3.0), "cannot be combined with max_time"),
    (dict(schedule="plateau", patience=2, finetune_epochs=1), "cannot be combined with finetune_epochs"),
    (dict(schedule="plateau", patience=2, averaging="swa:3"), "cannot be combined with averaging swa"),
    (dict(schedule="cosine"), "schedule must be one of onecycle, plateau"),
    (dict(schedule="plateau", patience=2, cooldown_epochs=0), "cooldown_epochs"),
])
def test_invalid_schedules_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_training_with_the_plateau_schedule_ends_annealed(tata_library, tmp_path):
    # One strong motif and the MSE loss: best validation Pearson 0.956-0.969 for seeds 0-4 both
    # in fp32 (on AVX2) and in bf16 (KL soft labels learn it only for some seeds in 5 epochs).
    config = tiny_config(tata_library, epochs=5, width=0.0625, train_size=400, val_size=200, loss="mse")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, schedule="plateau", patience=10,
                                                                   cooldown_epochs=2, max_lr=0.01, batch_size=32))
    summary = train(config, tmp_path / "run")
    assert summary["cooldown"] == {"first_epoch": 4, "epochs": 2, "reason": "cap"} and summary["epochs"] == 5
    lr = pd.read_csv(tmp_path / "run" / "metrics.csv")["lr"].to_numpy()
    assert lr[0] < lr[1] < lr[2] == pytest.approx(0.01)  # warm-up over 2 epochs, then held
    assert lr[2] > lr[3] > lr[4] and lr[4] < 0.01 * 0.2  # annealed in the last two
    assert summary["best_val_pearson"] > 0.8  # it learns
