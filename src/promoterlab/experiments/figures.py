"""Figures of a runs folder: training curves, overlays along one axis, every run of a model,
data-size curves, models side by side and predicted-versus-measured scatters. Each is saved as
PNG and SVG.

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so nothing here
selects a backend (see :mod:`promoterlab.evaluation.plots`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullLocator

from promoterlab.evaluation.plots import plot_curves, plot_val_scatter, save_figure_formats
from promoterlab.experiments.naming import slug
from promoterlab.experiments.results import axis_columns, iter_groups, read_test_predictions
from promoterlab.runs import METRICS, TEST_PREDICTIONS

FORMATS = ("png", "svg")


def plot_run_curves(run_dir: str | Path, out_path: str | Path) -> list[Path]:
    """Loss and Pearson per epoch of one run (its ``metrics.csv``), as PNG and SVG."""
    history = pd.read_csv(Path(run_dir) / METRICS)
    return save_figure_formats(plot_curves(history), out_path, FORMATS)


def plot_overlay(runs: pd.DataFrame, axis: str, out_path: str | Path,
                 fixed: dict[str, Any] | None = None) -> list[Path]:
    """Train (dashed) and validation (solid) Pearson and loss per epoch, one colour per value of ``axis``.

    Parameters
    ----------
    runs : pandas.DataFrame
        Frame of :func:`promoterlab.experiments.results.collect_runs`.
    axis : str
        The axis whose values are overlaid; curves are means over seeds.
    out_path : str or Path
        File name without suffix (``.png`` and ``.svg`` are written).
    fixed : dict, optional
        Values of the other axes to select; other axes with several values are fixed at their
        first (sorted) value.
    """
    if axis not in axis_columns(runs):
        raise ValueError(f"no axis {axis!r}; axes are {axis_columns(runs)}")
    fixed = dict(fixed or {})
    for other in axis_columns(runs):
        if other != axis and other not in fixed and runs[other].nunique(dropna=False) > 1:
            fixed[other] = _ordered(runs[other].unique())[0]
    selected = _select(runs, fixed)
    histories = []
    for run_dir, value in zip(selected["run_dir"], selected[axis]):
        if not (Path(run_dir) / METRICS).exists():
            continue
        history = pd.read_csv(Path(run_dir) / METRICS)
        history[axis] = value
        histories.append(history)
    if not histories:
        raise ValueError(f"no run with metrics.csv at {fixed or 'any values'}")
    curves = pd.concat(histories).groupby([axis, "epoch"], dropna=False, sort=False).mean(numeric_only=True)
    values = _ordered(selected[axis].unique())
    colours = _colours(values)
    fig = Figure(figsize=(10, 4))
    ax_r, ax_loss = fig.subplots(1, 2)
    for value, colour in zip(values, colours):
        curve = curves.xs(value, level=axis) if not _isna(value) else curves[curves.index.get_level_values(0).isna()]
        epochs = curve.index.get_level_values("epoch")
        for ax, metric in ((ax_r, "pearson"), (ax_loss, "loss")):
            ax.plot(epochs, curve[f"val_{metric}"], "-", color=colour)
            ax.plot(epochs, curve[f"train_{metric}"], "--", color=colour, alpha=0.8)
    ax_r.set(xlabel="epoch", ylabel="Pearson r", title="Pearson")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    handles = [Line2D([], [], color=c, label=str(v)) for v, c in zip(values, colours)]
    handles += [Line2D([], [], color="grey", ls="-", label="validation"),
                Line2D([], [], color="grey", ls="--", label="train")]
    ax_loss.legend(handles=handles, title=axis, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    for ax in (ax_r, ax_loss):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    where = ", ".join(f"{k}={v}" for k, v in fixed.items())
    fig.suptitle(f"by {axis} (mean over seeds{'; ' + where if where else ''})")
    fig.tight_layout()
    return save_figure_formats(fig, out_path, FORMATS)


def plot_size_curve(summary: pd.DataFrame, out_path: str | Path, size_axis: str = "train_size",
                    model_axis: str = "model", metric: str = "val", panel_axis: str | None = None) -> list[Path]:
    """Pearson against training-set size (log2 axis), one line per model, 95 % CI error bars.

    ``metric`` is ``val`` (best validation Pearson) or ``test``; lines are the combinations of
    every axis but ``size_axis`` (and ``panel_axis``) of
    :func:`promoterlab.experiments.results.summarise`' frame, in the same colour in every panel.
    With ``panel_axis`` (e.g. ``dataset``) each of its values gets a panel of its own.
    """
    mean, half = _metric_columns(summary, metric)
    if size_axis not in summary:
        raise ValueError(f"no axis {size_axis!r} in the summary")
    panel_axis = panel_axis if panel_axis in summary else None
    lines = [a for a in axis_columns(summary) if a not in (size_axis, panel_axis)]
    labels = list(dict.fromkeys(_label(key, model_axis) for key, _ in iter_groups(summary, lines)))
    colours = dict(zip(labels, _colours(list(range(len(labels))), qualitative=True)))
    panels = list(iter_groups(summary, [panel_axis] if panel_axis else []))
    fig = Figure(figsize=(1.5 + 5.0 * len(panels), 4.2))
    for ax, (panel_key, panel) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        groups = list(iter_groups(panel, lines))
        for i, (key, group) in enumerate(groups):
            group = group.dropna(subset=[size_axis, mean]).sort_values(size_axis)
            # A small horizontal dodge keeps overlapping error bars apart.
            dodge = 2.0 ** (0.04 * (i - (len(groups) - 1) / 2))
            label = _label(key, model_axis)
            ax.errorbar(group[size_axis] * dodge, group[mean], yerr=group[half].fillna(0), fmt="-o", ms=4,
                        capsize=3, color=colours[label], label=label)
        sizes = sorted(panel[size_axis].dropna().unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, labels=[f"{int(s):,}" if float(s).is_integer() else str(s) for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        if sizes:  # room around the sizes, so that the dodge stays small beside them
            ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
        where = f"{panel_axis}={panel_key[panel_axis]}: " if panel_axis else ""
        ax.set(xlabel=size_axis, ylabel=f"{metric} Pearson r",
               title=f"{where}{metric} Pearson vs {size_axis} (mean, 95 % CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure_formats(fig, out_path, FORMATS)


def plot_model_runs(runs: pd.DataFrame, model: Any, out_path: str | Path, model_axis: str = "model") -> list[Path]:
    """Pearson and loss per epoch of every run of one model: one colour per combination of the
    other axes (e.g. dataset and size), validation solid, train dashed, a dot at each run's best
    epoch and, when any run trained to its epoch cap, a dotted line at the cap.

    Runs that stop early end where they stopped, so nothing is averaged over unequal lengths.
    """
    selected = runs[runs[model_axis] == model] if model_axis in runs else runs
    others = [a for a in axis_columns(runs) if a != model_axis and selected[a].nunique(dropna=False) > 1]
    groups = list(iter_groups(selected, others))
    colours = _colours(list(range(len(groups))), qualitative=True)
    fig = Figure(figsize=(10, 4))
    ax_r, ax_loss = fig.subplots(1, 2)
    handles = []
    for (key, group), colour in zip(groups, colours):
        for run_dir, best_epoch in zip(group["run_dir"], group["best_epoch"]):
            if not (Path(run_dir) / METRICS).exists():
                continue
            history = pd.read_csv(Path(run_dir) / METRICS)
            for ax, metric in ((ax_r, "pearson"), (ax_loss, "loss")):
                ax.plot(history["epoch"], history[f"val_{metric}"], "-", color=colour, lw=1)
                ax.plot(history["epoch"], history[f"train_{metric}"], "--", color=colour, lw=0.8, alpha=0.7)
            best = history[history["epoch"] == best_epoch]
            ax_r.plot(best["epoch"], best["val_pearson"], "o", color=colour, ms=4)
        handles.append(Line2D([], [], color=colour, label=", ".join(f"{k}={v}" for k, v in key.items()) or "runs"))
    capped = selected[selected["hit_cap"] == True] if "hit_cap" in selected else selected.iloc[:0]  # noqa: E712
    caps = capped["max_epochs"].dropna().unique()
    for cap in caps:
        for ax in (ax_r, ax_loss):
            ax.axvline(cap, color="black", ls=":", lw=1)
    handles += [Line2D([], [], color="grey", ls="-", label="validation"),
                Line2D([], [], color="grey", ls="--", label="train"),
                Line2D([], [], color="grey", ls="", marker="o", label="best epoch")]
    if len(caps):
        handles.append(Line2D([], [], color="black", ls=":", label="epoch cap (hit)"))
    ax_r.set(xlabel="epoch", ylabel="Pearson r", title="Pearson")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    for ax in (ax_r, ax_loss):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{model}: every run ({len(selected)})")
    fig.tight_layout()
    return save_figure_formats(fig, out_path, FORMATS)


def plot_models_bar(summary: pd.DataFrame, out_path: str | Path, size_axis: str = "train_size",
                    model_axis: str = "model", metric: str = "val") -> list[Path]:
    """Mean Pearson per configuration with 95 % CI error bars, one panel per value of ``size_axis``.

    Bars are the combinations of every other axis; the y axis is zoomed to the bars' range.
    """
    mean, half = _metric_columns(summary, metric)
    others = [a for a in axis_columns(summary) if a != size_axis]
    panels = list(iter_groups(summary, [size_axis] if size_axis in summary else []))
    labels = list(dict.fromkeys(_label(key, model_axis) for key, _ in iter_groups(summary, others)))
    colours = dict(zip(labels, _colours(list(range(len(labels))), qualitative=True)))
    fig = Figure(figsize=(1.2 + max(2.5, 0.55 * len(labels)) * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
    for ax, (panel_key, panel) in zip(axes[0], panels):
        bars = [(_label(key, model_axis), row) for key, row in iter_groups(panel, others)]
        names = [name for name, _ in bars]
        heights = [float(row[mean].iloc[0]) for _, row in bars]
        errors = [float(np.nan_to_num(row[half].iloc[0])) for _, row in bars]
        ax.bar(range(len(bars)), heights, yerr=errors, capsize=3, color=[colours[n] for n in names])
        ax.set_xticks(range(len(bars)), labels=names, rotation=35, ha="right", fontsize=8)
        ax.set_title(", ".join(f"{k}={v}" for k, v in panel_key.items()) or "all runs", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    low = (summary[mean] - summary[half].fillna(0)).min()
    high = (summary[mean] + summary[half].fillna(0)).max()
    if np.isfinite(low) and np.isfinite(high):
        margin = max(0.02, 0.15 * (high - low))
        axes[0][0].set_ylim(max(0.0, low - margin) if low >= 0 else low - margin, high + margin)
    axes[0][0].set_ylabel(f"{metric} Pearson r (mean, 95 % CI)")
    fig.tight_layout()
    return save_figure_formats(fig, out_path, FORMATS)


def plot_scatter(pred_frame: pd.DataFrame, out_path: str | Path, title: str) -> list[Path]:
    """Predicted against measured values as a hexbin density (log counts), with Pearson r and n in
    the title (:func:`promoterlab.evaluation.plots.plot_val_scatter`)."""
    fig = plot_val_scatter(pred_frame["prediction"], pred_frame["target"], title=title)
    return save_figure_formats(fig, out_path, FORMATS)


def write_figures(runs: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path,
                  model_axis: str = "model", size_axis: str = "train_size", run_curves: bool = True,
                  panel_axis: str | None = None) -> list[Path]:
    """Every applicable figure of a runs folder, as PNG and SVG in ``out_dir``.

    Writes ``curves/<run>`` per run (unless ``run_curves`` is false),
    ``overlay_<axis>[__<other axes>]`` per axis with several values (at each combination of
    the other such axes that has two or more of them), ``runs_<model>`` (every run of a model),
    ``size_curve_<metric>`` when ``size_axis`` has several values (a panel per value of
    ``panel_axis``, e.g. ``dataset``, which is not overlaid), ``models_bar_<metric>``, and
    ``scatter_<model>[__<panel>]`` for the run of best validation Pearson of each model (and
    panel value) that has test predictions (``metric`` is ``val`` and, with test results,
    ``test``).

    Returns
    -------
    list of Path
        Every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if run_curves:
        (out / "curves").mkdir(exist_ok=True)
    for run, run_dir in zip(runs["run"], runs["run_dir"]) if run_curves else ():
        if (Path(run_dir) / METRICS).exists():
            paths += plot_run_curves(run_dir, out / "curves" / slug(run))
    varying = [a for a in axis_columns(runs) if runs[a].nunique(dropna=False) > 1]
    for axis in [a for a in varying if a != panel_axis]:
        others = [a for a in varying if a != axis]
        for key, group in iter_groups(runs, others):
            if group[axis].nunique(dropna=False) < 2:
                continue
            where = "__".join(f"{k}={v}" for k, v in key.items())
            paths += plot_overlay(runs, axis, out / slug(f"overlay_{axis}{'__' + where if where else ''}"), key)
    for model in _ordered(runs[model_axis].unique()) if model_axis in runs else ():
        paths += plot_model_runs(runs, model, out / slug(f"runs_{model}"), model_axis)
    metrics = ["val"]
    if "test_pearson_mean" in summary and summary["test_pearson_mean"].notna().any():
        metrics.append("test")
    for metric in metrics:
        if size_axis in varying:
            paths += plot_size_curve(summary, out / f"size_curve_{metric}", size_axis, model_axis, metric, panel_axis)
        paths += plot_models_bar(summary, out / f"models_bar_{metric}", size_axis, model_axis, metric)
    with_test = runs[[(Path(d) / TEST_PREDICTIONS).exists() for d in runs["run_dir"]]]
    by_model = [a for a in (model_axis, panel_axis) if a and a in with_test]
    for key, group in iter_groups(with_test, by_model):
        if group.empty:
            continue
        best = group.loc[group["best_val_pearson"].idxmax()]
        name = str(key.get(model_axis, "best")) + (f"__{key[panel_axis]}" if panel_axis in key else "")
        paths += plot_scatter(read_test_predictions(best["run_dir"]), out / slug(f"scatter_{name}"),
                              f"{name}: {best['run']}")
    return paths


