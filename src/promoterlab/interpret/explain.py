"""Attributions of many sequences, per insert: the operation behind ``promoterlab explain``.

Sequences are laid out as the run lays them out; only the insert (the sequence without a
leading left adapter, :func:`~promoterlab.interpret.wrapper.insert_span`) is mutated or
shuffled, since the plasmid flank is the same in every construct. Results are kept per insert
position: ``attributions[i, p, b]`` belongs to position ``p`` (0-based) of sequence ``i``'s
insert and base ``b`` (A, C, G, T), NaN beyond the insert's end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import iter_sequences
from promoterlab.evaluation.predict import predict
from promoterlab.files import atomic_path
from promoterlab.interpret.attribution import (
    DEEPLIFT_BATCH_SIZE,
    ISM_BATCH_SIZE,
    N_SHUFFLES,
    deeplift_shap,
    ism_attributions,
    saturation_ism,
)
from promoterlab.interpret.wrapper import OneHotExpression, deeplift_ready
from promoterlab.models.fold import fold_batchnorm
from promoterlab.precision import resolve_precision
from promoterlab.runs import load_run
from promoterlab.sequence import Layout, decode, tangermeme_one_hot

METHODS = ("ism", "deepliftshap")
SEQUENCES_PER_CALL = 8
MAX_PLOTS = 20


@dataclass
class WindowAttributions:
    """Attributions in window coordinates: ``(n, 4, L)`` arrays, zero outside each insert
    (``ism`` NaN where it was not computed), with each insert's first window position."""

    attributions: np.ndarray
    ism: np.ndarray
    starts: np.ndarray


def attribute(model: nn.Module, codes: torch.Tensor, starts: Sequence[int], method: str = "ism",
              ism_rows: Sequence[int] = (), n_shuffles: int = N_SHUFFLES, seed: int = 0, precision: str = "auto",
              device: str = "cpu", progress: bool = False, fold: bool = True) -> WindowAttributions:
    """ISM or DeepLIFT/SHAP attributions of the inserts of laid-out sequences.

    Parameters
    ----------
    model : nn.Module
        A promoterlab model, ``(batch, 6, L)`` input.
    codes : torch.Tensor
        ``(n, L)`` uint8 codes of laid-out sequences
        (:func:`~promoterlab.data.dataset.encode_sequences`).
    starts : sequence of int
        First window position of each insert.
    method : str
        ``"ism"``: tangermeme's ISM attribution, and the raw ISM changes in ``ism``;
        ``"deepliftshap"``: DeepLIFT/SHAP against ``n_shuffles`` dinucleotide shuffles of the
        insert (seeded by ``seed`` and the sequence's index).
    ism_rows : sequence of int
        With ``deepliftshap``, the sequences whose raw ISM changes are computed as well.
    precision : str
        ``auto``, ``32``, ``bf16`` or ``16`` (:func:`promoterlab.precision.resolve_precision`)
        for the ISM forward passes (DeepLIFT runs in fp32).
    device : str
        Torch device.
    progress : bool
        Show a progress bar over the sequences.
    fold : bool
        Fold BatchNorms into convolutions first (False when ``model`` already is such a copy).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    precision = resolve_precision(precision, device)
    folded = fold_batchnorm(model) if fold else model.eval()
    ism_model = OneHotExpression(folded)
    lift_model = OneHotExpression(deeplift_ready(folded)) if method == "deepliftshap" else None
    n, length = codes.shape
    starts = np.asarray(starts, dtype=np.int64)
    attributions = np.zeros((n, 4, length), dtype=np.float32)
    ism = np.full((n, 4, length), np.nan, dtype=np.float32)
    wanted_ism = np.zeros(n, dtype=bool)
    wanted_ism[list(ism_rows)] = True
    bar = tqdm(total=n, disable=not progress, desc=f"explain ({method})", unit=" seq")
    for start in (int(s) for s in np.unique(starts)):
        rows = np.flatnonzero(starts == start)
        for chunk in np.array_split(rows, max(1, -(-len(rows) // SEQUENCES_PER_CALL))):
            X = tangermeme_one_hot(codes[torch.as_tensor(chunk)])
            if method == "ism" or wanted_ism[chunk].any():
                picked = chunk if method == "ism" else chunk[wanted_ism[chunk]]
                X_ism = X if method == "ism" else tangermeme_one_hot(codes[torch.as_tensor(picked)])
                result = saturation_ism(ism_model, X_ism, start, length, ISM_BATCH_SIZE, precision, device)
                ism[picked, :, start:] = result.deltas.numpy()
                if method == "ism":
                    attributions[chunk, :, start:] = ism_attributions(result.deltas, X_ism, start).numpy()
            if method == "deepliftshap":
                seeds = [seed * 1_000_003 + int(i) for i in chunk]
                lifted = deeplift_shap(lift_model, X, start, length, n_shuffles, seeds,
                                       batch_size=DEEPLIFT_BATCH_SIZE, device=device)
                attributions[chunk, :, start:] = lifted[:, :, start:].numpy()
            bar.update(len(chunk))
    bar.close()
    return WindowAttributions(attributions, ism, starts)


@dataclass
class Explanation:
    """Attributions of sequences per insert position (see the module docstring).

    ``attributions`` and ``ism`` are ``(n, w, 4)``: ``w`` the longest insert, NaN beyond each
    insert's end (``ism`` also NaN where it was not computed); ``prediction`` is the RC-averaged
    prediction of :func:`~promoterlab.evaluation.predict.predict`.
    """

    ids: np.ndarray
    inserts: np.ndarray
    prediction: np.ndarray
    attributions: np.ndarray
    ism: np.ndarray
    method: str

    @classmethod
    def from_window(cls, ids: Sequence[str], prediction: np.ndarray, window: WindowAttributions, codes: torch.Tensor,
                    method: str) -> "Explanation":
        length = codes.shape[1]
        width = int(length - window.starts.min()) if len(window.starts) else 0
        per_insert = np.full((2, len(ids), width, 4), np.nan, dtype=np.float32)
        inserts = []
        for i, start in enumerate(window.starts):
            for k, array in enumerate((window.attributions, window.ism)):
                per_insert[k, i, :length - start] = array[i, :, start:].T
            inserts.append(decode(codes[i:i + 1, start:].numpy())[0])
        return cls(np.asarray(ids, dtype=str), np.asarray(inserts, dtype=str), np.asarray(prediction, np.float32),
                   per_insert[0], per_insert[1], method)

    def insert_matrix(self, i: int, which: str = "attributions") -> np.ndarray:
        """``(4, len)`` matrix of sequence ``i``'s insert: ``attributions`` or ``ism``."""
        array = getattr(self, which)[i, :len(self.inserts[i])]
        return array.T

    def save(self, path: str | Path) -> None:
        """Write the arrays to ``path`` (``.npz``) atomically; load with ``numpy.load``."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, ids=self.ids, inserts=self.inserts, prediction=self.prediction,
                                attributions=self.attributions, ism=self.ism, method=np.asarray(self.method),
                                bases=np.asarray(list("ACGT")))


def read_laid_out(path: str | Path, layout: Layout, seq_col: str | None = None, id_col: str | None = None,
                  ids: Sequence[str] | None = None) -> tuple[pd.DataFrame, torch.Tensor, np.ndarray]:
    """Sequences of a file (FASTA, DREAM text, CSV/TSV), laid out: ``(frame, codes, starts)``.

    ``ids`` keeps only those sequences, in file order. Raises a
    :class:`~promoterlab.data.readers.DataError` naming the file and line of a bad sequence,
    and a ``ValueError`` naming ids that are not in the file.
    """
    frame = pd.concat(list(iter_sequences(path, seq_col, id_col)), ignore_index=True)
    frame["id"] = frame["id"].astype(str)
    if ids:
        missing = [i for i in ids if i not in set(frame["id"])]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ValueError(f"{path}: no sequence with id {shown} ({len(missing)} of {len(ids)} ids not found)")
        frame = frame[frame["id"].isin(set(ids))].reset_index(drop=True)
    codes = encode_sequences(frame["seq"], layout, path, frame["line"].to_numpy())
    starts = np.array([layout.seq_len - layout.insert_length(s) for s in frame["seq"]], dtype=np.int64)
    return frame, codes, starts


def plot_name(index: int, name: str) -> str:
    """File name of a sequence's picture: its 1-based index and its id made safe for a file name."""
    return f"{index + 1:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:60]}.png"


