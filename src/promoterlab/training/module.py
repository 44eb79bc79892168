"""Lightning wrapper: one model, one objective, AdamW + OneCycle, per-epoch metrics.

With ``schedule: plateau`` there is no scheduler here: the
:class:`~promoterlab.training.plateau.PlateauSchedule` callback sets the rate.

With ``finetune_epochs``, OneCycle spans the epochs before them and the last
``finetune_epochs`` epochs run at a constant ``max_lr / FINETUNE_LR_DIVISOR`` (EvoAug's
fine-tuning on unaugmented data, Lee et al. 2023: a 10x lower learning rate).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.training.distributed import gather_rows
from promoterlab.objective import Objective

FINETUNE_LR_DIVISOR = 10.0


class PromoterRegressor(L.LightningModule):
    """Trains any ``nn.Module`` mapping (batch, 6, L) inputs to the objective's outputs.

    Per-step outputs stay on the device and are reduced once per epoch, so a step never waits
    for the host. In data-parallel training they are first gathered from every rank, so the
    epoch's metrics (Pearson over all predictions, not a mean of per-rank Pearsons) are those of
    the whole epoch and validation set, and the same on every rank.

    Parameters
    ----------
    model : nn.Module
        The network.
    objective : Objective
        Loss, labels and output-to-value mapping.
    train_cfg : TrainConfig
        Optimiser settings (resolved: no ``"auto"`` left that the optimiser reads).
    metrics_path : Path, optional
        ``metrics.csv`` to append one row per epoch to (rank 0 only).
    """

    def __init__(self, model: nn.Module, objective: Objective, train_cfg, metrics_path: Path | None = None):
        super().__init__()
        self.model = model
        self.objective = objective
        self.cfg = train_cfg
        self.metrics_path = metrics_path
        self.history: list[dict[str, float]] = []
        self._epoch_start = time.perf_counter()
        self._train_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._val_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._lrs: list[float] = []
        self._last_val: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self._lrs.append(self.optimizers().param_groups[0]["lr"])
        out = self.model(x)
        loss = self.objective.loss_value(out, y)
        self._train_out.append((self.objective.value(out.detach()), self.objective.target_values(y),
                                loss.detach() * len(y)))
        return loss

    def validation_step(self, batch, batch_idx):
        x_fwd, x_rc, y = batch
        if len(y) == 0:  # a rank's shard of a validation set smaller than the number of batches
            return
        out = self.objective.average(self.model(x_fwd), self.model(x_rc))
        loss = self.objective.loss_value(out, y)
        self._val_out.append((self.objective.value(out), y, loss * len(y)))

    @property
    def finetune_start(self) -> int:
        """The first fine-tuning epoch (0-based; ``max_epochs`` when there is none)."""
        return max(0, (self.trainer.max_epochs or 0) - getattr(self.cfg, "finetune_epochs", 0))

    @property
    def finetuning(self) -> bool:
        """Whether the current epoch is a fine-tuning epoch."""
        return getattr(self.cfg, "finetune_epochs", 0) > 0 and self.current_epoch >= self.finetune_start

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        self._lrs.clear()
        if self.finetuning:  # set every fine-tuning epoch, so that a resumed run gets it too
            for group in self.optimizers().param_groups:
                group["lr"] = self.cfg.max_lr / FINETUNE_LR_DIVISOR

    def lr_scheduler_step(self, scheduler, metric) -> None:
        if not self.finetuning:  # OneCycle ends with the last step before fine-tuning
            scheduler.step()

    def _summarise(self, outputs) -> tuple[float, np.ndarray, np.ndarray]:
        """Mean loss per row, predictions and targets of an epoch's outputs on every rank."""
        if outputs:
            pred = torch.cat([o[0] for o in outputs]).float()
            target = torch.cat([o[1] for o in outputs]).float()
            loss_sum = torch.stack([o[2] for o in outputs]).sum().float()
        else:
            pred = target = torch.zeros(0, device=self.device)
            loss_sum = torch.zeros((), device=self.device)
        pred, target = gather_rows(self, pred), gather_rows(self, target)
        loss_sum = gather_rows(self, loss_sum.reshape(1)).sum()
        return float(loss_sum) / max(len(pred), 1), pred.cpu().numpy(), target.cpu().numpy()

    def on_validation_epoch_end(self) -> None:
        loss, pred, target = self._summarise(self._val_out)
        self._val_out.clear()
        if len(pred) == 0:
            return
        self._last_val = {"val_loss": loss, "val_pearson": pearson(pred, target),
                          "val_spearman": spearman(pred, target)}
        # Already over every rank's rows and equal on all ranks: "max" passes them on exactly, where
        # a mean of equal floats can round.
        self.log_dict(self._last_val, sync_dist=True, reduce_fx="max", prog_bar=True)

    def on_train_epoch_end(self) -> None:
        loss, pred, target = self._summarise(self._train_out)
        self._train_out.clear()
        nan = float("nan")
        val = self._last_val or {"val_loss": nan, "val_pearson": nan, "val_spearman": nan}
        self._last_val = {}  # an epoch without validation gets NaN, not the previous epoch's values
        row = {"epoch": self.current_epoch + 1, "train_loss": loss, "train_pearson": pearson(pred, target),
               **val, "lr": float(np.mean(self._lrs)) if self._lrs else nan,
               "seconds": time.perf_counter() - self._epoch_start}
        self.history.append(row)
        if self.metrics_path is not None and self.trainer.is_global_zero:
            append_csv_row(self.metrics_path, row)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.max_lr / self.cfg.div_factor,
                                      weight_decay=self.cfg.weight_decay)
        if getattr(self.cfg, "schedule", "onecycle") == "plateau":  # PlateauSchedule sets the rate
            return optimizer
        steps = self.trainer.estimated_stepping_batches
        if self.finetune_start < (self.trainer.max_epochs or 0):
            steps = steps * self.finetune_start // self.trainer.max_epochs
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.cfg.max_lr, total_steps=max(1, steps),
            pct_start=self.cfg.pct_start, div_factor=self.cfg.div_factor,
            final_div_factor=self.cfg.final_div_factor, anneal_strategy="cos", three_phase=False)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def append_csv_row(path: Path, row: dict[str, float]) -> None:
    """Append ``row`` to a CSV file (``\\n`` line endings), writing the header first if the file is new."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)
