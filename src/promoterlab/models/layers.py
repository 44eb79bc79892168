"""Convolution and BatchNorm layers that run on 1D sequences in either of two memory layouts.

A CPU computes LegNet's layers fastest in bf16 on ``(batch, channels, 1, length)`` tensors in
channels-last memory: oneDNN's convolutions then read and write that layout directly, while a
``(batch, channels, length)`` tensor is converted to it and back around every convolution
(about a fifth of a training step, ``benchmarks/speed.py``). These layers take either shape and
keep ``nn.Conv1d`` / ``nn.BatchNorm1d`` parameters, so state dicts do not depend on the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def to_planar(x: torch.Tensor) -> torch.Tensor:
    """``(batch, C, L)`` -> ``(batch, C, 1, L)`` in channels-last memory."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def length_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over the length (and the unit height of a planar tensor): ``(batch, C)``."""
    return x.mean(dim=tuple(range(2, x.dim())))


def per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(batch, C)`` values shaped to broadcast over the length of ``like``."""
    return values.view(*values.shape, *([1] * (like.dim() - 2)))


class SeqConv1d(nn.Conv1d):
    """``nn.Conv1d`` that also takes planar ``(batch, C, 1, L)`` input (see :func:`to_planar`)."""

    def conv_weight(self) -> tuple[torch.Tensor, int]:
        """The weight and group count to convolve with (subclasses may regroup)."""
        return self.weight, self.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, groups = self.conv_weight()
        if x.dim() == 3:
            if self.padding_mode != "zeros":
                return self._conv_forward(x, weight, self.bias)
            return F.conv1d(x, weight, self.bias, self.stride, self.padding, self.dilation, groups)
        if self.padding_mode != "zeros":
            raise ValueError(f"{type(self).__name__}: planar input needs zero padding, not {self.padding_mode}")
        padding = self.padding if isinstance(self.padding, str) else (0, self.padding[0])
        return F.conv2d(x, weight.unsqueeze(2), self.bias, (1, self.stride[0]), padding, (1, self.dilation[0]),
                        groups)


class SeqBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also takes planar ``(batch, C, 1, L)`` input."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or planar 4D input (got {input.dim()}D input)")
