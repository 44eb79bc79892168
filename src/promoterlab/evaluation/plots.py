"""Figures of a run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from promoterlab.files import atomic_path  # noqa: E402


def plot_curves(history: pd.DataFrame, path: str | Path) -> None:
    """Loss and Pearson per epoch, train and validation, side by side."""
    fig, (ax_loss, ax_r) = plt.subplots(1, 2, figsize=(9, 3.5))
    for split, style in (("train", "-o"), ("val", "-s")):
        ax_loss.plot(history["epoch"], history[f"{split}_loss"], style, ms=3, label=split)
        ax_r.plot(history["epoch"], history[f"{split}_pearson"], style, ms=3, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_r.set(xlabel="epoch", ylabel="Pearson r", title="Pearson")
    for ax in (ax_loss, ax_r):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> None:
    """Save to a temp file beside ``path`` (format from its suffix), then rename into place."""
    _save_atomic(fig, Path(path), dpi)
    plt.close(fig)


def save_figure_formats(fig: plt.Figure, path: str | Path, formats: tuple[str, ...] = ("png", "svg"),
                        dpi: int = 120) -> list[Path]:
    """Save ``fig`` once per format, each atomically, and close it.

    ``path`` is the file name without a suffix (a suffix that is one of ``formats`` is
    dropped); returns the written paths, e.g. ``[fig.png, fig.svg]``.
    """
    base = Path(path)
    if base.suffix.lstrip(".") in formats:
        base = base.with_suffix("")
    paths = [base.with_name(f"{base.name}.{fmt}") for fmt in formats]
    for target in paths:
        _save_atomic(fig, target, dpi)
    plt.close(fig)
    return paths


def _save_atomic(fig: plt.Figure, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip("."))
