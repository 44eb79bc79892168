"""Fit a run into a wall-clock budget (``--max-time``) with a schedule that ends annealed.

Training first times a few steps of a throw-away copy of the model on real batches (and a few
validation batches), then chooses how many steps fit, as epochs of equal length (whole epochs,
or epochs limited to a share of the batches so that the budget is filled). The OneCycle
schedule spans exactly those steps, so the run ends on the annealed model instead of being
cut off in the warm-up. Validation is thinned out when it would cost more than a fifth of
training, and always runs after the last epoch.

A budget too short for the model (fewer than :data:`MIN_BUDGET_STEPS` steps) trains a narrower
one when the run allows it (``fit_width``): the width is halved, down to
:data:`NARROWEST_WIDTH`, until the budget fits that many steps (:func:`budget_widths`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from promoterlab.precision import autocast

# Fraction of the budget kept back for what the probe cannot see (Lightning's own work, the
# operating system, a slower epoch); the final model save and figures get their own reserve.
SAFETY = 0.08
VALIDATION_SHARE = 0.2
WHOLE_EPOCHS_ENOUGH = 4
# Measured on 2 CPU cores (BENCHMARKS.md, "A short budget with the default model"): in one
# minute, width 1 fits 30 steps (val Pearson 0.11) and width 0.125 248 (0.80); in five minutes
# on DREAM-5120, width 1 fits 240 steps (test 0.709) and width 0.5 480 (0.736).
MIN_BUDGET_STEPS = 400
NARROWEST_WIDTH = 0.125


@dataclass
class BudgetPlan:
    """What a budget buys, as recorded in ``summary.json`` under ``"budget"``."""

    budget_seconds: float
    step_seconds: float
    val_seconds: float
    steps_per_epoch: int
    epochs: int
    steps: int
    limit_train_batches: int | None
    check_val_every_n_epoch: int
    width: float | None = None  # the width trained, when the budget chose it
    steps_by_width: dict[str, int] = field(default_factory=dict)  # what each width tried would fit

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def budget_widths(width: float) -> list[float]:
    """Widths a budget may train, widest first: ``width``, then halved while at least
    :data:`NARROWEST_WIDTH` (a model already narrower keeps its width)."""
    widths = [width]
    while widths[-1] / 2 >= NARROWEST_WIDTH:
        widths.append(widths[-1] / 2)
    return widths


def time_steps(model: nn.Module, objective, train_loader, val_loader, precision: str, device: torch.device,
               lr: float, min_steps: int = 5, min_seconds: float = 3.0, max_steps: int = 30, warmup: int = 3
               ) -> tuple[float, float]:
    """Seconds per training step and per validation pass, measured on a copy of ``model``.

    The copy trains with AdamW on the first batches of ``train_loader``: ``warmup`` untimed
    steps (the first ones pay for memory and kernel set-up, and would make the plan too short),
    then at least ``min_steps`` and ``min_seconds``; ``model`` itself is untouched. ``precision``
    is resolved (``32``, ``bf16`` or ``16``, :func:`promoterlab.precision.resolve_precision`).
    """
    probe = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    timed, start, steps = 0.0, 0.0, 0
    for i, (x, y) in enumerate(train_loader):
        if i == warmup:
            start = time.perf_counter()
        with autocast(precision, device):
            out = probe(x.to(device))
        optimizer.zero_grad(set_to_none=True)
        objective.loss_value(out, y.to(device)).backward()
        optimizer.step()
        if i >= warmup:
            steps = i - warmup + 1
            timed = time.perf_counter() - start
            if (steps >= min_steps and timed >= min_seconds) or steps >= max_steps:
                break
    step_seconds = timed / steps if steps else 0.0
    probe.eval()
    val_timed, val_batches = 0.0, 0
    with torch.inference_mode():
        for i, (x_fwd, x_rc, _) in enumerate(val_loader):
            begin = time.perf_counter()
            with autocast(precision, device):
                objective.average(probe(x_fwd.to(device)), probe(x_rc.to(device)))
            if i > 0:  # the first batch pays for allocation
                val_timed += time.perf_counter() - begin
                val_batches += 1
            if i >= 3:
                break
    per_val_batch = val_timed / val_batches if val_batches else 0.0
    return step_seconds, per_val_batch * len(val_loader)


def plan_budget(budget_seconds: float, elapsed: float, step_seconds: float, val_seconds: float,
                steps_per_epoch: int, reserve_seconds: float = 0.0) -> BudgetPlan:
    """Choose epochs, steps per epoch and the validation interval that fill the budget.

    Every epoch has the same number of steps: whole epochs when at least
    :data:`WHOLE_EPOCHS_ENOUGH` fit (at most a fifth of the budget is then left over), else the
    number of epochs that holds the most steps, each limited to its share of the batches (a
    random part of the data, reshuffled every epoch), so that a short budget is used in full.

    Parameters
    ----------
    budget_seconds : float
        The whole budget, counted from the start of ``train``.
    elapsed : float
        Seconds already spent (reading data, the probe).
    step_seconds, val_seconds : float
        Measured cost of a training step and of one validation pass.
    steps_per_epoch : int
        Training batches per epoch.
    reserve_seconds : float
        Kept for the work after the last epoch (saving, figures).
    """
    available = max(0.0, (budget_seconds - elapsed - reserve_seconds) * (1.0 - SAFETY))
    step_seconds = max(step_seconds, 1e-6)
    epoch_seconds = steps_per_epoch * step_seconds
    every = 1 if val_seconds <= VALIDATION_SHARE * epoch_seconds else \
        math.ceil(val_seconds / (VALIDATION_SHARE * epoch_seconds))
    best = whole = (1, 1, 1)  # (steps, epochs, steps per epoch): at least one step
    epochs = 1
    while True:
        interval = min(every, epochs)
        if epochs % interval:
            epochs += 1
            continue
        per_epoch = min(steps_per_epoch,
                        int((available - (epochs // interval) * val_seconds) // (epochs * step_seconds)))
        if per_epoch < 1:
            break
        if epochs * per_epoch > best[0]:
            best = (epochs * per_epoch, epochs, per_epoch)
        if per_epoch == steps_per_epoch:
            whole = (epochs * per_epoch, epochs, per_epoch)
        if per_epoch < steps_per_epoch and epochs * per_epoch < best[0] - steps_per_epoch:
            break  # past the optimum: each further epoch only adds validation
        epochs += 1
    # Shortened epochs only where whole ones would leave much of the budget unused.
    steps, epochs, per_epoch = whole if whole[1] >= WHOLE_EPOCHS_ENOUGH else best
    return BudgetPlan(budget_seconds, step_seconds, val_seconds, steps_per_epoch, epochs, steps,
                      per_epoch if per_epoch < steps_per_epoch else None, min(every, epochs))


class Deadline(Callback):
    """Stop training once the wall clock passes ``deadline`` (a ``time.perf_counter()`` value).

    Unlike Lightning's ``max_time``, which counts training batches only, this counts everything
    since the run started, validation included, so a budget is a budget.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline

    def _check(self, trainer) -> None:
        late = time.perf_counter() >= self.deadline
        if trainer.strategy.reduce_boolean_decision(late, all=False):
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._check(trainer)


