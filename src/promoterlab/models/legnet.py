"""LegNet, the DREAM 2022 winning CNN, as a backbone that hybrids modify.

Reference: Penzar et al. 2023 (autosome-ru/LegNet) with the plain squeeze-excitation
layer (the low-rank bilinear term of the original is left out). At width 1 and with
18 output bins the network has 1,725,122 parameters.

The network is stem -> blocks -> neck -> head. Hybrids override one hook:
``spatial_conv`` (the grouped k=7 convolution inside each block), ``squeeze_excitation``,
``make_stem``, ``make_neck`` or ``head_channels``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from promoterlab.models.grouped_conv import BlockGroupedConv1d
from promoterlab.objective import DEFAULT_BINS
from promoterlab.models.layers import SeqBatchNorm1d, SeqConv1d, length_mean, per_channel, to_planar
from promoterlab.sequence import Layout

# Run stem and blocks on planar channels-last tensors on a CPU (see ``models/layers.py``);
# read when a model is built, and kept per model in ``LegNet.planar_on_cpu``.
PLANAR_ON_CPU = True


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
        Bins of the head (the KL objective's labels; ``Objective.of(config)`` reads them here).
    """

    name: str = "legnet"
    width: float = 1.0
    in_channels: int = 6
    seq_len: int = Layout().seq_len
    block_channels: list[int] = field(default_factory=lambda: [256, 128, 128, 64, 64, 64, 64])
    kernel_size: int = 7
    expansion: int = 4
    se_reduction: int = 4
    channels_per_group: int = 2
    n_bins: int = DEFAULT_BINS

    def __post_init__(self) -> None:
        width_ok = isinstance(self.width, (int, float)) and not isinstance(self.width, bool) and \
            math.isfinite(self.width) and self.width > 0
        if not width_ok:
            raise ValueError(f"width must be a number > 0, got {self.width!r}")
        for name in ("in_channels", "seq_len", "kernel_size", "expansion", "se_reduction", "channels_per_group",
                     "n_bins"):
            value, low = getattr(self, name), 2 if name == "n_bins" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if len(self.block_channels) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                               for c in self.block_channels):
            raise ValueError(f"block_channels must be two or more positive integers, got {self.block_channels!r}")

    def channels(self) -> list[int]:
        """Channel counts after applying ``width`` (kept even for grouped convolutions)."""
        return [max(2, 2 * round(c * self.width / 2)) for c in self.block_channels]


def conv_bn_silu(c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        SeqConv1d(c_in, c_out, kernel_size, padding="same", groups=groups, bias=False),
        SeqBatchNorm1d(c_out),
        nn.SiLU(),
    )


class SqueezeExcitation(nn.Module):
    """Scale channels by a gate computed from their mean over length (3D or planar input)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * per_channel(self.gate(length_mean(x)), x)


class LegNetBlock(nn.Module):
    """EfficientNet-like block: expand, grouped conv, SE, project; concat input; mix to c_out."""

    def __init__(self, c_in: int, c_out: int, cfg: LegNetConfig, spatial_conv: nn.Module,
                 squeeze_excitation: nn.Module | None = None):
        super().__init__()
        inner = cfg.expansion * c_out
        self.branch = nn.Sequential(
            conv_bn_silu(c_in, inner, 1),
            spatial_conv,
            SeqBatchNorm1d(inner),
            nn.SiLU(),
            SqueezeExcitation(inner, max(1, c_in // cfg.se_reduction)) if squeeze_excitation is None
            else squeeze_excitation,
            conv_bn_silu(inner, c_in, 1),
        )
        self.mix = conv_bn_silu(2 * c_in, c_out, cfg.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([x, self.branch(x)], dim=1))


class LegNetHead(nn.Module):
    """1x1 conv to the bins -> SiLU -> mean over length; a linear map on top when the objective
    wants other outputs than the bins (one value for MSE)."""

    def __init__(self, channels: int, n_bins: int, n_outputs: int):
        super().__init__()
        self.bins = SeqConv1d(channels, n_bins, 1)
        self.act = nn.SiLU()
        self.value = None if n_outputs == n_bins else nn.Linear(n_bins, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = length_mean(self.act(self.bins(x)))
        if self.value is None:
            return out
        out = self.value(out)
        return out.squeeze(1) if out.shape[1] == 1 else out


class LegNet(nn.Module):
    """LegNet backbone. ``forward`` maps (batch, 6, L) to (batch, n_outputs) or (batch,).

    Parameters
    ----------
    cfg : LegNetConfig
        Architecture hyperparameters.
    n_outputs : int
        Output size, ``Objective.n_outputs``: ``cfg.n_bins`` bin logits (KL loss) or 1 value
        (MSE loss, returned as shape ``(batch,)``).
    """

    def __init__(self, cfg: LegNetConfig, n_outputs: int):
        super().__init__()
        self.cfg = cfg
        self.n_outputs = n_outputs
        ch = cfg.channels()
        self.stem = self.make_stem(ch[0])
        self.blocks = nn.Sequential(
            *(
                LegNetBlock(c_in, c_out, cfg, self.spatial_conv(i, cfg.expansion * c_out),
                            self.squeeze_excitation(cfg.expansion * c_out, max(1, c_in // cfg.se_reduction)))
                for i, (c_in, c_out) in enumerate(zip(ch[:-1], ch[1:]))
            )
        )
        self.head = LegNetHead(self.head_channels(ch[-1]), cfg.n_bins, n_outputs)
        for module in (self.stem, self.blocks, self.head):
            module.apply(init_legnet_weights)
        self.neck = self.make_neck(ch[-1])
        self.planar_on_cpu = PLANAR_ON_CPU

    # --- hooks for hybrids -------------------------------------------------------------
    def make_stem(self, c_out: int) -> nn.Module:
        return conv_bn_silu(self.cfg.in_channels, c_out, self.cfg.kernel_size)

    def spatial_conv(self, block_index: int, channels: int) -> nn.Module:
        """The grouped convolution inside block ``block_index`` (no BN, no activation)."""
        groups = channels // self.cfg.channels_per_group
        return BlockGroupedConv1d(channels, channels, self.cfg.kernel_size, padding="same", groups=groups,
                                  bias=False)

    def squeeze_excitation(self, channels: int, hidden: int) -> nn.Module:
        """The squeeze-excitation of a block's ``channels`` inner channels with a ``hidden`` bottleneck."""
        return SqueezeExcitation(channels, hidden)

    def make_neck(self, channels: int) -> nn.Module:
        return nn.Identity()

    def head_channels(self, channels: int) -> int:
        return channels

    # -----------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the neck: ``(batch, C, L')``, or planar ``(batch, C, 1, L')`` when the
        convolutions run planar and the neck is the identity."""
        planar = self.planar_on_cpu and x.device.type == "cpu"
        x = self.blocks(self.stem(to_planar(x) if planar else x))
        if isinstance(self.neck, nn.Identity):
            return x
        return self.neck(x.squeeze(2) if planar else x)

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
