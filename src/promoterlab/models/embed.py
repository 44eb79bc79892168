"""``legnet-embed``: LegNet whose blocks run on a compressed sequence.

After the stem, a learned linear map along the length axis (``seq_len -> embed_len``, the
same map for every channel) followed by BatchNorm + SiLU shortens the sequence; the six
blocks then run on ``embed_len`` positions (70 instead of 150, about half the cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from promoterlab.models.layers import SeqBatchNorm1d
from promoterlab.models.legnet import LegNet, LegNetConfig, conv_bn_silu
from promoterlab.models.registry import register


@dataclass
class EmbedConfig(LegNetConfig):
    """LegNet hyperparameters plus the compressed length.

    Parameters
    ----------
    embed_len : int
        Positions the blocks see (the stem output of length ``seq_len`` is mapped to it).
    """

    name: str = "legnet-embed"
    embed_len: int = 70

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embed_len < 1:
            raise ValueError(f"embed_len must be positive, not {self.embed_len}")


class LengthEmbedding(nn.Module):
    """``(batch, C, seq_len) -> (batch, C, embed_len)``: a linear map along length shared by
    all channels, then BatchNorm + SiLU.

    Parameters
    ----------
    channels : int
        Channels C (normalised separately).
    seq_len : int
        Input length.
    embed_len : int
        Output length.
    """

    def __init__(self, channels: int, seq_len: int, embed_len: int):
        super().__init__()
        self.seq_len = seq_len
        self.proj = nn.Linear(seq_len, embed_len)
        self.norm = SeqBatchNorm1d(channels)
        self.act = nn.SiLU()
        self.init_as_pooling()

    def init_as_pooling(self) -> None:
        """Start as adaptive average pooling, so position ``j`` summarises its own window."""
        pool = F.adaptive_avg_pool1d(torch.eye(self.seq_len).unsqueeze(0), self.proj.out_features)[0]
        with torch.no_grad():
            self.proj.weight.copy_(pool.T)
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.seq_len:
            raise ValueError(f"legnet-embed was built for length {self.seq_len}, got {x.shape[-1]}")
        out = self.proj(x)
        if out.dim() == 4:  # planar input: back to the channels-last memory the blocks expect
            out = out.contiguous(memory_format=torch.channels_last)
        return self.act(self.norm(out))


class LegNetEmbed(LegNet):
    """LegNet with a :class:`LengthEmbedding` after the stem."""

    cfg: EmbedConfig

    def __init__(self, cfg: EmbedConfig, n_outputs: int):
        super().__init__(cfg, n_outputs)
        # LegNet's initialisation (linear ~ N(0, 0.001)) has just overwritten the pooling start.
        self.stem[-1].init_as_pooling()

    def make_stem(self, c_out: int) -> nn.Module:
        return nn.Sequential(*conv_bn_silu(self.cfg.in_channels, c_out, self.cfg.kernel_size),
                             LengthEmbedding(c_out, self.cfg.seq_len, self.cfg.embed_len))


register("legnet-embed", LegNetEmbed, EmbedConfig)
