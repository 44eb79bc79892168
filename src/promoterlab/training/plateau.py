"""Warm up, hold, anneal on plateau: the learning-rate schedule of runs trained to convergence.

OneCycle fixes a run's length in advance. With early stopping, a run that stops at epoch 17 of
a 40-epoch cycle stops with the learning rate near its peak and the model never annealed (the
pilot run of the converged seed study did exactly that). ``schedule: plateau`` is a
warmup-stable-decay schedule (Hu et al. 2024, MiniCPM; Hägele et al. 2024) whose decay is set
off by the validation set:

1. warm-up: cosine from ``max_lr / div_factor`` to ``max_lr`` over :data:`WARMUP_EPOCHS` epochs;
2. hold ``max_lr`` until validation Pearson has not improved for ``patience`` epochs;
3. cool down: cosine to ``max_lr / (div_factor * final_div_factor)`` (OneCycle's end) over
   ``cooldown_epochs`` epochs, then stop.

A run that has not plateaued when only ``cooldown_epochs`` remain before the epoch cap cools
down then, so it also ends annealed; :attr:`PlateauSchedule.reason` says which happened. The
model kept is still the best validation epoch, which is almost always one of the cool-down's.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

WARMUP_EPOCHS = 2
MIN_DELTA = 1e-4  # a smaller gain in validation Pearson is not an improvement


class PlateauSchedule(Callback):
    """Sets the learning rate before every training step and stops the run after its cool-down.

    Parameters
    ----------
    max_lr, div_factor, final_div_factor : float
        As for OneCycle: the held rate, the start (``max_lr / div_factor``) and the end
        (``max_lr / (div_factor * final_div_factor)``).
    patience : int
        Epochs without improvement of validation Pearson that start the cool-down.
    cooldown_epochs : int
        Length of the cool-down.
    max_epochs : int
        The epoch cap, cool-down included.
    warmup_epochs : int
        Length of the warm-up.
    """

    def __init__(self, max_lr: float, div_factor: float, final_div_factor: float, patience: int,
                 cooldown_epochs: int, max_epochs: int, warmup_epochs: int = WARMUP_EPOCHS):
        self.max_lr, self.patience, self.max_epochs = max_lr, patience, max_epochs
        self.start_lr = max_lr / div_factor
        self.end_lr = self.start_lr / final_div_factor
        self.cooldown_epochs, self.warmup_epochs = cooldown_epochs, warmup_epochs
        self.best, self.wait = -math.inf, 0
        self.cooldown_start: int | None = None  # first epoch (0-based) of the cool-down
        self.cooldown_length = cooldown_epochs
        self.reason = ""  # "plateau" or "cap" once the cool-down has started

    def lr_at(self, epoch: float) -> float:
        """The learning rate at ``epoch`` (0-based, fractional within the epoch)."""
        if self.cooldown_start is not None and epoch >= self.cooldown_start:
            done = min(1.0, (epoch - self.cooldown_start) / max(self.cooldown_length, 1))
            return self.end_lr + (self.max_lr - self.end_lr) * (1 + math.cos(math.pi * done)) / 2
        if epoch < self.warmup_epochs:
            rise = (1 - math.cos(math.pi * epoch / self.warmup_epochs)) / 2
            return self.start_lr + (self.max_lr - self.start_lr) * rise
        return self.max_lr

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        steps = max(int(trainer.num_training_batches), 1)
        lr = self.lr_at(trainer.current_epoch + batch_idx / steps)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_pearson" not in trainer.callback_metrics:
            return
        finished = trainer.current_epoch + 1  # epochs done, this one included
        if self.cooldown_start is None:
            score = float(trainer.callback_metrics["val_pearson"])
            if score > self.best + MIN_DELTA:
                self.best, self.wait = score, 0
            else:
                self.wait += 1
            if self.wait >= self.patience or finished + self.cooldown_epochs >= self.max_epochs:
                self.reason = "plateau" if self.wait >= self.patience else "cap"
                self.cooldown_start = finished
                self.cooldown_length = max(0, min(self.cooldown_epochs, self.max_epochs - finished))
        if self.cooldown_start is not None and finished >= self.cooldown_start + self.cooldown_length:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_start": self.cooldown_start,
                "cooldown_length": self.cooldown_length, "reason": self.reason}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.wait = state_dict["best"], state_dict["wait"]
        self.cooldown_start, self.cooldown_length = state_dict["cooldown_start"], state_dict["cooldown_length"]
        self.reason = state_dict["reason"]
