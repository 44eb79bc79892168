"""``legnet-transformer``: LegNet blocks followed by a small transformer encoder.

After the blocks, each position is projected to ``d_model`` channels, a positional
encoding is added (fixed sinusoidal by default, or learned), and ``num_layers`` post-norm
encoder layers (GELU) mix all positions before the usual LegNet head (1x1 conv to the bins
-> SiLU -> mean over positions).

The encoder's size follows the model's ``width`` like LegNet's channels do, so that a
narrow hybrid gets no more capacity than narrow LegNet by accident: at width 1 it has
``FULL_WIDTH_D_MODEL`` (64) channels in ``FULL_WIDTH_NHEAD`` (4) heads and a feed-forward
width of ``FEEDFORWARD_RATIO`` (4) x ``d_model``; at width w, ``nhead = max(1, round(4 w))``
and ``d_model`` is ``64 w`` rounded to a multiple of ``2 nhead`` (16 at width 0.25). A value
given explicitly is used as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from promoterlab.models.legnet import LegNet, LegNetConfig
from promoterlab.models.registry import register

POSITIONAL = ("sinusoidal", "learned")
FULL_WIDTH_D_MODEL = 64
FULL_WIDTH_NHEAD = 4
FEEDFORWARD_RATIO = 4


@dataclass
class TransformerConfig(LegNetConfig):
    """LegNet hyperparameters plus the transformer neck.

    Parameters
    ----------
    d_model : int or None
        Width of the encoder (the blocks' output is projected to it); ``None``: scaled with
        ``width`` (see the module docstring; :meth:`model_dim` gives the value used).
    num_layers : int
        Encoder layers.
    nhead : int or None
        Attention heads (must divide ``d_model``); ``None``: ``max(1, round(4 * width))``.
    dim_feedforward : int or None
        Inner width of each layer's feed-forward network; ``None``: 4 x ``d_model``.
    dropout : float
        Dropout inside the encoder layers.
    positional : str
        ``"sinusoidal"`` (fixed, Vaswani et al. 2017) or ``"learned"`` (one vector per position).
    """

    name: str = "legnet-transformer"
    d_model: int | None = None
    num_layers: int = 2
    nhead: int | None = None
    dim_feedforward: int | None = None
    dropout: float = 0.3
    positional: str = "sinusoidal"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {', '.join(POSITIONAL)}, not {self.positional!r}")
        for name in ("d_model", "num_layers", "nhead", "dim_feedforward"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1{'' if name == 'num_layers' else ' or null'}, "
                                 f"got {value!r}")
        d_model, nhead = self.model_dim(), self.heads()
        if d_model % nhead or d_model % 2:
            raise ValueError(f"d_model ({d_model}) must be even and divisible by nhead ({nhead})")

    def heads(self) -> int:
        """Attention heads: ``nhead``, or ``max(1, round(4 * width))`` when it is ``None``."""
        return self.nhead if self.nhead is not None else max(1, round(FULL_WIDTH_NHEAD * self.width))

    def model_dim(self) -> int:
        """Encoder width: ``d_model``, or ``64 * width`` rounded to a multiple of ``2 * heads()``."""
        if self.d_model is not None:
            return self.d_model
        step = 2 * self.heads()
        return max(step, step * round(FULL_WIDTH_D_MODEL * self.width / step))

    def feedforward_dim(self) -> int:
        """Feed-forward width: ``dim_feedforward``, or ``4 * model_dim()``."""
        return self.dim_feedforward if self.dim_feedforward is not None else FEEDFORWARD_RATIO * self.model_dim()


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
        d_model = cfg.model_dim()
        self.proj = nn.Linear(channels, d_model)
        if cfg.positional == "learned":
            self.position = nn.Parameter(torch.randn(cfg.seq_len, d_model) * 0.02)
        else:
            self.register_buffer("position", sinusoidal_encoding(cfg.seq_len, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, cfg.heads(), cfg.feedforward_dim(), cfg.dropout,
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
        return self.cfg.model_dim()


register("legnet-transformer", LegNetTransformer, TransformerConfig)