def explain_file(run_dir: str | Path, path: str | Path, out_dir: str | Path, method: str = "ism",
                 ids: Sequence[str] | None = None, seq_col: str | None = None, id_col: str | None = None,
                 max_plots: int = MAX_PLOTS, n_shuffles: int = N_SHUFFLES, seed: int = 0, precision: str = "auto",
                 device: str = "cpu", progress: bool = False) -> Explanation:
    """Explain the sequences of a file with a trained run and write ``out_dir``.

    Writes ``attributions.npz`` (see :class:`Explanation`) and, for the first ``max_plots``
    sequences, a PNG of the insert's attribution logo over its ISM heat map, titled with the id
    and the predicted expression. Everything is computed before anything is written.
    """
    from promoterlab.interpret.plots import plot_explanation

    precision = resolve_precision(precision, device)
    model, config = load_run(run_dir, device)
    frame, codes, starts = read_laid_out(path, config.data.layout, seq_col, id_col, ids)
    folded = fold_batchnorm(model)
    prediction = predict(folded, codes, device=device, precision=precision, fold=False)
    plotted = range(min(max_plots, len(frame)))
    window = attribute(folded, codes, starts, method, ism_rows=plotted, n_shuffles=n_shuffles, seed=seed,
                       precision=precision, device=device, progress=progress, fold=False)
    explanation = Explanation.from_window(frame["id"].tolist(), prediction, window, codes, method)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    explanation.save(out_dir / "attributions.npz")
    label = "ISM" if method == "ism" else "DeepLIFT/SHAP"
    for i in plotted:
        title = f"{explanation.ids[i]}: predicted expression {explanation.prediction[i]:.2f} ({label})"
        plot_explanation(explanation.insert_matrix(i), explanation.insert_matrix(i, "ism"), title,
                         out_dir / plot_name(i, explanation.ids[i]))
    return explanation
