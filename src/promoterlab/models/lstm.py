"""``legnet-lstm``: LegNet blocks followed by an LSTM over positions.

The blocks' output is read position by position by a one-layer LSTM (``hidden`` units per
direction); dropout is applied to its outputs, and the usual LegNet head pools them: a 1x1
convolution to the bins at every position -> SiLU -> mean over all positions (so every
position's output counts, not only the last hidden state).

The seed study's best setting is the default here (hidden 128 at width 1, unidirectional,
dropout 0.3) trained with weight decay 1e-3, a training setting: ``TrainConfig.weight_decay`` /
``--weight-decay 1e-3``.

The LSTM's size follows the model's ``width`` like LegNet's channels do, so that a narrow
hybrid gets no more capacity than narrow LegNet by accident: ``hidden`` left ``None`` is
``max(1, round(FULL_WIDTH_HIDDEN * width))`` units (128 at width 1, 32 at width 0.25); a value
given explicitly is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from promoterlab.models.legnet import LegNet, LegNetConfig
from promoterlab.models.registry import register

FULL_WIDTH_HIDDEN = 128


@dataclass
class LSTMConfig(LegNetConfig):
    """LegNet hyperparameters plus the LSTM neck.

    Parameters
    ----------
    hidden : int or None
        LSTM units per direction; ``None``: ``round(128 * width)`` (:meth:`units` gives the
        value used).
    bidirectional : bool
        Also read the sequence from its 3' end (doubles the head's input channels).
    dropout : float
        Dropout on the LSTM outputs.
    """

    name: str = "legnet-lstm"
    hidden: int | None = None
    bidirectional: bool = False
    dropout: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        hidden_ok = self.hidden is None or (isinstance(self.hidden, int) and not isinstance(self.hidden, bool)
                                            and self.hidden >= 1)
        if not hidden_ok or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"need hidden >= 1 (or null) and 0 <= dropout < 1, got {self.hidden} and {self.dropout}")

    def units(self) -> int:
        """LSTM units per direction: ``hidden``, or ``max(1, round(128 * width))`` when it is ``None``."""
        return self.hidden if self.hidden is not None else max(1, round(FULL_WIDTH_HIDDEN * self.width))

    def lstm_channels(self) -> int:
        """Channels of the LSTM output (both directions concatenated)."""
        return self.units() * (2 if self.bidirectional else 1)


class LSTMNeck(nn.Module):
    """``(batch, C, L) -> (batch, lstm_channels, L)``: LSTM over positions, then dropout."""

    def __init__(self, channels: int, cfg: LSTMConfig):
        super().__init__()
        self.lstm = nn.LSTM(channels, cfg.units(), batch_first=True, bidirectional=cfg.bidirectional)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.transpose(1, 2))
        return self.dropout(out).transpose(1, 2)


class LegNetLSTM(LegNet):
    """LegNet with an :class:`LSTMNeck` between the blocks and the head."""

    cfg: LSTMConfig

    def make_neck(self, channels: int) -> nn.Module:
        return LSTMNeck(channels, self.cfg)

    def head_channels(self, channels: int) -> int:
        return self.cfg.lstm_channels()


register("legnet-lstm", LegNetLSTM, LSTMConfig)
