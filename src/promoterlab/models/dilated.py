"""``legnet-dilated``: LegNet whose grouped convolutions are mixed with a dilated twin.

In block ``i`` the grouped k=7 convolution becomes

    y = (1 - rho) * conv_k7(x) + rho * conv_k7,dilation=d_i(x)

with two sets of weights, "same" padding and the same grouping. ``rho`` is a fixed
hyperparameter (not learned); at ``rho = 0`` the network computes exactly LegNet's function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from promoterlab.models.grouped_conv import BlockGroupedConv1d
from promoterlab.models.legnet import LegNet, LegNetConfig
from promoterlab.models.registry import register


@dataclass
class DilatedConfig(LegNetConfig):
    """LegNet hyperparameters plus the dilated mixing.

    Parameters
    ----------
    rho : float
        Weight of the dilated convolution in the mix, in [0, 1] (the seed study swept 0 to 0.4).
    dilations : list of int
        Dilation of the twin convolution in each block, one per block.
    """

    name: str = "legnet-dilated"
    rho: float = 0.4
    dilations: list[int] = field(default_factory=lambda: [4, 3, 2, 2, 1, 1])

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"rho must lie in [0, 1], not {self.rho}")
        n_blocks = len(self.block_channels) - 1
        if len(self.dilations) != n_blocks or any(int(d) < 1 for d in self.dilations):
            raise ValueError(f"dilations must be {n_blocks} positive integers (one per block), "
                             f"not {self.dilations}")


class DilatedMixConv(BlockGroupedConv1d):
    """A grouped convolution mixed with a dilated twin: ``(1 - rho) * conv(x) + rho * dilated(x)``.

    The undilated weights are this module's own ``weight``, so a LegNet state dict loads
    with the same keys; only the ``dilated`` twins are new.

    Parameters
    ----------
    channels : int
        Input and output channels.
    kernel_size : int
        Kernel of both convolutions.
    groups : int
        Groups of both convolutions.
    dilation : int
        Dilation of the twin.
    rho : float
        Weight of the twin in the mix.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int, dilation: int, rho: float):
        super().__init__(channels, channels, kernel_size, padding="same", groups=groups, bias=False)
        self.dilated = BlockGroupedConv1d(channels, channels, kernel_size, padding="same", dilation=dilation,
                                          groups=groups, bias=False)
        self.rho = rho

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The twin runs even at rho = 0 so that every parameter stays in the graph (DDP).
        return (1.0 - self.rho) * super().forward(x) + self.rho * self.dilated(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rho={self.rho}"


class LegNetDilated(LegNet):
    """LegNet with :class:`DilatedMixConv` as the spatial convolution of every block."""

    cfg: DilatedConfig

    def spatial_conv(self, block_index: int, channels: int) -> nn.Module:
        groups = channels // self.cfg.channels_per_group
        return DilatedMixConv(channels, self.cfg.kernel_size, groups, int(self.cfg.dilations[block_index]),
                              self.cfg.rho)


register("legnet-dilated", LegNetDilated, DilatedConfig)
