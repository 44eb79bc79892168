"""A budget keeps its plan: re-planned from the measured pace, the OneCycle schedule is compressed
without a jump and ends annealed before the deadline. Steps and validations take fake seconds
(an injected clock), so nothing here depends on the machine's speed."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from promoterlab.config import TrainConfig
from promoterlab.training.budget import CatchUp, Deadline, plan_budget, restretch_onecycle
from promoterlab.training.module import PromoterRegressor
from promoterlab.objective import Objective

SEQ_LEN, BATCH = 10, 4


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Ticks(Callback):
    """Advances the fake clock: ``step`` seconds per training batch, ``val`` per validation."""

    def __init__(self, clock: FakeClock, step: float, val: float):
        self.clock, self.step, self.val = clock, step, val
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.clock.now += self.step

    def on_validation_end(self, trainer, module):  # before CatchUp reads the clock (callback order)
        self.clock.now += self.val


def tiny_loaders(steps_per_epoch: int):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(steps_per_epoch * BATCH, 6, SEQ_LEN, generator=generator)
    y = torch.rand(steps_per_epoch * BATCH, generator=generator) * 17
    train = DataLoader(TensorDataset(x, y), batch_size=BATCH)
    val = DataLoader(TensorDataset(x[:8], x[:8].flip(-1), y[:8]), batch_size=BATCH)
    return train, val


def budgeted_run(step_seconds: float, probe_seconds: float = 0.1, val_seconds: float = 0.5,
                 budget: float = 30.0, steps_per_epoch: int = 20):
    """A fit planned for ``probe_seconds`` per step whose steps take ``step_seconds``."""
    torch.manual_seed(0)
    clock = FakeClock()
    plan = plan_budget(budget, 0.0, probe_seconds, val_seconds, steps_per_epoch)
    deadline = budget  # the fake run starts at 0
    catch_up = CatchUp(deadline, plan.val_seconds, plan.check_val_every_n_epoch, clock=clock)
    ticks = Ticks(clock, step_seconds, val_seconds)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6 * SEQ_LEN, 18))
    module = PromoterRegressor(model, Objective("kl", 18), TrainConfig())
    trainer = L.Trainer(max_epochs=plan.epochs, limit_train_batches=plan.limit_train_batches,
                        check_val_every_n_epoch=plan.check_val_every_n_epoch, accelerator="cpu", devices=1,
                        callbacks=[ticks, Deadline(deadline, clock), catch_up], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    train, val = tiny_loaders(steps_per_epoch)
    trainer.fit(module, train, val)
    return plan, trainer, ticks, clock, module


def test_steps_slower_than_the_probe_replan_and_end_annealed_before_the_deadline():
    plan, trainer, ticks, clock, module = budgeted_run(step_seconds=0.13)
    report = CatchUp.report(trainer)
    assert report["replans"] >= 1, "a pace 30% slower than the probe is re-planned"
    first = report["replan_log"][0]
    assert first["at_step"] <= plan.steps // 10  # early, within the first tenth of the plan
    assert first["step_seconds"] == pytest.approx(0.13)
    schedule = report["schedule_steps"]
    assert schedule < plan.steps
    assert trainer.global_step + report["skipped_steps"] == schedule
    assert report["skipped_steps"] <= 0.05 * schedule  # the re-plan keeps the catch-up from jumping
    assert clock.now <= 30.0  # before the deadline, the last validation included
    max_lr = TrainConfig().max_lr
    assert max(ticks.lrs) == pytest.approx(max_lr, rel=0.05)  # the warm-up still reached the peak
    assert ticks.lrs[-1] <= 0.01 * max_lr  # and the run ended annealed
    steps = [abs(b - a) for a, b in zip(ticks.lrs, ticks.lrs[1:])]
    assert max(steps) <= 0.05 * max_lr  # compressed, not jumped: the rate changed smoothly
    assert math.isfinite(module.history[-1]["val_pearson"])  # the annealed model was validated


def test_steps_that_match_the_probe_keep_the_plan_and_skip_nothing():
    plan, trainer, ticks, clock, _ = budgeted_run(step_seconds=0.1)
    report = CatchUp.report(trainer)
    assert report == {"skipped_steps": 0, "replans": 0}
    assert trainer.global_step == plan.steps
    assert clock.now <= 30.0 and ticks.lrs[-1] <= 0.01 * TrainConfig().max_lr


def test_a_sudden_slowdown_late_in_the_run_is_caught_up():
    """Re-plans come every tenth of the plan; between them the catch-up still keeps the deadline."""
    plan, trainer, ticks, clock, _ = budgeted_run(step_seconds=0.1, budget=30.0)
    assert CatchUp.report(trainer)["skipped_steps"] == 0
    clock2 = FakeClock()

    class LateSlowdown(Ticks):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            super().on_train_batch_start(trainer, module, batch, batch_idx)
            if trainer.global_step > 0.7 * plan.steps:
                self.clock.now += 0.4

    torch.manual_seed(0)
    catch_up = CatchUp(30.0, plan.val_seconds, plan.check_val_every_n_epoch, clock=clock2)
    ticks2 = LateSlowdown(clock2, 0.1, 0.5)
    module = PromoterRegressor(nn.Sequential(nn.Flatten(), nn.Linear(6 * SEQ_LEN, 18)), Objective("kl", 18),
                               TrainConfig())
    trainer2 = L.Trainer(max_epochs=plan.epochs, limit_train_batches=plan.limit_train_batches,
                         check_val_every_n_epoch=plan.check_val_every_n_epoch, accelerator="cpu", devices=1,
                         callbacks=[ticks2, Deadline(30.0, clock2), catch_up], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer2.fit(module, *tiny_loaders(20))
    report = CatchUp.report(trainer2)
    assert clock2.now <= 30.0 and ticks2.lrs[-1] <= 0.01 * TrainConfig().max_lr
    assert trainer2.global_step + report["skipped_steps"] == report.get("schedule_steps", plan.steps)


@pytest.mark.parametrize("position, remaining", [(0, 50), (10, 30), (40, 20), (70, 10), (40, 59)])
def test_restretch_keeps_the_rate_continuous_and_ends_annealed(position, remaining):
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=100, pct_start=0.3,
                                                    div_factor=25, final_div_factor=1e4)
    optimizer.step()
    for _ in range(position):
        scheduler.step()
    before = optimizer.param_groups[0]["lr"]
    restretch_onecycle(scheduler, remaining)
    assert scheduler.total_steps - scheduler.last_epoch == remaining
    after = optimizer.param_groups[0]["lr"]
    assert after == pytest.approx(before, abs=0.1 * 0.01)  # the position is kept, up to rounding
    rates = []
    for _ in range(remaining):  # the rate of each remaining step, then the scheduler's step after it
        rates.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert rates[-1] == pytest.approx(0.01 / 25 / 1e4)  # annealed at the last step
