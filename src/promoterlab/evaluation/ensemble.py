"""Ensembles of trained runs: mean prediction with its spread, and how well the spread is calibrated.

Members must share a layout (``config.data.layout``) and objective
(:func:`promoterlab.runs.check_compatible`): each is asked about the same sequences placed in
the window the same way. The ensemble's prediction is the mean of the members'
(RC-averaged) predictions and its uncertainty their population standard deviation
(``ddof=0``: the spread of these K models, not an estimate for a larger population of models;
0 for a single model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.stats import norm
from torch import nn

from promoterlab.config import RunConfig
from promoterlab.data.dataset import encode_sequences
from promoterlab.evaluation.metrics import spearman
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict
from promoterlab.files import atomic_path
from promoterlab.runs import check_compatible


@dataclass
class EnsemblePrediction:
    """Per-sequence ensemble mean and standard deviation, and every member's predictions."""

    mean: np.ndarray
    sd: np.ndarray
    members: np.ndarray  # (n_models, n_sequences)

    @property
    def n_models(self) -> int:
        return int(self.members.shape[0])


def ensemble_predict(members: Sequence[tuple[nn.Module, RunConfig]],
                     seqs: Sequence[str] | torch.Tensor | np.ndarray,
                     names: Sequence[str] | None = None, batch_size: int = PREDICT_BATCH_SIZE,
                     device: str = "cpu", precision: str = "auto",
                     singleton: Sequence[bool] | torch.Tensor | np.ndarray | None = None, fold: bool = True,
                     progress: bool = False) -> EnsemblePrediction:
    """Predict with every member (:func:`~promoterlab.evaluation.predict.predict`) and combine.

    Parameters
    ----------
    members : sequence of (nn.Module, RunConfig)
        Models with their run configs, e.g. from :meth:`promoterlab.runs.Run.load_members`.
    seqs : sequence of str, torch.Tensor or numpy.ndarray
        DNA strings (laid out once with the shared layout) or ``(n, L)`` codes already laid out.
    names : sequence of str, optional
        Run names for error messages (default ``model 1``, ``model 2``, ...).
    batch_size, device, precision, singleton, fold, progress
        As for :func:`~promoterlab.evaluation.predict.predict`.

    Returns
    -------
    EnsemblePrediction
        ``mean`` and ``sd`` (``ddof=0``) over members per sequence, and the members' predictions.

    Raises
    ------
    promoterlab.runs.RunError
        If the members' layouts or objectives differ.
    """
    names = list(names) if names is not None else [f"model {i + 1}" for i in range(len(members))]
    layout = check_compatible([config for _, config in members], names)
    if len(seqs) and isinstance(seqs[0], str):
        seqs = encode_sequences(list(seqs), layout)
    values = np.stack([predict(model, seqs, batch_size=batch_size, device=device, singleton=singleton,
                               precision=precision, fold=fold, progress=progress) for model, _ in members])
    values = values.astype(np.float64)
    return EnsemblePrediction(values.mean(axis=0), values.std(axis=0, ddof=0), values)


# Members of one config on one split differ by about 0.01-0.02 in validation Pearson
# (BENCHMARKS.md, seed studies); a gap of 0.1 below the others is a model that failed to learn.
WEAK_MEMBER_GAP = 0.1


def weak_members(member_r: Sequence[float], gap: float = WEAK_MEMBER_GAP) -> list[int]:
    """Indices of members whose validation Pearson lies more than ``gap`` below the median of
    the other members' (a diverged or untrained model that the mean would average in).

    >>> weak_members([0.64, 0.65, -0.10])
    [2]
    """
    r = np.asarray(member_r, dtype=np.float64)
    if r.size < 2:
        return []
    return [i for i in range(r.size) if r[i] < np.median(np.delete(r, i)) - gap]


def calibration(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> dict[str, float]:
    """How well the ensemble's spread predicts its error on measured data.

    Rows where any of ``y``, ``mean``, ``sd`` is not finite are left out.

    Returns
    -------
    dict
        ``within_1sd`` and ``within_2sd``: fractions of measurements with ``|y - mean| <= k * sd``
        (about 0.683 and 0.954 if errors were normal with that sd); ``spearman_error_sd``:
        Spearman correlation between ``|y - mean|`` and ``sd``; ``n``.
    """
    y, mean, sd = (np.asarray(a, dtype=np.float64).ravel() for a in (y, mean, sd))
    if not len(y) == len(mean) == len(sd):
        raise ValueError(f"{len(y)} measurements, {len(mean)} means and {len(sd)} sds")
    keep = np.isfinite(y) & np.isfinite(mean) & np.isfinite(sd)
    error, sd = np.abs(y[keep] - mean[keep]), sd[keep]
    nan = float("nan")
    return {"within_1sd": float(np.mean(error <= sd)) if len(sd) else nan,
            "within_2sd": float(np.mean(error <= 2 * sd)) if len(sd) else nan,
            "spearman_error_sd": spearman(error, sd), "n": int(len(sd))}


def plot_calibration(y: np.ndarray, mean: np.ndarray, sd: np.ndarray, path: str | Path | None = None,
                     ax: Sequence[Axes] | None = None, title: str = "test") -> Figure:
    """Coverage of the ±k·sd bands against the normal expectation, and ``|error|`` against sd.

    Parameters
    ----------
    y, mean, sd : array-like
        Measurements, ensemble means and standard deviations, one per sequence.
    path : str or Path, optional
        Where to save the figure (format from the suffix).
    ax : pair of matplotlib Axes, optional
        The coverage and the error panel to draw into; default: a new 9 × 3.8 in figure.
    title : str
        Start of both panel titles.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into.
    """
    stats = calibration(y, mean, sd)
    y, mean, sd = (np.asarray(a, dtype=np.float64).ravel() for a in (y, mean, sd))
    keep = np.isfinite(y) & np.isfinite(mean) & np.isfinite(sd)
    error, sd = np.abs(y[keep] - mean[keep]), sd[keep]
    if ax is None:
        fig = Figure(figsize=(9, 3.8))
        ax_cover, ax_error = fig.subplots(1, 2)
    else:
        ax_cover, ax_error = ax
        fig = ax_cover.figure
    k = np.linspace(0, 3, 61)
    observed = [np.mean(error <= step * sd) if len(sd) else np.nan for step in k]
    ax_cover.plot(k, 2 * norm.cdf(k) - 1, color="grey", ls="--", lw=0.8, label="normal errors")
    ax_cover.plot(k, observed, label="observed")
    ax_cover.plot([1, 2], [stats["within_1sd"], stats["within_2sd"]], "o", color="C1", ms=4)
    ax_cover.set(xlabel="band half-width (ensemble sd)", ylabel="fraction of measurements inside", ylim=(0, 1.02),
                 title=f"{title}: ±1 sd {stats['within_1sd']:.2f}, ±2 sd {stats['within_2sd']:.2f}")
    ax_cover.legend(loc="lower right")
    if len(sd):
        ax_error.hexbin(sd, error, gridsize=40, bins="log", mincnt=1, cmap="viridis")
    ax_error.set(xlabel="ensemble sd", ylabel="|measured − mean|",
                 title=f"{title}: Spearman {stats['spearman_error_sd']:.2f}, n = {stats['n']:,}")
    for axis in (ax_cover, ax_error):
        axis.grid(alpha=0.3)
    if ax is None:
        fig.tight_layout()
    if path is not None:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip("."))
    return fig
