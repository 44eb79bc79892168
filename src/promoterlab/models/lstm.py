"""``legnet-lstm``: LegNet blocks followed by an LSTM over positions.

The blocks' output is read position by position by a one-layer LSTM (``hidden`` units per
direction); dropout is applied to its outputs, and the usual LegNet head pools them: a 1x1
convolution to the bins at every position -> SiLU -> mean over all positions (so every
position's output counts, not only the last hidden state).

The seed study's best setting is the default here (hidden 128, unidirectional, dropout 0.3)
trained with weight decay 1e-3, a training setting: ``TrainConfig.weight_decay`` /
``--weight-decay 1e-3``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from promoterlab.models import register
from promoterlab.models.legnet import LegNet, LegNetConfig


@dataclass
class LSTMConfig(LegNetConfig):
    """LegNet hyperparameters plus the LSTM neck.

    Parameters
    ----------
    hidden : int
        LSTM units per direction.
    bidirectional : bool
        Also read the sequence from its 3' end (doubles the head's input channels).
    dropout : float
        Dropout on the LSTM outputs.
    """

    name: str = "legnet-lstm"
    hidden: int = 128
    bidirectional: bool = False
    dropout: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"need hidden >= 1 and 0 <= dropout < 1, got {self.hidden} and {self.dropout}")

    def lstm_channels(self) -> int:
        """Channels of the LSTM output (both directions concatenated)."""
        return self.hidden * (2 if self.bidirectional else 1)


class LSTMNeck(nn.Module):
    """``(batch, C, L) -> (batch, lstm_channels, L)``: LSTM over positions, then dropout."""

    def __init__(self, channels: int, cfg: LSTMConfig):
        super().__init__()
        self.lstm = nn.LSTM(channels, cfg.hidden, batch_first=True, bidirectional=cfg.bidirectional)
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
