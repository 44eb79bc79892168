"""Predictions of any model on encoded or raw sequences, batched and RC-averaged.

Inference runs in ``torch.inference_mode`` on a copy of the model whose BatchNorms are folded
into the convolutions before them, in bf16 where the hardware computes it natively
(:func:`promoterlab.precision.resolve_precision`; see
``BENCHMARKS.md`` for the speed and the largest difference to fp32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from promoterlab.data.dataset import EvalBatches, batch_loader, encode_sequences
from promoterlab.models.fold import fold_batchnorm
from promoterlab.models.kernels import Kernels, apply_kernels, default_kernels
from promoterlab.objective import Objective
from promoterlab.precision import autocast, resolve_precision
from promoterlab.sequence import Layout

# Inference (RC-averaged, BN folded, bf16) is fastest per sequence at 64 on a CPU: 1.3-1.4x
# the rate at 128 (benchmarks/speed.py).
PREDICT_BATCH_SIZE = 64


@torch.inference_mode()
def predict(
    model: nn.Module,
    seqs: Sequence[str] | torch.Tensor | np.ndarray,
    batch_size: int = PREDICT_BATCH_SIZE,
    device: str = "cpu",
    rc_average: bool = True,
    progress: bool = False,
    singleton: Sequence[bool] | torch.Tensor | np.ndarray | None = None,
    layout: Layout | None = None,
    precision: str = "auto",
    fold: bool = True,
    kernels: Kernels | None = None,
) -> np.ndarray:
    """Expression predicted by ``model`` for sequences.

    Parameters
    ----------
    model : nn.Module
        Maps (batch, 6, L) input to bin logits (prediction = expected bin) or to values.
    seqs : sequence of str, torch.Tensor or numpy.ndarray
        DNA strings (then ``layout`` is required), or ``(n, L)`` uint8 codes already laid out
        (see :func:`promoterlab.sequence.lay_out`).
    batch_size : int
        Sequences per forward pass.
    device : str
        Torch device.
    rc_average : bool
        Average the forward and reverse-complement predictions.
    progress : bool
        Show a progress bar.
    singleton : sequence of bool, optional
        Per-sequence ``is_singleton`` flags, to score held-out training data the way training
        validates (see ``DataConfig.val_singleton``); 0 for every sequence when omitted, as for
        new sequences.
    layout : Layout, optional
        How strings are placed in the model's window: the run's ``config.data.layout``.
    precision : str
        ``auto`` (bf16 where native), ``32``, ``bf16`` or ``16`` (GPU only); see
        :func:`promoterlab.precision.resolve_precision`.
    fold : bool
        Fold BatchNorms into convolutions first (False when ``model`` already is such a copy).
    kernels : Kernels, optional
        Formulation to compute with (:mod:`promoterlab.models.kernels`); by default the
        precision's rule on the folded copy, and ``model``'s own without ``fold``.

    Returns
    -------
    numpy.ndarray
        One value per sequence, in input order.
    """
    if len(seqs) and isinstance(seqs[0], str):
        if layout is None:
            raise ValueError("predicting DNA strings needs the run's layout: pass layout=config.data.layout "
                             "(config from load_run), or use predict_sequences(model, seqs, config)")
        seqs = encode_sequences(list(seqs), layout)
    codes = torch.as_tensor(np.asarray(seqs, dtype=np.uint8) if not torch.is_tensor(seqs) else seqs)
    flags = None if singleton is None else torch.as_tensor(np.asarray(singleton, dtype=bool))
    if flags is not None and len(flags) != len(codes):
        raise ValueError(f"singleton has {len(flags)} flags for {len(codes)} sequences")
    resolved = resolve_precision(precision, device)
    model = (fold_batchnorm(model) if fold else model).to(device).eval()
    if fold or kernels is not None:  # the folded copy is ours to change
        apply_kernels(model, kernels or default_kernels(resolved))
    loader = batch_loader(EvalBatches(codes, singleton=flags), batch_size, shuffle=False)
    values = []
    for x_fwd, x_rc, _ in tqdm(loader, disable=not progress, desc="predict", unit="batch"):
        with autocast(resolved, device):
            out = model(x_fwd.to(device))
            objective = Objective.from_output(out)
            if rc_average:
                out = objective.average(out, model(x_rc.to(device)))
        values.append(objective.value(out).cpu())
    return torch.cat(values).numpy() if values else np.zeros(0, dtype=np.float32)


def predict_sequences(
    model: nn.Module,
    seqs: Sequence[str],
    config,
    batch_size: int = PREDICT_BATCH_SIZE,
    device: str = "cpu",
    progress: bool = False,
    precision: str = "auto",
) -> np.ndarray:
    """Raw sequences laid out as the run's ``config.data`` says, then :func:`predict`."""
    return predict(model, list(seqs), batch_size=batch_size, device=device, progress=progress,
                   layout=config.data.layout, precision=precision)
