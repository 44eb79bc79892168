"""Figures of a run: training curves and predicted against measured values.

Figures are built with :class:`matplotlib.figure.Figure` directly, not through pyplot, so that
nothing here selects a matplotlib backend or needs a display: :meth:`Figure.savefig` renders
with the canvas of the file format. Every plot function draws into ``ax=`` when given (for a
figure of the caller's, in a notebook say) and otherwise makes its own figure; with a ``path``
it saves that figure atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from promoterlab.evaluation.metrics import pearson
from promoterlab.files import atomic_path


def plot_curves(history: pd.DataFrame | Mapping[str, pd.DataFrame], path: str | Path | None = None,
                ax: Sequence[Axes] | None = None) -> Figure:
    """Loss and Pearson per epoch, train and validation, side by side; several runs (an
    ensemble's members) overlaid, one colour each.

    Parameters
    ----------
    history : pandas.DataFrame or mapping of str to pandas.DataFrame
        ``metrics.csv`` of a run: ``epoch``, ``train_loss``, ``val_loss``, ``train_pearson``,
        ``val_pearson``; or one per run, by name.
    path : str or Path, optional
        Where to save the figure (format from the suffix).
    ax : pair of matplotlib Axes, optional
        The loss and the Pearson panel to draw into; default: a new 9 × 3.5 in figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into.
    """
    if ax is None:
        fig = Figure(figsize=(9, 3.5))
        ax_loss, ax_r = fig.subplots(1, 2)
    else:
        ax_loss, ax_r = ax
        fig = ax_loss.figure
    runs = {"": history} if isinstance(history, pd.DataFrame) else dict(history)
    for i, (name, rows) in enumerate(runs.items()):
        for split, style in (("train", "-o"), ("val", "--s" if name else "-s")):
            label = f"{name} {split}".strip()
            color = f"C{i}" if name else None
            ax_loss.plot(rows["epoch"], rows[f"{split}_loss"], style, ms=3, label=label, color=color)
            ax_r.plot(rows["epoch"], rows[f"{split}_pearson"], style, ms=3, label=label, color=color)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_r.set(xlabel="epoch", ylabel="Pearson r", title="Pearson")
    for axis in (ax_loss, ax_r):
        axis.legend(fontsize="small" if len(runs) > 1 else None)
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax is None:
        fig.tight_layout()
    if path is not None:
        _save_atomic(fig, Path(path))
    return fig


def plot_val_scatter(pred: np.ndarray, target: np.ndarray, path: str | Path | None = None,
                     ax: Axes | None = None, title: str = "validation") -> Figure:
    """Predicted against measured values as a hexbin density (log counts) with the identity line.

    The title names ``title``, Pearson r and n (pairs with a NaN are left out of both).

    Parameters
    ----------
    pred, target : array-like
        Predictions and measurements, one per sequence.
    path : str or Path, optional
        Where to save the figure (format from the suffix).
    ax : matplotlib Axes, optional
        Where to draw (no colour bar is added then); default: a new 5 × 4.5 in figure.
    title : str
        First line of the title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into.
    """
    pred = np.asarray(pred, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"{len(pred)} predictions for {len(target)} measured values")
    keep = np.isfinite(pred) & np.isfinite(target)
    pred, target = pred[keep], target[keep]
    own = ax is None
    if own:
        fig = Figure(figsize=(5, 4.5))
        ax = fig.subplots()
    else:
        fig = ax.figure
    if len(target):
        cells = ax.hexbin(target, pred, gridsize=50, bins="log", mincnt=1, cmap="viridis")
        if own:
            fig.colorbar(cells, ax=ax, label="sequences")
        low, high = min(target.min(), pred.min()), max(target.max(), pred.max())
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="measured", ylabel="predicted",
           title=f"{title}\nr = {pearson(pred, target):.3f}, n = {len(target):,}")
    if own:
        fig.tight_layout()
    if path is not None:
        _save_atomic(fig, Path(path))
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> None:
    """Save to a temp file beside ``path`` (format from its suffix), then rename into place."""
    _save_atomic(fig, Path(path), dpi)
    _close(fig)


def save_figure_formats(fig: Figure, path: str | Path, formats: tuple[str, ...] = ("png", "svg"),
                        dpi: int = 120) -> list[Path]:
    """Save ``fig`` once per format, each atomically.

    ``path`` is the file name without a suffix (a suffix that is one of ``formats`` is
    dropped); returns the written paths, e.g. ``[fig.png, fig.svg]``.
    """
    base = Path(path)
    if base.suffix.lstrip(".") in formats:
        base = base.with_suffix("")
    paths = [base.with_name(f"{base.name}.{fmt}") for fmt in formats]
    for target in paths:
        _save_atomic(fig, target, dpi)
    _close(fig)
    return paths


def _save_atomic(fig: Figure, path: Path, dpi: int = 120) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip("."))


def _close(fig: Figure) -> None:
    """Release a figure that pyplot manages (one of ours is not: it is freed like any object)."""
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
