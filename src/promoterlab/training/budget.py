"""Fit a run into a wall-clock budget (``--max-time``) with a schedule that ends annealed.

Training first times a few steps of a throw-away copy of the model on real batches (and a few
validation batches), then chooses how many steps fit, as epochs of equal length (whole epochs,
or epochs limited to a share of the batches so that the budget is filled). The OneCycle
schedule spans exactly those steps, so the run ends on the annealed model instead of being
cut off in the warm-up. Validation is thinned out when it would cost more than a fifth of
training, and always runs after the last epoch. While training, :class:`CatchUp` re-plans from
the measured pace: when the real steps are slower than the probe's, the rest of the schedule is
compressed (without a jump in the rate) so that it still ends annealed before the deadline.

A budget too short for the model (fewer than :data:`MIN_BUDGET_STEPS` steps) trains a narrower
one when the run allows it (``fit_width``): the width is halved, down to
:data:`NARROWEST_WIDTH`, until the budget fits that many steps (:func:`budget_widths`).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from promoterlab.config import NARROWEST_WIDTH, budget_widths  # noqa: F401 (part of the budget's interface)
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
# Re-planning (CatchUp): steps between re-plans at least, and the margin on the measured pace,
# so that the noise of single steps does not make the catch-up jump ahead on a quiet machine.
REPLAN_MIN_STEPS = 5
REPLAN_MARGIN = 0.03
RECENT_STEPS = 5
MAX_REPLAN_LOG = 20


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


def _now() -> float:
    """``time.perf_counter()``, looked up when called (so that a test's fake clock applies)."""
    return time.perf_counter()


class Deadline(Callback):
    """Stop training once the wall clock passes ``deadline`` (a ``clock()`` value,
    ``time.perf_counter`` by default).

    Unlike Lightning's ``max_time``, which counts training batches only, this counts everything
    since the run started, validation included, so a budget is a budget.
    """

    def __init__(self, deadline: float, clock: Callable[[], float] | None = None):
        self.deadline = deadline
        self.clock = clock or _now

    def _check(self, trainer) -> None:
        late = self.clock() >= self.deadline
        if trainer.strategy.reduce_boolean_decision(late, all=False):
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._check(trainer)


def restretch_onecycle(scheduler, remaining: int) -> None:
    """Stretch or compress the rest of a two-phase ``OneCycleLR`` schedule to ``remaining`` steps.

    The schedule's position, its phase boundaries and its end are mapped by one scale, so the
    learning rate (and momentum) goes on from where it is, without a jump, and reaches the
    annealed end after exactly ``remaining`` more steps. The current step's rate is set.
    """
    total, position = scheduler.total_steps, scheduler.last_epoch
    remaining = max(1, int(remaining))
    if total - position <= 1 or total - position == remaining:
        return
    scale = (remaining - 1) / (total - position - 1)
    new_position = max(0, round((position + 1) * scale - 1))
    new_total = new_position + remaining
    ratio = new_total / total
    for phase in scheduler._schedule_phases:
        phase["end_step"] = (phase["end_step"] + 1) * ratio - 1
    scheduler.total_steps = new_total
    scheduler.last_epoch = new_position - 1
    scheduler.step()  # sets the rate of the new position


class CatchUp(Callback):
    """Keep a budgeted OneCycle run on its plan: re-plan from the measured pace.

    The plan counts steps from a probe of a few seconds, on a throw-away model, before the run's
    own data loading and checkpoints; real steps are often slower, and a machine can slow down
    later (another program starts, a laptop throttles). After every step this projects what the
    remaining steps and validations need at the measured pace: the larger of the mean over the
    current window of steps (validation excluded, epoch changes and checkpoints included) and
    the median of the last :data:`RECENT_STEPS` steps (which follows a lasting slowdown within a
    few steps, but not a single slow step). When the projection passes ``deadline``, the rest of
    the OneCycle schedule is compressed onto the steps that fit at that pace plus
    :data:`REPLAN_MARGIN` (:func:`restretch_onecycle`: the rate stays continuous and ends
    annealed). At the end of each window (``replan_every`` steps: a tenth of the plan, at most an
    epoch), a pace that leaves room stretches the schedule back, up to its planned length. Only
    when not one more step fits does the schedule jump to its end (``skipped_steps``).

    Training stops (after a last validation) where the schedule ends. ``clock`` is
    ``time.perf_counter`` (tests pass a fake one).
    """

    def __init__(self, deadline: float, val_seconds: float, validate_every: int,
                 replan_every: int | None = None, clock: Callable[[], float] | None = None):
        self.deadline = deadline
        self.val_seconds = val_seconds
        self.validate_every = validate_every
        self.replan_every = replan_every
        self.clock = clock or _now
        self.skipped_steps = 0
        self.replans: list[dict] = []
        self.replan_count = 0
        self._planned: int | None = None  # the schedule's length in steps as Lightning planned it
        self._recent: list[float] = []
        self._last: float | None = None
        self._val_start = 0.0
        self._val_total = 0.0
        self._window: tuple[float, int, float] | None = None  # (time, step, validation seconds) at its start
        self._window_pace: float | None = None  # of the last complete window

    @staticmethod
    def _of(trainer) -> CatchUp | None:
        return next((c for c in trainer.callbacks if isinstance(c, CatchUp)), None)

    @staticmethod
    def skipped(trainer) -> int:
        """Steps of the schedule that training jumped over (0 when it kept pace or has no CatchUp)."""
        callback = CatchUp._of(trainer)
        return callback.skipped_steps if callback is not None else 0

    @staticmethod
    def report(trainer) -> dict:
        """``skipped_steps``, ``replans`` (how many times the schedule was re-planned) and, after
        a re-plan, ``schedule_steps`` (the steps the final schedule spans: trained + skipped when
        the run ended with its schedule) and ``replan_log`` (the first re-plans: step, measured
        seconds per step, schedule length before and after)."""
        callback = CatchUp._of(trainer)
        if callback is None:
            return {"skipped_steps": 0, "replans": 0}
        out = {"skipped_steps": callback.skipped_steps, "replans": callback.replan_count}
        if callback.replans:
            out["schedule_steps"] = callback.replans[-1]["to_steps"]
            out["replan_log"] = list(callback.replans)
        return out

    def state_dict(self) -> dict:
        return {"skipped_steps": self.skipped_steps, "replans": list(self.replans), "replan_count": self.replan_count}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        self.replans = list(state_dict.get("replans", []))
        self.replan_count = int(state_dict.get("replan_count", len(self.replans)))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last = None

    def on_validation_start(self, trainer, pl_module) -> None:
        self._last = None
        self._val_start = self.clock()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.val_seconds = self.clock() - self._val_start
        self._val_total += self.val_seconds

    def _validations_left(self, trainer, remaining: int, batch_idx: int) -> int:
        """Validations until the schedule ends ``remaining`` steps from now: at the end of each
        epoch that validates, and the last one."""
        per_epoch = max(1, trainer.num_training_batches)
        every = max(1, int(trainer.check_val_every_n_epoch or self.validate_every))
        epoch, to_epoch_end, count = trainer.current_epoch, per_epoch - (batch_idx + 1), 1
        while to_epoch_end < remaining:
            count += (epoch + 1) % every == 0
            epoch, to_epoch_end = epoch + 1, to_epoch_end + per_epoch
        return count

    def _pace(self, trainer, now: float) -> tuple[float | None, float | None]:
        """``(pace to project with, mean pace of the current window when it has enough steps)``."""
        start, step0, val0 = self._window
        steps = trainer.global_step - step0
        window = max(now - start - (self._val_total - val0), 0.0) / steps if steps >= REPLAN_MIN_STEPS else None
        recent = statistics.median(self._recent) if len(self._recent) >= 3 else None
        known = [p for p in (window if window is not None else self._window_pace, recent) if p is not None]
        return (max(known) if known else None), window

    def _restretch(self, trainer, scheduler, remaining: int, steps: int, pace: float) -> None:
        restretch_onecycle(scheduler, steps)
        self.replan_count += 1
        if len(self.replans) < MAX_REPLAN_LOG:
            self.replans.append({"at_step": int(trainer.global_step), "step_seconds": round(pace, 4),
                                 "from_steps": int(trainer.global_step + remaining),
                                 "to_steps": int(trainer.global_step + steps)})
        else:
            self.replans[-1] = {**self.replans[-1], "to_steps": int(trainer.global_step + steps)}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self.clock()
        if self._last is not None:  # a step and its batch, validations excluded
            self._recent = [*self._recent[-(RECENT_STEPS - 1):], now - self._last]
        self._last = now
        if not trainer.lr_scheduler_configs:
            return
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        remaining = scheduler.total_steps - scheduler.last_epoch
        if self._window is None:  # from the end of the first step, which pays for set-up
            self._window = (now, trainer.global_step, self._val_total)
            self._planned = trainer.global_step + remaining
        if remaining <= 0:
            trainer.check_val_every_n_epoch = 1  # the annealed model gets its validation
            trainer.should_stop = True
            return
        pace, window_pace = self._pace(trainer, now)
        if pace is None:
            return
        left = self.deadline - now - self._validations_left(trainer, remaining, batch_idx) * self.val_seconds
        every = self.replan_every or max(REPLAN_MIN_STEPS, min(trainer.num_training_batches, self._planned // 10))
        if remaining * pace > left:  # behind: compress the rest of the schedule onto what fits
            fit = int(left / (pace * (1 + REPLAN_MARGIN)))
            if fit >= 1:
                self._restretch(trainer, scheduler, remaining, fit, pace)
            else:  # not one more step: jump to the annealed end, and stop
                self.skipped_steps += remaining
                scheduler.last_epoch = scheduler.total_steps - 1
                scheduler.step()
                trainer.check_val_every_n_epoch = 1
                trainer.should_stop = True
        elif window_pace is not None and trainer.global_step - self._window[1] >= every:
            # A window's pace that leaves room stretches a compressed schedule back (never past the plan).
            fit = min(int(left / (window_pace * (1 + REPLAN_MARGIN))), self._planned - trainer.global_step)
            if fit > (1 + REPLAN_MARGIN) * remaining + 1:  # well ahead: no back and forth
                self._restretch(trainer, scheduler, remaining, fit, window_pace)
        if window_pace is not None and trainer.global_step - self._window[1] >= every:
            self._window_pace = window_pace
            self._window = (now, trainer.global_step, self._val_total)
