"""Several trained models as one ``nn.Module``: the mean of their predictions.

An ensemble of bin models (the KL objective) outputs the log of its members' mean bin
probabilities, so that its expected bin is the mean of the members' expected bins, and the
reverse-complement averaging of :func:`promoterlab.evaluation.predict.predict` (which averages
probabilities) gives exactly the mean of the members' RC-averaged predictions. An ensemble of
value models (MSE) outputs the mean value. Because every step from the members' probabilities
to the prediction is linear, attributions that are linear in the prediction (ISM) of the
ensemble are the mean of its members'.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class EnsembleModel(nn.Module):
    """The mean prediction of ``members`` (models with the same input and the same kind of output).

    Parameters
    ----------
    members : sequence of nn.Module
        Models mapping ``(batch, 6, L)`` to bin logits ``(batch, k)`` or values ``(batch,)``.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x) for member in self.members]
        if outputs[0].ndim == 2 and outputs[0].shape[1] > 1:
            probs = torch.stack([torch.softmax(out.float(), dim=1) for out in outputs]).mean(dim=0)
            return probs.clamp_min(1e-12).log()
        return torch.stack([out.float().reshape(-1) for out in outputs]).mean(dim=0)

    def __len__(self) -> int:
        return len(self.members)
