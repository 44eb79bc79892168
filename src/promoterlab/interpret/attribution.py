"""Attributions with tangermeme: saturation mutagenesis (ISM) and DeepLIFT/SHAP.

Every function here takes a model in tangermeme's form, ``(batch, 4, L)`` one-hot in and
``(batch, 1)`` out (:class:`~promoterlab.interpret.wrapper.OneHotExpression` around a
promoterlab model), and a one-hot tensor in tangermeme's encoding (N = a column of zeros,
:func:`~promoterlab.sequence.tangermeme_one_hot`). Positions ``start:end`` of the window are
explained (the insert, :func:`~promoterlab.interpret.wrapper.insert_span`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn

from promoterlab.precision import autocast_dtype

ISM_BATCH_SIZE = 128
DEEPLIFT_BATCH_SIZE = 64
N_SHUFFLES = 20


@contextlib.contextmanager
def torch_threads_kept() -> Iterator[int]:
    """Keep torch's CPU thread count across numba code (tangermeme's shuffles and seqlets, Tomtom).

    numba's OpenMP threading layer shares the OpenMP runtime with torch, so the thread counts
    that those libraries set for numba become torch's too; a torch left on more threads than it
    was given (say 2 instead of 1 beside other work) can run small models many times slower.
    Yields the count, for the numba code to use.
    """
    threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


class IsmResult(NamedTuple):
    """Saturation mutagenesis of ``n`` sequences over ``w`` positions.

    ``prediction`` (n,) is the model's value for each sequence; ``deltas`` (n, 4, w) is the change
    of that value when the base at a position is replaced by A, C, G or T (0 for the base that
    is there).
    """

    prediction: torch.Tensor
    deltas: torch.Tensor


def saturation_ism(model: nn.Module, X: torch.Tensor, start: int = 0, end: int | None = None,
                   batch_size: int = ISM_BATCH_SIZE, precision: str = "32", device: str = "cpu") -> IsmResult:
    """Every single-base substitution of ``X[:, :, start:end]`` (3 per position), batched.

    A thin layer over :func:`tangermeme.saturation_mutagenesis.saturation_mutagenesis` with
    ``raw_outputs=True``: it returns the change of the prediction for each substitution.

    Parameters
    ----------
    model : nn.Module
        ``(batch, 4, L)`` one-hot -> ``(batch, 1)``.
    X : torch.Tensor
        ``(n, 4, L)`` one-hot (N = zeros).
    start, end : int
        Window positions to mutate (``end`` exclusive; ``None``: to the end).
    batch_size : int
        Mutants per forward pass.
    precision : str
        Resolved: ``"32"``, ``"bf16"`` or ``"16"`` (autocast; the output stays fp32), see
        :func:`promoterlab.precision.resolve_precision`.
    device : str
        Torch device.

    Returns
    -------
    IsmResult
        ``prediction`` (n,) and ``deltas`` (n, 4, end - start).
    """
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    end = X.shape[-1] if end is None else end
    y0, y_hat = saturation_mutagenesis(model, X, start=start, end=end, batch_size=batch_size, raw_outputs=True,
                                       dtype=autocast_dtype(precision), device=device, fast=False)
    y0, y_hat = y0.float()[:, 0], y_hat.float()[..., 0]
    return IsmResult(y0, y_hat - y0[:, None, None])


def ism_attributions(deltas: torch.Tensor, X: torch.Tensor, start: int = 0, hypothetical: bool = False
                     ) -> torch.Tensor:
    """tangermeme's ISM attribution: each position's deltas minus their mean over the four bases,
    kept at the base that is there (all four with ``hypothetical``).

    The observed base then scores minus the mean effect of mutating it: positive where mutations
    lower the prediction. ``X`` is the full ``(n, 4, L)`` one-hot; ``deltas`` start at ``start``.
    """
    centred = deltas - deltas.mean(dim=1, keepdim=True)
    if hypothetical:
        return centred
    return centred * X[:, :, start:start + deltas.shape[-1]].to(centred.dtype)


def shuffled_references(X: torch.Tensor, start: int = 0, end: int | None = None, n_shuffles: int = N_SHUFFLES,
                        seeds: list[int] | None = None) -> torch.Tensor:
    """``(n, n_shuffles, 4, L)`` references: ``X`` with ``start:end`` dinucleotide-shuffled.

    Only the explained span is shuffled, so the fixed plasmid flank is the same in a sequence
    and its references and gets no attribution. ``seeds`` (one per sequence) make each
    sequence's references independent of the batch it is in.
    """
    from tangermeme.ersatz import dinucleotide_shuffle

    end = X.shape[-1] if end is None else end
    with torch_threads_kept():
        return dinucleotide_shuffle(X, start=start, end=end, n=n_shuffles, random_state=seeds, allow_N=True)


def deeplift_shap(model: nn.Module, X: torch.Tensor, start: int = 0, end: int | None = None,
                  n_shuffles: int = N_SHUFFLES, seeds: list[int] | None = None, hypothetical: bool = False,
                  batch_size: int = DEEPLIFT_BATCH_SIZE, device: str = "cpu", return_references: bool = False
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """DeepLIFT/SHAP attributions against dinucleotide-shuffled references (fp32).

    A thin layer over :func:`tangermeme.deep_lift_shap.deep_lift_shap` with the references of
    :func:`shuffled_references`. Use a model made with
    :func:`~promoterlab.interpret.wrapper.deeplift_ready` so that the attributions of a sequence
    sum to its prediction minus the mean prediction of its references.

    Returns
    -------
    torch.Tensor or tuple
        ``(n, 4, L)`` attributions (zero outside ``start:end``); with ``return_references``
        also the ``(n, n_shuffles, 4, L)`` references.
    """
    from tangermeme.deep_lift_shap import deep_lift_shap as tangermeme_deep_lift_shap

    references = shuffled_references(X, start, end, n_shuffles, seeds)
    attributions = tangermeme_deep_lift_shap(model, X, references=references, hypothetical=hypothetical,
                                             batch_size=batch_size, dtype=torch.float32, device=device,
                                             only_warn=True)
    return (attributions, references) if return_references else attributions
