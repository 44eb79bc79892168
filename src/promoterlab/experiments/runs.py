"""Read a folder of training runs into one row per run: axis values, summary metrics, test
metrics, convergence and final-epoch gaps.

A run is a folder holding ``summary.json`` (found one or two levels below the runs folder);
folders without it are unfinished and skipped. Its axis values come from ``axes.json`` (written
by a sweep) or, without one, are ``model``, ``train_size`` and ``seed`` from its config and
summary. A *configuration* is every axis value but ``seed``; its seeds are its replicates.

Convergence: every run records ``best_epoch`` (the epoch of convergence: best validation
Pearson), ``epochs`` (epochs trained), ``max_epochs`` (the configured cap) and ``hit_cap``
(trained all ``max_epochs`` without stopping early, i.e. early stopping never fired; with
``schedule: plateau``, the cool-down was started by the cap, not by a plateau). A plateau run also
records ``plateau_epoch``: the epoch after which validation stopped improving and the cool-down
began (NaN for other runs and for runs the cap cooled down).

Several sweeps (e.g. one per dataset) are read together by :func:`collect_sweeps`, which adds
their label as one more axis, so that every statistic is per dataset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from promoterlab.experiments.spec import resolve_key
from promoterlab.files import read_yaml
from promoterlab.runs import AXES, CONFIG, DREAM_SCORE, METRICS, SUMMARY, TEST_METRICS, model_runs

SEED = "seed"
SUMMARY_KEYS = ["best_val_pearson", "best_val_spearman", "best_epoch", "epochs", "train_seconds", "params"]
DREAM_SCORES = ["dream_pearson_score", "dream_spearman_score"]  # official weighted scores, DREAM test sets only
RUN_COLUMNS = ["run", "run_dir", SEED, *SUMMARY_KEYS[:4], "max_epochs", "hit_cap", "plateau_epoch", *SUMMARY_KEYS[4:],
               "test_pearson", "test_spearman", *DREAM_SCORES, "loss_gap", "pearson_gap"]
SUMMARY_COLUMNS = ["n_seeds", "val_pearson_mean", "val_pearson_sd", "val_pearson_ci95", "test_pearson_mean",
                   "test_pearson_sd", "test_pearson_ci95", *(f"{s}_{x}" for s in DREAM_SCORES for x in ("mean", "sd")),
                   "loss_gap_mean", "pearson_gap_mean", "best_is_last", "fit", "best_epoch_mean", "epochs_mean",
                   "cap_hits", "train_seconds_mean", "seconds_per_epoch_mean", "params"]
COMPARISON_COLUMNS = ["baseline", "n_pairs", "seeds_better", "delta", "ci_low", "ci_high", "verdict", "basis"]
_RESERVED = set(RUN_COLUMNS) | set(SUMMARY_COLUMNS) | set(COMPARISON_COLUMNS) | {"metric"}


def find_run_dirs(runs_dir: str | Path) -> list[Path]:
    """Finished model runs (:func:`promoterlab.runs.model_runs`) in ``runs_dir`` or one or two
    levels below; an ensemble stands for its members."""
    return sorted(model_runs(runs_dir, max_depth=2))


def collect_runs(runs_dir: str | Path) -> pd.DataFrame:
    """One row per finished run of ``runs_dir``.

    Parameters
    ----------
    runs_dir : str or Path
        A sweep folder (or a folder of sweeps, or a single run folder).

    Returns
    -------
    pandas.DataFrame
        ``run`` (path relative to ``runs_dir``), ``run_dir``, one column per axis, ``seed``, the
        summary metrics, ``max_epochs`` and ``hit_cap`` (see the module docstring),
        ``test_pearson``/``test_spearman`` (NaN without a test evaluation), the official DREAM
        ``dream_pearson_score``/``dream_spearman_score`` (only when some run has them) and the
        final-epoch gaps ``loss_gap`` (train − val loss; negative when the training data is
        fitted better) and ``pearson_gap`` (train − val Pearson). An axis whose name clashes
        with one of these columns is named by its config field, e.g. ``train.epochs``.

    Raises
    ------
    ValueError
        When ``runs_dir`` holds no finished run.
    """
    root = Path(runs_dir)
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise ValueError(f"{root}: no finished run here (no summary.json in it or one or two levels below)")
    rows, axes = [], []
    for run_dir in run_dirs:
        try:
            values, metrics = _axis_values(run_dir), _run_metrics(run_dir)
        except ValueError as err:  # JSONDecodeError, and InputError of read_yaml, are ValueErrors
            raise ValueError(f"{run_dir}: unreadable run files: {err}") from None
        axes += [key for key in values if key not in axes and key != SEED]
        rows.append({"run": run_dir.relative_to(root).as_posix(), "run_dir": str(run_dir), **values, **metrics})
    frame = pd.DataFrame(rows)[["run", "run_dir", *axes, *RUN_COLUMNS[2:]]]
    frame = frame.drop(columns=[c for c in DREAM_SCORES if frame[c].isna().all()])
    repeated = frame.duplicated([*axes, SEED], keep=False)
    if repeated.any():
        raise ValueError(f"{root}: runs {', '.join(frame.loc[repeated, 'run'][:4])} have the same axis values and "
                         "seed (several sweeps in one folder?); point at one sweep folder")
    return frame


def collect_sweeps(sweeps: Mapping[str, str | Path], label: str = "dataset") -> pd.DataFrame:
    """:func:`collect_runs` of several sweep folders, each tagged with its name as axis ``label``.

    Parameters
    ----------
    sweeps : mapping of str to path
        Name (e.g. ``native``, ``DREAM``) to sweep folder, in the order the tables list them.
    label : str
        Name of the added axis (placed first among the axes).

    Returns
    -------
    pandas.DataFrame
        The runs of every sweep; ``run`` is ``<name>/<run>``. Axes a sweep lacks are NaN in its rows.

    Raises
    ------
    ValueError
        When ``sweeps`` is empty, ``label`` clashes with a column, or a folder has no finished run.
    """
    if not sweeps:
        raise ValueError("no sweep folders given")
    frames = []
    for name, folder in sweeps.items():
        frame = collect_runs(folder)
        if label in frame.columns:
            raise ValueError(f"{folder}: already has a column {label!r}; choose another label")
        frame.insert(2, label, name)
        frame["run"] = f"{name}/" + frame["run"]
        frames.append(frame)
    axes = list(dict.fromkeys(a for frame in frames for a in axis_columns(frame)))
    runs = pd.concat(frames, ignore_index=True)
    return runs[["run", "run_dir", *axes, *[c for c in RUN_COLUMNS[2:] if c in runs]]]


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The non-seed axis columns of a frame made by this module, in order."""
    return [column for column in frame.columns if column not in _RESERVED]


