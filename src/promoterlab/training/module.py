"""Lightning wrapper: one model, one objective, AdamW + OneCycle, per-epoch metrics."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.training.objective import averaged_output, loss_fn, to_value


class PromoterRegressor(L.LightningModule):
    """Trains any ``nn.Module`` mapping (batch, 6, L) inputs to bin logits or values.

    Parameters
    ----------
    model : nn.Module
        The network.
    train_cfg : TrainConfig
        Loss and optimiser settings.
    """

    def __init__(self, model: nn.Module, train_cfg, metrics_path: Path | None = None):
        super().__init__()
        self.model = model
        self.cfg = train_cfg
        self.metrics_path = metrics_path
        self._epoch_start = time.perf_counter()
        self.history: list[dict[str, float]] = []
        self._train_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._val_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.model(x)
        loss = loss_fn(self.cfg.loss, out, y)
        self._train_out.append((to_value(out).detach().float().cpu(), y.cpu(), loss.detach().float().cpu() * len(y)))
        return loss

    def validation_step(self, batch, batch_idx):
        x_fwd, x_rc, y = batch
        out = averaged_output(self.model(x_fwd), self.model(x_rc))
        loss = loss_fn(self.cfg.loss, out, y)
        self._val_out.append((to_value(out).float().cpu(), y.cpu(), loss.float().cpu() * len(y)))

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    @staticmethod
    def _summarise(outputs) -> tuple[float, np.ndarray, np.ndarray]:
        pred = torch.cat([o[0] for o in outputs]).numpy()
        target = torch.cat([o[1] for o in outputs]).numpy()
        loss = float(sum(o[2] for o in outputs) / max(len(pred), 1))
        return loss, pred, target

    def on_validation_epoch_end(self) -> None:
        if not self._val_out:
            return
        loss, pred, target = self._summarise(self._val_out)
        self._val_out.clear()
        self._last_val = {"val_loss": loss, "val_pearson": pearson(pred, target),
                          "val_spearman": spearman(pred, target)}
        self.log_dict(self._last_val, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        loss, pred, target = self._summarise(self._train_out)
        self._train_out.clear()
        row = {"epoch": self.current_epoch + 1, "train_loss": loss, "train_pearson": pearson(pred, target),
               **getattr(self, "_last_val", {}), "lr": self.optimizers().param_groups[0]["lr"],
               "seconds": time.perf_counter() - self._epoch_start}
        self.history.append(row)
        if self.metrics_path is not None and self.trainer.is_global_zero:
            append_csv_row(self.metrics_path, row)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.max_lr / self.cfg.div_factor,
                                      weight_decay=self.cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.cfg.max_lr, total_steps=max(1, self.trainer.estimated_stepping_batches),
            pct_start=self.cfg.pct_start, div_factor=self.cfg.div_factor,
            final_div_factor=self.cfg.final_div_factor, anneal_strategy="cos", three_phase=False)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def append_csv_row(path: Path, row: dict[str, float]) -> None:
    """Append ``row`` to a CSV file, writing the header first if the file is new."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
