"""Weight averaging during training: an exponential moving average (EMA) or SWA of the last epochs.

Both are Lightning callbacks built on Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging`
(a :class:`torch.optim.swa_utils.AveragedModel` of the LightningModule, updated after optimiser
steps): validation runs on the averaged weights, checkpoints store them as their ``state_dict``
(the raw weights go along so that a resumed run continues exactly), and when training ends the
averaged weights are copied into the module, so what is validated, checkpointed and finally
saved is the averaged model.

Two things are added to Lightning's callback. The average exists only from its first update
on: before that (SWA's early epochs) validation and checkpoints use the current weights, not
the copy of the initial weights that ``AveragedModel`` starts from. And BatchNorm statistics
are handled: EMA averages the running statistics with the weights (``use_buffers=True``); SWA
averages them too, for validation during training, and at the end recomputes them for the
final averaged weights with :func:`torch.optim.swa_utils.update_bn` over the training data
(Izmailov et al. 2018), since the average of running statistics of different weights is not
the statistics of the averaged weights.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn, update_bn

from promoterlab.config import averaging_spec


class _FromFirstUpdate(WeightAveraging):
    """:class:`WeightAveraging` that acts only once the average holds at least one update."""

    def __init__(self, **kwargs) -> None:
        super().__init__(use_buffers=True, **kwargs)
        self._swapped = False

    @property
    def updates(self) -> int:
        """Weight vectors averaged so far (0 before the first update)."""
        return 0 if self._average_model is None else int(self._average_model.n_averaged)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swapped = self.updates > 0
        if self._swapped:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.updates > 0:
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.updates > 0:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # A checkpoint saved before the first update holds only the current weights: nothing to restore.
        if "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class EMA(_FromFirstUpdate):
    """Exponential moving average of the weights and BatchNorm statistics, from the start.

    The average starts at the initial weights ``w_0`` and after optimiser step ``t`` becomes
    ``decay * ema + (1 - decay) * w_t`` (``torch.optim.swa_utils.get_ema_multi_avg_fn``).

    Parameters
    ----------
    decay : float
        Weight of the old average per step, in [0, 1); 0.999 averages over about 1,000 steps.
    """

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay!r}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.decay = decay

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The initial weights are the average's first entry (a resumed run already has its own).
        if self.updates == 0:
            self._average_model.update_parameters(pl_module)


class SWA(_FromFirstUpdate):
    """Equal-weight average of the weights after every optimiser step of the last ``epochs`` epochs.

    Parameters
    ----------
    epochs : int
        Epochs at the end of training whose steps are averaged (all, if training is shorter;
        none, if training stops early before they begin, and then the model is left as it is).
    recompute_bn : bool
        Recompute BatchNorm statistics for the averaged weights with one pass over the
        training data when training ends (``update_bn``).
    """

    def __init__(self, epochs: int = 5, recompute_bn: bool = True) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"swa epochs must be a whole number >= 1, got {epochs!r}")
        super().__init__()
        self.epochs, self.recompute_bn = epochs, recompute_bn
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None or self._trainer is None:
            return False
        first = max(0, (self._trainer.max_epochs or 0) - self.epochs)
        return self._trainer.current_epoch >= first

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.updates > 0 and self.recompute_bn and trainer.train_dataloader is not None:
            update_bn(trainer.train_dataloader, pl_module, device=pl_module.device)


def parse_averaging(spec: str) -> EMA | SWA | None:
    """The callback of an averaging spec (:func:`promoterlab.config.averaging_spec`), or None."""
    parsed = averaging_spec(spec)
    if parsed is None:
        return None
    kind, value = parsed
    return EMA(value) if kind == "ema" else SWA(value)
