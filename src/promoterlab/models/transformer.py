"""``legnet-transformer``: LegNet blocks followed by a small transformer encoder.

After the blocks, each position is projected to ``d_model`` channels, a positional
encoding is added (fixed sinusoidal by default, or learned), and ``num_layers`` post-norm
encoder layers (GELU) mix all positions before the usual LegNet head (1x1 conv to the bins
-> SiLU -> mean over positions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from promoterlab.models import register
from promoterlab.models.legnet import LegNet, LegNetConfig

POSITIONAL = ("sinusoidal", "learned")


@dataclass
class TransformerConfig(LegNetConfig):
    """LegNet hyperparameters plus the transformer neck.

    Parameters
    ----------
    d_model : int
        Width of the encoder (the blocks' output is projected to it).
    num_layers : int
        Encoder layers.
    nhead : int
        Attention heads (must divide ``d_model``).
    dim_feedforward : int
        Inner width of each layer's feed-forward network.
    dropout : float
        Dropout inside the encoder layers.
    positional : str
        ``"sinusoidal"`` (fixed, Vaswani et al. 2017) or ``"learned"`` (one vector per position).
    """

    name: str = "legnet-transformer"
    d_model: int = 64
    num_layers: int = 2
    nhead: int = 4
    dim_feedforward: int = 256
    dropout: float = 0.3
    positional: str = "sinusoidal"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {', '.join(POSITIONAL)}, not {self.positional!r}")
        if self.d_model % self.nhead or self.d_model % 2:
            raise ValueError(f"d_model ({self.d_model}) must be even and divisible by nhead ({self.nhead})")


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` table: sin at even and cos at odd channels, wavelengths 2*pi .. 10000*2*pi."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class TransformerNeck(nn.Module):
    """``(batch, C, L) -> (batch, d_model, L)``: projection, positional encoding, encoder layers."""

    def __init__(self, channels: int, cfg: TransformerConfig):
        super().__init__()
        self.proj = nn.Linear(channels, cfg.d_model)
        if cfg.positional == "learned":
            self.position = nn.Parameter(torch.randn(cfg.seq_len, cfg.d_model) * 0.02)
        else:
            self.register_buffer("position", sinusoidal_encoding(cfg.seq_len, cfg.d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.nhead, cfg.dim_feedforward, cfg.dropout,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[2]
        if length > self.position.shape[0]:
            raise ValueError(f"legnet-transformer was built for length {self.position.shape[0]}, got {length}")
        h = self.proj(x.transpose(1, 2)) + self.position[:length]
        return self.encoder(h).transpose(1, 2)


class LegNetTransformer(LegNet):
    """LegNet with a :class:`TransformerNeck` between the blocks and the head."""

    cfg: TransformerConfig

    def make_neck(self, channels: int) -> nn.Module:
        return TransformerNeck(channels, self.cfg)

    def head_channels(self, channels: int) -> int:
        return self.cfg.d_model


register("legnet-transformer", LegNetTransformer, TransformerConfig)
