"""A faster grouped convolution for CPUs: the same function as ``nn.Conv1d(groups=...)``.

LegNet's k=7 convolution has 2 channels per group. CPU kernels run such thin groups far below
the machine's speed (hundreds of tiny matrix products), so this module computes it as a
convolution with fewer, wider groups whose weight is block-diagonal: each wide group of
``block`` channels holds ``block / 2`` original groups on its diagonal and zeros elsewhere.
It does ``block / 2`` times the arithmetic in a few dense kernels, which in bf16 is 2-3x faster
on a CPU for the forward and backward pass together; in fp32 the stock grouped kernel on planar
tensors is faster (``benchmarks/speed.py``), so the merge is chosen per model and machine
(:mod:`promoterlab.models.kernels`). The parameters are ``nn.Conv1d``'s own, so state dicts are
interchangeable and the zeros get no gradient.
"""

from __future__ import annotations

import torch

from promoterlab.models.layers import SeqConv1d

BLOCK_CHANNELS = 32


class BlockGroupedConv1d(SeqConv1d):
    """``nn.Conv1d`` with ``groups > 1`` evaluated as a block-diagonal convolution (on 3D or
    planar input, as :class:`~promoterlab.models.layers.SeqConv1d`).

    Parameters
    ----------
    *args, **kwargs
        As for :class:`torch.nn.Conv1d`.
    block : int, optional
        Input channels of each wide group (default :data:`BLOCK_CHANNELS`; :meth:`set_block`
        changes it later, see :mod:`promoterlab.models.kernels`). Where the channel count does
        not allow it, fewer groups are merged; with no merge at all this is the plain grouped
        convolution.
    """

    def __init__(self, *args, block: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_block(BLOCK_CHANNELS if block is None else block)

    def set_block(self, block: int) -> None:
        """Merge groups into wide groups of about ``block`` input channels (1: no merge)."""
        self.block = block
        per_group_in = self.in_channels // self.groups
        merged = max(1, block // per_group_in)
        while merged > 1 and self.groups % merged:
            merged -= 1
        self.merged = merged if self.padding_mode == "zeros" else 1

    def block_weight(self) -> torch.Tensor:
        """The ``(out, merged * in_per_group, k)`` weight of the wide-group convolution."""
        out_per_group, in_per_group, k = self.out_channels // self.groups, self.in_channels // self.groups, \
            self.kernel_size[0]
        wide = self.groups // self.merged
        weight = self.weight.view(wide, self.merged, out_per_group, in_per_group, k)
        eye = torch.eye(self.merged, dtype=weight.dtype, device=weight.device)
        full = weight.unsqueeze(3) * eye.view(1, self.merged, 1, self.merged, 1, 1)
        return full.reshape(self.out_channels, self.merged * in_per_group, k)

    def conv_weight(self) -> tuple[torch.Tensor, int]:
        if self.merged == 1:
            return self.weight, self.groups
        return self.block_weight(), self.groups // self.merged

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, merged={self.merged}"
