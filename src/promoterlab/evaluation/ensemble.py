"""Ensembles of trained runs: mean prediction with its spread, and how well the spread is calibrated.

Members must share a layout (``config.data.layout``): each is asked about the same sequences
placed in the window the same way. The ensemble's prediction is the mean of the members'
(RC-averaged) predictions and its uncertainty their population standard deviation
(``ddof=0``: the spread of these K models, not an estimate for a larger population of models;
0 for a single model).
"""

from __future__ import annotations

import glob
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
from promoterlab.sequence import Layout
from promoterlab.evaluation.metrics import spearman
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict
from promoterlab.files import atomic_path
from promoterlab.training.saved import load_run

_GLOB_CHARS = set("*?[")


@dataclass
class EnsemblePrediction:
    """Per-sequence ensemble mean and standard deviation, and every member's predictions."""

    mean: np.ndarray
    sd: np.ndarray
    members: np.ndarray  # (n_models, n_sequences)

    @property
    def n_models(self) -> int:
        return int(self.members.shape[0])


def resolve_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories named by run directories, sweep folders or glob patterns.

    A folder holding ``model.pt`` is one run (a ``model.pt`` file names its folder); another
    folder stands for every folder below it that holds a ``model.pt`` (a sweep, or the
    ``seed=*`` runs of an ensemble); a pattern with ``*``, ``?`` or ``[`` that is not itself a
    path is expanded (e.g. ``runs/legnet_s_seed*``). Order is kept, repeats dropped.

    Raises
    ------
    FileNotFoundError
        A path that does not exist, or a pattern that matches nothing.
    ValueError
        No paths, or a folder with no trained run in or below it.
    """
    if not paths:
        raise ValueError("no runs given")
    runs: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.exists():
            matches = [path]
        elif _GLOB_CHARS & set(str(given)):
            matches = [Path(p) for p in sorted(glob.glob(str(given)))]
            if not matches:
                raise FileNotFoundError(f"{given}: matches no run directory")
        else:
            raise FileNotFoundError(f"{given}: no such run directory")
        for match in matches:
            found = _runs_in(match)
            if not found:
                raise ValueError(f"{match}: no trained model (model.pt) in it or in any folder below it")
            runs.extend(run for run in found if run not in runs)
    return runs


def _runs_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path.parent] if path.name == "model.pt" else []
    if (path / "model.pt").is_file():
        return [path]
    return sorted({model.parent for model in path.rglob("model.pt") if model.is_file()})


def load_ensemble(paths: Sequence[str | Path], device: str = "cpu"
                  ) -> tuple[list[tuple[nn.Module, RunConfig]], list[str]]:
    """Load every run of :func:`resolve_runs` (``load_run``) and check that they share a layout.

    Returns
    -------
    members : list of (nn.Module, RunConfig)
        Models in eval mode with their configs, for :func:`ensemble_predict`.
    names : list of str
        The run directories, in the same order.
    """
    runs = resolve_runs(paths)
    names = [str(run) for run in runs]
    members = [load_run(run, device) for run in runs]
    shared_layout([config for _, config in members], names)
    return members, names


def shared_layout(configs: Sequence[RunConfig], names: Sequence[str] | None = None) -> Layout:
    """The layout that every member's ``config.data.layout`` agrees on.

    Raises
    ------
    ValueError
        Naming the first run whose layout differs from the first run's, and how.
    """
    if not configs:
        raise ValueError("an ensemble needs at least one model")
    names = list(names) if names is not None else [f"model {i + 1}" for i in range(len(configs))]
    first = configs[0].data.layout
    for name, config in zip(names[1:], configs[1:]):
        layout = config.data.layout
        if layout != first:
            fields = [f for f in ("seq_len", "left_adapter", "upstream") if getattr(layout, f) != getattr(first, f)]
            raise ValueError(f"runs {names[0]} and {name} lay sequences out differently ({', '.join(fields)} "
                             "differ); an ensemble's models must share a layout")
    return first


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
        Models with their run configs, e.g. from ``load_run`` of each of :func:`resolve_runs`.
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
    ValueError
        If the members' layouts differ.
    """
    layout = shared_layout([config for _, config in members], names)
    if len(seqs) and isinstance(seqs[0], str):
        seqs = encode_sequences(list(seqs), layout)
    values = np.stack([predict(model, seqs, batch_size=batch_size, device=device, singleton=singleton,
                               precision=precision, fold=fold, progress=progress) for model, _ in members])
    values = values.astype(np.float64)
    return EnsemblePrediction(values.mean(axis=0), values.std(axis=0, ddof=0), values)


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