def iter_groups(frame: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """``(axis values, rows)`` per combination of ``keys`` (all rows at once when there are none)."""
    if not keys:
        yield {}, frame
        return
    for values, group in frame.groupby(keys, dropna=False, sort=False):
        yield dict(zip(keys, values)), group


def _axis_values(run_dir: Path) -> dict[str, Any]:
    axes_path, config_path = run_dir / AXES, run_dir / CONFIG
    summary = json.loads((run_dir / SUMMARY).read_text())
    if axes_path.exists():
        values = json.loads(axes_path.read_text())
    else:
        config = (read_yaml(config_path) or {}) if config_path.exists() else {}
        values = {"model": (config.get("model") or {}).get("name"), "train_size": summary.get("train_size"),
                  SEED: config.get(SEED, summary.get(SEED))}
    values.setdefault(SEED, summary.get(SEED))
    out = {}
    for key, value in values.items():
        if key != SEED and key in _RESERVED:
            section, name = resolve_key(key)
            key = f"{section}.{name}" if section else key
        # Lists (e.g. dilations) become strings so that configurations can be grouped.
        out[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return out


def _run_metrics(run_dir: Path) -> dict[str, Any]:
    summary = json.loads((run_dir / SUMMARY).read_text())
    row = {key: summary.get(key, math.nan) for key in SUMMARY_KEYS}
    row["max_epochs"], row["hit_cap"] = _epoch_cap(run_dir, summary)
    cooldown = summary.get("cooldown") or {}
    row["plateau_epoch"] = cooldown["first_epoch"] - 1 if cooldown.get("reason") == "plateau" else math.nan
    test_path, dream_path = run_dir / TEST_METRICS, run_dir / DREAM_SCORE
    test = json.loads(test_path.read_text()) if test_path.exists() else (summary.get("test") or {})
    row["test_pearson"] = test.get("pearson", math.nan)
    row["test_spearman"] = test.get("spearman", math.nan)
    dream = json.loads(dream_path.read_text()) if dream_path.exists() else {}
    for column in DREAM_SCORES:  # null (NaN) when a subset had no correlation
        value = dream.get(column.removeprefix("dream_"))
        row[column] = math.nan if value is None else value
    row["loss_gap"] = row["pearson_gap"] = math.nan
    metrics_path = run_dir / METRICS
    if metrics_path.exists():
        history = pd.read_csv(metrics_path)
        if len(history):
            last = history.iloc[-1]
            row["loss_gap"] = float(last["train_loss"] - last["val_loss"])
            row["pearson_gap"] = float(last["train_pearson"] - last["val_pearson"])
    return row


def _epoch_cap(run_dir: Path, summary: dict[str, Any]) -> tuple[float, Any]:
    """``(max_epochs, hit_cap)`` of a run: the configured epochs (plus fine-tuning epochs; NaN for
    ``auto``) and whether it trained them all (``None`` when neither is known)."""
    config_path = run_dir / CONFIG
    train = ((read_yaml(config_path) or {}).get("train") or {}) if config_path.exists() else {}
    epochs = train.get("epochs")
    max_epochs = float(epochs + (train.get("finetune_epochs") or 0)) if isinstance(epochs, int) else math.nan
    if "cooldown" in summary:  # schedule plateau: annealed because of a plateau or the cap
        return max_epochs, summary["cooldown"]["reason"] == "cap"
    if "stopped_early" in summary:
        return max_epochs, not summary["stopped_early"]
    if math.isnan(max_epochs) or not isinstance(summary.get("epochs"), int):
        return max_epochs, None
    return max_epochs, summary["epochs"] >= max_epochs