class CatchUp(Callback):
    """Keep a budgeted OneCycle run on time when the machine slows down after the probe.

    The plan counts steps from a probe of a few seconds. When later steps are slower (another
    program starts, a laptop throttles), :class:`Deadline` would cut the run before it anneals.
    After every step this projects what the remaining steps and validations need at the recent
    pace; when that passes ``deadline``, the schedule moves ahead to the step from which the steps
    that still fit end annealed, and training stops (after a last validation) where it ends.
    """

    def __init__(self, deadline: float, val_seconds: float, validate_every: int, pace_weight: float = 0.2):
        self.deadline = deadline
        self.val_seconds = val_seconds
        self.validate_every = validate_every
        self.pace_weight = pace_weight
        self.pace: float | None = None
        self._last: float | None = None
        self._val_start = 0.0

    @staticmethod
    def skipped(trainer) -> int:
        """Steps of the schedule that training jumped over (0 when it kept pace)."""
        scheduler = trainer.lr_scheduler_configs[0].scheduler if trainer.lr_scheduler_configs else None
        return max(0, int(scheduler.last_epoch) - int(trainer.global_step)) if scheduler is not None else 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last = None

    def on_validation_start(self, trainer, pl_module) -> None:
        self._last = None
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.val_seconds = time.perf_counter() - self._val_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:  # a step and its batch, validations excluded
            step = now - self._last
            self.pace = step if self.pace is None else (1 - self.pace_weight) * self.pace + self.pace_weight * step
        self._last = now
        if not trainer.lr_scheduler_configs or self.pace is None:
            return
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        remaining = scheduler.total_steps - scheduler.last_epoch
        if remaining <= 0:
            trainer.check_val_every_n_epoch = 1  # the annealed model gets its validation
            trainer.should_stop = True
            return
        steps_per_validation = max(1, trainer.num_training_batches * self.validate_every)
        validations = 1 + remaining // steps_per_validation
        fit = int((self.deadline - now - validations * self.val_seconds) / self.pace)
        if fit < remaining:
            scheduler.last_epoch = scheduler.total_steps - max(fit, 0) - 1
            scheduler.step()  # sets the rate of the new position
