"""LegNet, the DREAM 2022 winning CNN, as a backbone that hybrids modify.

Reference: Penzar et al. 2023 (autosome-ru/LegNet) with the plain squeeze-excitation
layer (the low-rank bilinear term of the original is left out). At width 1 and with
18 output bins the network has 1,725,122 parameters.

The network is stem -> blocks -> neck -> head. Hybrids override one hook:
``spatial_conv`` (the grouped k=7 convolution inside each block), ``make_stem``,
``make_neck`` or ``head_channels``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class LegNetConfig:
    """Hyperparameters of the LegNet backbone.

    Parameters
    ----------
    name : str
        Registered model name.
    width : float
        Multiplier on every channel count (0.5 is about a quarter of the compute).
    in_channels : int
        Input channels: 4 one-hot + ``is_reverse`` + ``is_singleton``.
    seq_len : int
        Input length (set from the data layout).
    block_channels : list of int
        Stem output followed by the output of each block (DREAM 2022 setting).
    kernel_size : int
        Kernel of the stem, the grouped convolutions and the block mixing convolutions.
    expansion : int
        Inner width of a block's branch, as a multiple of the block's output channels.
    se_reduction : int
        The squeeze-excitation bottleneck is ``block input channels // se_reduction``.
    channels_per_group : int
        Channels per group in the grouped convolution.
    n_bins : int
        Output bins for the KL loss.
    """

    name: str = "legnet"
    width: float = 1.0
    in_channels: int = 6
    seq_len: int = 150
    block_channels: list[int] = field(default_factory=lambda: [256, 128, 128, 64, 64, 64, 64])
    kernel_size: int = 7
    expansion: int = 4
    se_reduction: int = 4
    channels_per_group: int = 2
    n_bins: int = 18

    def channels(self) -> list[int]:
        """Channel counts after applying ``width`` (kept even for grouped convolutions)."""
        return [max(2, 2 * round(c * self.width / 2)) for c in self.block_channels]


def conv_bn_silu(c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel_size, padding="same", groups=groups, bias=False),
        nn.BatchNorm1d(c_out),
        nn.SiLU(),
    )


class SqueezeExcitation(nn.Module):
    """Scale channels by a gate computed from their mean over length."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=2)).unsqueeze(2)


class LegNetBlock(nn.Module):
    """EfficientNet-like block: expand, grouped conv, SE, project; concat input; mix to c_out."""

    def __init__(self, c_in: int, c_out: int, cfg: LegNetConfig, spatial_conv: nn.Module):
        super().__init__()
        inner = cfg.expansion * c_out
        self.branch = nn.Sequential(
            conv_bn_silu(c_in, inner, 1),
            spatial_conv,
            nn.BatchNorm1d(inner),
            nn.SiLU(),
            SqueezeExcitation(inner, max(1, c_in // cfg.se_reduction)),
            conv_bn_silu(inner, c_in, 1),
        )
        self.mix = conv_bn_silu(2 * c_in, c_out, cfg.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([x, self.branch(x)], dim=1))


class LegNetHead(nn.Module):
    """1x1 conv to the bins -> SiLU -> mean over length; one extra linear for a scalar output."""

    def __init__(self, channels: int, n_bins: int, n_outputs: int):
        super().__init__()
        self.bins = nn.Conv1d(channels, n_bins, 1)
        self.act = nn.SiLU()
        self.value = nn.Linear(n_bins, 1) if n_outputs == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bins(x)).mean(dim=2)
        return out if self.value is None else self.value(out).squeeze(1)


class LegNet(nn.Module):
    """LegNet backbone. ``forward`` maps (batch, 6, L) to (batch, n_outputs) or (batch,).

    Parameters
    ----------
    cfg : LegNetConfig
        Architecture hyperparameters.
    n_outputs : int
        ``cfg.n_bins`` for bin logits (KL loss) or 1 for a scalar (MSE loss).
    """

    def __init__(self, cfg: LegNetConfig, n_outputs: int):
        super().__init__()
        self.cfg = cfg
        self.n_outputs = n_outputs
        ch = cfg.channels()
        self.stem = self.make_stem(ch[0])
        self.blocks = nn.Sequential(
            *(
                LegNetBlock(c_in, c_out, cfg, self.spatial_conv(i, cfg.expansion * c_out))
                for i, (c_in, c_out) in enumerate(zip(ch[:-1], ch[1:]))
            )
        )
        self.head = LegNetHead(self.head_channels(ch[-1]), cfg.n_bins, n_outputs)
        for module in (self.stem, self.blocks, self.head):
            module.apply(init_legnet_weights)
        self.neck = self.make_neck(ch[-1])

    # --- hooks for hybrids -------------------------------------------------------------
    def make_stem(self, c_out: int) -> nn.Module:
        return conv_bn_silu(self.cfg.in_channels, c_out, self.cfg.kernel_size)

    def spatial_conv(self, block_index: int, channels: int) -> nn.Module:
        """The grouped convolution inside block ``block_index`` (no BN, no activation)."""
        groups = channels // self.cfg.channels_per_group
        return nn.Conv1d(channels, channels, self.cfg.kernel_size, padding="same", groups=groups, bias=False)

    def make_neck(self, channels: int) -> nn.Module:
        return nn.Identity()

    def head_channels(self, channels: int) -> int:
        return channels

    # -----------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def init_legnet_weights(module: nn.Module) -> None:
    """LegNet initialisation: conv N(0, sqrt(2/(k*out))), linear N(0, 0.001), BN (1, 0)."""
    if isinstance(module, nn.Conv1d):
        n = module.kernel_size[0] * module.out_channels
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / n))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.001)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
