"""A promoterlab model seen the way tangermeme expects: 4-channel one-hot in, expression out.

LegNet reads ``(batch, 6, L)``: one-hot A, C, G, T, then ``is_reverse`` and ``is_singleton``.
tangermeme's saturation mutagenesis, DeepLIFT/SHAP and marginalisation check that their input is
a ``(batch, 4, L)`` one-hot and want one value per output. :class:`OneHotExpression` fills in the
two flag channels as prediction does (both 0), adds the reverse-complement pass with
``is_reverse`` = 1 exactly as :class:`promoterlab.data.dataset.EvalBatches` builds it, and turns
the output into expression (the expected bin of KL models, the value of MSE models), so that it
gives what :func:`promoterlab.evaluation.predict.predict` gives.

:func:`deeplift_ready` returns a copy of a model in which every operation that DeepLIFT must
treat as non-linear is a module with a registered rule (the product inside squeeze-excitation).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from promoterlab.models.ensemble import EnsembleModel
from promoterlab.sequence import Layout
from promoterlab.models.legnet import SqueezeExcitation

N_BASES = 4


def insert_span(seq: str, layout: Layout) -> tuple[int, int]:
    """Where a raw sequence's insert lies in the model window: ``(start, end)``, end exclusive.

    The insert is the sequence without a leading copy of the layout's left adapter (which the
    layout replaces by the plasmid upstream of it); it ends at the end of the window.

    Raises
    ------
    ValueError
        If the insert is longer than the window.
    """
    length = layout.insert_length(seq)
    if length > layout.seq_len:
        raise ValueError(f"sequence of {length} bp (adapter stripped) is longer than the model length "
                         f"{layout.seq_len}")
    return layout.seq_len - length, layout.seq_len


class OneHotExpression(nn.Module):
    """Predicted expression of a ``(batch, 6, L)`` model from a ``(batch, 4, L)`` one-hot.

    Parameters
    ----------
    model : nn.Module
        Maps ``(batch, 6, L)`` input to bin logits (expression = expected bin) or to one value.
    rc_average : bool
        Average the prediction of the sequence and of its reverse complement (``is_reverse`` = 1),
        as :func:`~promoterlab.evaluation.predict.predict` does by default.

    Notes
    -----
    A column of zeros is an N (tangermeme's encoding of N) and is fed to the model as 0.25 in
    every base channel, as promoterlab encodes N. The output is ``(batch, 1)`` in fp32, whatever
    precision the model runs in. The bin probabilities come from an ``nn.Softmax`` module rather
    than ``torch.softmax`` so that DeepLIFT applies its softmax rule to them; averaging the two
    strands' expected bins equals the expected bin of their averaged probabilities, which is how
    ``Objective.average`` combines them.
    """

    def __init__(self, model: nn.Module, rc_average: bool = True):
        super().__init__()
        self.model = model
        self.rc_average = rc_average
        self.softmax = nn.Softmax(dim=1)
        # An ensemble's expression is the mean of its members' (each member's probabilities pass
        # a softmax module of their own, so that DeepLIFT's rules apply to each).
        members = len(model.members) if isinstance(model, EnsembleModel) else 0
        self.member_softmax = nn.ModuleList(nn.Softmax(dim=1) for _ in range(members))
        # The wrapper's mode is the model's: tangermeme restores the mode it found after a call,
        # and a wrapper left in training mode would switch the model's BatchNorms to batch statistics.
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != N_BASES:
            raise ValueError(f"expected a (batch, 4, length) one-hot, got shape {tuple(x.shape)}")
        x = torch.where(x.sum(dim=1, keepdim=True) == 0, torch.full_like(x, 0.25), x)
        flags = x.new_zeros(x.shape[0], 2, x.shape[2])
        value = self.model_expression(torch.cat([x, flags], dim=1))
        if self.rc_average:
            reverse = flags.clone()
            reverse[:, 0] = 1.0
            # Complement = reversed channel order (A, C, G, T -> T, G, C, A); then reverse the positions.
            value = (value + self.model_expression(torch.cat([x.flip(1, 2), reverse], dim=1))) / 2
        return value.unsqueeze(1)

    def model_expression(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(batch,)`` expression of the 6-channel ``inputs``: the model's, or an ensemble's
        members' mean."""
        if len(self.member_softmax):
            values = [self.expression(member(inputs), softmax)
                      for member, softmax in zip(self.model.members, self.member_softmax)]
            return torch.stack(values).mean(dim=0)
        return self.expression(self.model(inputs))

    def expression(self, output: torch.Tensor, softmax: nn.Module | None = None) -> torch.Tensor:
        """Model output -> ``(batch,)`` expression: expected bin of bin logits, else the value."""
        if output.ndim == 2 and output.shape[1] > 1:
            probs = (softmax or self.softmax)(output.float())
            bins = torch.arange(output.shape[1], dtype=probs.dtype, device=probs.device)
            return (probs * bins).sum(dim=1)
        return output.float().reshape(-1)


class _ProductSqueezeExcitation(nn.Module):
    """:class:`~promoterlab.models.legnet.SqueezeExcitation` with its product as a module, so that
    DeepLIFT applies its product rule there instead of treating the gate as a constant."""

    def __init__(self, se: SqueezeExcitation):
        super().__init__()
        from tangermeme.deep_lift_shap import BilinearOp

        self.gate = se.gate
        self.product = BilinearOp("...,...->...")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, C, L) or LegNet's planar (batch, C, 1, L): the gate is per channel.
        gate = self.gate(x.mean(dim=tuple(range(2, x.dim()))))
        return self.product(x, gate.view(*gate.shape, *([1] * (x.dim() - 2))))


def deeplift_ready(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` whose squeeze-excitation products are DeepLIFT modules.

    The copy computes the same function; ``model`` is not changed. Other layers of LegNet are
    linear (convolutions, BatchNorm in eval mode, means) or have rules in tangermeme (SiLU,
    Sigmoid). Attention and LSTM layers of the hybrids have no exact rule; DeepLIFT/SHAP on them
    is an approximation and tangermeme warns about the convergence deltas.
    """
    ready = copy.deepcopy(model).eval()
    for parent in list(ready.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SqueezeExcitation):
                setattr(parent, name, _ProductSqueezeExcitation(child))
    return ready
