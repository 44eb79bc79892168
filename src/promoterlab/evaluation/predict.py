"""Predictions of any model on encoded or raw sequences, batched and RC-averaged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from promoterlab.data.dataset import EvalBatches, batch_loader, encode_sequences
from promoterlab.data.layout import LEFT_ADAPTER, PLASMID_UPSTREAM
from promoterlab.training.objective import averaged_output, to_value


@torch.no_grad()
def predict(
    model: nn.Module,
    seqs: Sequence[str] | torch.Tensor | np.ndarray,
    batch_size: int = 128,
    device: str = "cpu",
    rc_average: bool = True,
    progress: bool = False,
    singleton: Sequence[bool] | torch.Tensor | np.ndarray | None = None,
) -> np.ndarray:
    """Expression predicted by ``model`` for sequences.

    Parameters
    ----------
    model : nn.Module
        Maps (batch, 6, L) input to bin logits (prediction = expected bin) or to values.
    seqs : sequence of str, torch.Tensor or numpy.ndarray
        DNA strings, laid out with the default DREAM layout to the model's ``cfg.seq_len``
        (150 if the model has none; see :func:`predict_sequences` for other layouts), or
        ``(n, L)`` uint8 codes (see :func:`promoterlab.data.encoding.encode`).
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

    Returns
    -------
    numpy.ndarray
        One value per sequence, in input order.
    """
    if len(seqs) and isinstance(seqs[0], str):
        seq_len = getattr(getattr(model, "cfg", None), "seq_len", 150)
        seqs = encode_sequences(list(seqs), seq_len, LEFT_ADAPTER, PLASMID_UPSTREAM)
    model = model.to(device).eval()
    flags = None if singleton is None else torch.as_tensor(np.asarray(singleton, dtype=bool))
    if flags is not None and len(flags) != len(seqs):
        raise ValueError(f"singleton has {len(flags)} flags for {len(seqs)} sequences")
    loader = batch_loader(EvalBatches(torch.as_tensor(seqs), singleton=flags), batch_size, shuffle=False)
    values = []
    for x_fwd, x_rc, _ in tqdm(loader, disable=not progress, desc="predict", unit="batch"):
        out = model(x_fwd.to(device))
        if rc_average:
            out = averaged_output(out, model(x_rc.to(device)))
        values.append(to_value(out).cpu())
    return torch.cat(values).numpy() if values else np.zeros(0, dtype=np.float32)


def predict_sequences(
    model: nn.Module,
    seqs: Sequence[str],
    config,
    batch_size: int = 128,
    device: str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Lay out raw sequences as ``config.data`` says (length, adapter, flank), then :func:`predict`."""
    data = config.data
    codes = encode_sequences(list(seqs), data.seq_len, data.left_adapter, data.upstream)
    return predict(model, codes, batch_size=batch_size, device=device, progress=progress)
