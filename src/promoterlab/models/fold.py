"""Inference copies of a model with every BatchNorm folded into the convolution before it."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from promoterlab.models.grouped_conv import BlockGroupedConv1d
from promoterlab.models.layers import SeqConv1d

# Only convolutions whose output is exactly conv(x): a mix like DilatedMixConv is left alone.
_FOLDABLE = (nn.Conv1d, SeqConv1d, BlockGroupedConv1d)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which each ``Conv1d`` directly followed by a
    ``BatchNorm1d`` in an ``nn.Sequential`` is replaced by one convolution with the BatchNorm's
    running statistics and affine map folded into its weight and bias (the BatchNorm becomes
    ``nn.Identity``). The copy computes the same function in eval mode with fewer passes over
    memory; ``model`` is not changed.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name, conv), (bn_name, bn) in zip(children, children[1:]):
            if type(conv) in _FOLDABLE and isinstance(bn, nn.BatchNorm1d) and bn.track_running_stats:
                setattr(module, name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return folded