def _metric_columns(summary: pd.DataFrame, metric: str) -> tuple[str, str]:
    if metric not in ("val", "test"):
        raise ValueError(f"metric must be 'val' or 'test', not {metric!r}")
    mean, half = f"{metric}_pearson_mean", f"{metric}_pearson_ci95"
    if mean not in summary or summary[mean].isna().all():
        raise ValueError(f"the summary has no {metric} Pearson")
    return mean, half


def _select(runs: pd.DataFrame, fixed: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=runs.index)
    for key, value in fixed.items():
        mask &= runs[key].isna() if _isna(value) else runs[key] == value
    return runs[mask]


def _ordered(values: Any) -> list[Any]:
    """Values sorted (numbers numerically, anything else by text), missing last."""
    present = [v for v in values if not _isna(v)]
    try:
        present = sorted(present)
    except TypeError:
        present = sorted(present, key=str)
    return present + [v for v in values if _isna(v)][:1]


def _colours(values: list[Any], qualitative: bool = False) -> list[Any]:
    """Sequential colours for ordered numeric values, the tab10 cycle for anything else."""
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
    if numeric and not qualitative and len(values) > 1:
        return list(matplotlib.colormaps["viridis"](np.linspace(0.05, 0.85, len(values))))
    cycle = matplotlib.colormaps["tab10"].colors
    return [cycle[i % len(cycle)] for i in range(len(values))]


def _label(key: dict[str, Any], model_axis: str) -> str:
    parts = [str(v) if k == model_axis else f"{k}={v}" for k, v in key.items()]
    return ", ".join(parts) or "all runs"


def _isna(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value) or value is None
