"""Pictures of interpretations: logos (logomaker), ISM heat maps, variant and marginalisation plots.

As in :mod:`promoterlab.evaluation.plots`, figures are :class:`matplotlib.figure.Figure` objects
built without pyplot, and saved atomically when a ``path`` is given. Positions are numbered
1, 2, ... along the insert.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from promoterlab.evaluation.plots import save_figure
from promoterlab.interpret.known_motifs import BASES

LABELLED_VARIANTS = 5


def _matrix_frame(matrix: np.ndarray) -> pd.DataFrame:
    """``(4, w)`` rows A, C, G, T -> logomaker's ``(w, 4)`` frame, NaN as 0."""
    return pd.DataFrame(np.nan_to_num(np.asarray(matrix, dtype=np.float64).T), columns=list(BASES))


def logo(matrix: np.ndarray, ax, first_position: int = 1) -> None:
    """Draw a ``(4, w)`` matrix as a logo into ``ax``; positions numbered from ``first_position``."""
    import logomaker

    frame = _matrix_frame(matrix)
    frame.index = np.arange(first_position, first_position + len(frame))
    logomaker.Logo(frame, ax=ax, color_scheme="classic", flip_below=False)
    ax.axhline(0, color="grey", lw=0.5)


def plot_explanation(attributions: np.ndarray, ism: np.ndarray | None, title: str,
                     path: str | Path | None = None) -> Figure:
    """The attribution logo of an insert over its ISM heat map.

    Parameters
    ----------
    attributions : numpy.ndarray
        ``(4, w)`` attributions of the insert's bases (rows A, C, G, T).
    ism : numpy.ndarray, optional
        ``(4, w)`` change of the prediction for each substitution (0 at the base that is there).
    title : str
        Figure title (e.g. the id and the predicted expression).
    path : str or Path, optional
        Where to save the figure.
    """
    width = attributions.shape[1]
    fig = Figure(figsize=(max(8.0, 0.14 * width + 2), 4.2 if ism is not None else 2.4))
    axes = fig.subplots(2 if ism is not None else 1, 1, sharex=ism is None, squeeze=False)[:, 0]
    logo(attributions, axes[0])
    axes[0].set(xlim=(0.5, width + 0.5), ylabel="attribution", title=title)
    if ism is not None:
        limit = float(np.nanmax(np.abs(ism))) or 1.0
        image = axes[1].imshow(ism, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                               extent=(0.5, width + 0.5, 3.5, -0.5))
        axes[1].set(yticks=range(4), yticklabels=list(BASES), xlabel="position on the insert",
                    ylabel="substituted base")
        fig.colorbar(image, ax=axes[1], orientation="horizontal", fraction=0.08, pad=0.35,
                     label="ISM: predicted change")
    else:
        axes[0].set_xlabel("position on the insert")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_variant_effects(effects: pd.DataFrame, path: str | Path | None = None,
                         labelled: int = LABELLED_VARIANTS) -> Figure:
    """Predicted effects ranked from the largest increase to the largest decrease, the
    ``labelled`` largest of each kind named by id."""
    order = np.argsort(-effects["delta"].to_numpy(), kind="stable")
    delta = effects["delta"].to_numpy()[order]
    ids = effects["id"].astype(str).to_numpy()[order]
    rank = np.arange(1, len(delta) + 1)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.scatter(rank, delta, s=6, c=np.sign(delta), cmap="coolwarm", vmin=-1, vmax=1)
    ax.axhline(0, color="grey", lw=0.8)
    shown = [i for i in range(min(labelled, len(delta))) if delta[i] > 0]
    shown += [i for i in range(max(0, len(delta) - labelled), len(delta)) if delta[i] < 0]
    for i in shown:
        ax.annotate(ids[i], (rank[i], delta[i]), fontsize=7, xytext=(4, 0), textcoords="offset points")
    ax.set(xlabel="rank", ylabel="predicted change (alt - ref)", title=f"Variant effects (n = {len(delta):,})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_motif(pfm: np.ndarray, cwm: np.ndarray, title: str, path: str | Path | None = None) -> Figure:
    """A discovered motif: its attribution logo (CWM) over its information-content logo (PFM)."""
    import logomaker

    fig = Figure(figsize=(max(4.0, 0.45 * pfm.shape[1] + 1.5), 4.2))
    top, bottom = fig.subplots(2, 1)
    logo(cwm, top)
    top.set_ylabel("attribution")
    top.set_title(title, fontsize=9)
    information = logomaker.transform_matrix(_matrix_frame(pfm), from_type="probability", to_type="information")
    logo(information.to_numpy().T, bottom)
    bottom.set(ylabel="bits", ylim=(0, 2), xlabel="position")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_marginalization(table: pd.DataFrame, motif: str, first_position: int, path: str | Path | None = None
                         ) -> Figure:
    """Mean predicted change (± 1 sd over the backgrounds) of inserting ``motif`` by position and
    strand; window position ``first_position`` is numbered 1."""
    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    for strand, colour in (("+", "tab:red"), ("-", "tab:blue")):
        rows = table[table["strand"] == strand]
        x = rows["position"].to_numpy() - first_position + 1
        ax.plot(x, rows["mean"], color=colour, label=f"{strand} strand")
        ax.fill_between(x, rows["mean"] - rows["sd"], rows["mean"] + rows["sd"], color=colour, alpha=0.15)
    ax.axhline(0, color="grey", lw=0.8)
    n = int(table["n"].iloc[0]) if len(table) else 0
    ax.set(xlabel="motif start on the insert", ylabel="predicted change",
           title=f"{motif} inserted into {n} background sequences")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
