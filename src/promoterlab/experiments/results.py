"""Aggregate a folder of training runs into per-run rows, per-configuration statistics and
paired model comparisons.

Runs are read by :mod:`promoterlab.experiments.runs` (re-exported here). A *configuration*
is every axis value but ``seed``; its seeds are its replicates.

Fit label (per configuration, from the means over its seeds; the gap is train − validation
Pearson at the final epoch). Train Pearson is the one training logs: over the epoch's training
batches as they were fitted (training mode, RC copies included, weights still moving), so it
lags a clean re-evaluation and the gap is, if anything, understated; the thresholds allow for
that:

- ``overfit`` when the gap exceeds ``OVERFIT_GAP`` (0.10): the model fits its training
  sequences much better than unseen ones;
- ``underfit`` when the gap is below ``UNDERFIT_GAP`` (0.02) and the best validation epoch is
  the last epoch in at least half of the seeds: validation was still improving with no sign
  of overfitting, so more epochs or capacity would likely help;
- ``balanced`` otherwise.

Model comparison: a model is paired with the baseline run of the same seed (same seed = same
data split) at the same values of the other axes. With test predictions, Δ is the mean over
pairs of test Pearson(model) − Pearson(baseline), and its 95 % interval comes from a paired
bootstrap over test sequences (the same resampled sequences for every run in a draw), so it
reflects the finite test set, not seed-to-seed variation. Without test predictions, Δ is the
mean difference in best validation Pearson with a Student-t interval over seeds. The verdict is
``better`` when the whole interval is above 0, ``worse`` when it is below 0, else
``no difference``; ``seeds_better`` counts the pairs the model wins, since the bootstrap
interval does not cover seed-to-seed variation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from promoterlab.experiments.bootstrap import paired_bootstrap_delta, read_test_predictions
from promoterlab.experiments.runs import (COMPARISON_COLUMNS, DREAM_SCORES, RUN_COLUMNS, SEED, SUMMARY_COLUMNS,
                                          axis_columns, collect_runs, collect_sweeps, find_run_dirs, iter_groups)
from promoterlab.files import write_text_atomic
from promoterlab.runs import TEST_PREDICTIONS

__all__ = ["COMPARISON_RULE", "FIT_RULE", "RUN_COLUMNS", "SUMMARY_COLUMNS", "analyse", "axis_columns",
           "collect_runs", "collect_sweeps", "fit_label", "find_run_dirs", "iter_groups", "markdown_table",
           "mean_sd_ci", "paired_comparison", "read_test_predictions", "seed_deltas", "summarise", "verdict",
           "write_tables"]

OVERFIT_GAP = 0.10
UNDERFIT_GAP = 0.02
CONFIDENCE = 0.95
FIT_RULE = (f"overfit: final train − val Pearson gap > {OVERFIT_GAP:.2f}; underfit: gap < {UNDERFIT_GAP:.2f} "
            "and the best validation epoch is the last one in at least half of the seeds; "
            "balanced: otherwise (means over seeds; train Pearson as logged over the epoch's training batches).")
COMPARISON_RULE = ("Each model is paired with the baseline run of the same seed (same split) at the same values "
                   "of the other axes. Δ = mean over pairs of test Pearson(model) − Pearson(baseline); 95 % CI "
                   "from a paired bootstrap over test sequences (basis 'test bootstrap'), or, without test "
                   "predictions, a Student-t interval over seeds of the best validation Pearson difference "
                   "(basis 'val seeds'). Verdict: better if CI low > 0, worse if CI high < 0, else no difference. "
                   "The bootstrap covers the finite test set only, so 'seeds_better' counts the pairs in which the "
                   "model wins: trust a verdict the seeds agree with.")


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Statistics over the seeds of every configuration of :func:`collect_runs`' frame.

    Returns
    -------
    pandas.DataFrame
        One row per configuration, sorted by the axis columns: ``n_seeds``; mean, sample SD and
        95 % CI half-width (Student t, n − 1 df; NaN for one seed) of the best validation
        Pearson and, when any run has one, of the test Pearson; mean final ``loss_gap`` and
        ``pearson_gap``; ``best_is_last`` (fraction of seeds whose best epoch was the last);
        ``fit`` (see the module docstring); mean and SD of the DREAM scores when any run has
        them; mean ``best_epoch`` and ``epochs``, ``cap_hits`` (runs that trained every epoch
        of the cap); mean ``train_seconds`` and seconds per epoch; ``params``.
    """
    axes = axis_columns(runs)
    has_test = runs["test_pearson"].notna().any()
    has_dream = all(c in runs for c in DREAM_SCORES) and runs[DREAM_SCORES[0]].notna().any()
    rows = []
    for key, group in iter_groups(runs, axes):
        row: dict[str, Any] = {**key, "n_seeds": len(group)}
        metrics = ("val_pearson", "best_val_pearson"), ("test_pearson", "test_pearson")
        for name, column in metrics if has_test else metrics[:1]:
            mean, sd, half = mean_sd_ci(group[column].dropna())
            row.update({f"{name}_mean": mean, f"{name}_sd": sd, f"{name}_ci95": half})
        for column in DREAM_SCORES if has_dream else ():
            row[f"{column}_mean"], row[f"{column}_sd"], _ = mean_sd_ci(group[column].dropna())
        row["loss_gap_mean"] = group["loss_gap"].mean()
        row["pearson_gap_mean"] = group["pearson_gap"].mean()
        row["best_is_last"] = float((group["best_epoch"] >= group["epochs"]).mean())
        row["fit"] = fit_label(row["pearson_gap_mean"], row["best_is_last"])
        row["best_epoch_mean"] = group["best_epoch"].mean()
        row["epochs_mean"] = group["epochs"].mean()
        row["cap_hits"] = int((group["hit_cap"] == True).sum())  # noqa: E712 (None where unknown)
        row["train_seconds_mean"] = group["train_seconds"].mean()
        row["seconds_per_epoch_mean"] = (group["train_seconds"] / group["epochs"]).mean()
        row["params"] = group["params"].iloc[0]
        rows.append(row)
    return _sorted(pd.DataFrame(rows), axes)


def mean_sd_ci(values: pd.Series | np.ndarray) -> tuple[float, float, float]:
    """Mean, sample SD and 95 % Student-t CI half-width (SD and CI are NaN for fewer than 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    if n == 1:
        return float(values[0]), math.nan, math.nan
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n))
    return float(values.mean()), sd, half


def fit_label(pearson_gap: float, best_is_last: float) -> str:
    """``overfit``, ``underfit`` or ``balanced`` by the rule of the module docstring."""
    if pearson_gap > OVERFIT_GAP:
        return "overfit"
    if pearson_gap < UNDERFIT_GAP and best_is_last >= 0.5:
        return "underfit"
    return "balanced"


def paired_comparison(runs: pd.DataFrame, baseline: Any = "legnet", model_axis: str = "model",
                      n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every model against ``baseline`` on paired seeds, at each value of the other axes.

    Parameters
    ----------
    runs : pandas.DataFrame
        Frame of :func:`collect_runs`.
    baseline : object
        Value of ``model_axis`` to compare against (also matched by its string form).
    model_axis : str
        Axis whose values are compared (any axis, e.g. ``model.rho``).
    n_boot : int
        Bootstrap draws over test sequences.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        The other axes, ``model_axis``, ``baseline``, ``n_pairs``, ``seeds_better`` (pairs in
        which the model's own Pearson is higher: the bootstrap interval covers the finite test
        set, this shows whether the seeds agree), ``delta``, ``ci_low``,
        ``ci_high``, ``verdict`` and ``basis`` (``test bootstrap`` or ``val seeds``); empty,
        with these columns, when there is no baseline run.

    Raises
    ------
    ValueError
        When paired runs' test predictions are not of the same test sequences.
    """
    others = [axis for axis in axis_columns(runs) if axis != model_axis]
    columns = [*others, model_axis, *COMPARISON_COLUMNS]
    rng = np.random.default_rng(seed)
    rows = []
    for key, model, base, candidates, seeds in _seed_pairs(runs, baseline, model_axis):
        pairs = [(candidates.at[s, "run_dir"], base.at[s, "run_dir"]) for s in seeds]
        if all((Path(d) / TEST_PREDICTIONS).exists() for pair in pairs for d in pair):
            delta, low, high = paired_bootstrap_delta(pairs, n_boot, rng)
            basis = "test bootstrap"
            wins = int((candidates.loc[seeds, "test_pearson"] > base.loc[seeds, "test_pearson"]).sum())
        else:
            diffs = candidates.loc[seeds, "best_val_pearson"] - base.loc[seeds, "best_val_pearson"]
            delta, _, half = mean_sd_ci(diffs)
            low, high = delta - half, delta + half
            basis = "val seeds"
            wins = int((diffs > 0).sum())
        rows.append({**key, model_axis: model, "baseline": base[model_axis].iloc[0], "n_pairs": len(seeds),
                     "seeds_better": f"{wins}/{len(seeds)}", "delta": delta, "ci_low": low, "ci_high": high,
                     "verdict": verdict(low, high), "basis": basis})
    return _sorted(pd.DataFrame(rows, columns=columns), [*others, model_axis])


def seed_deltas(runs: pd.DataFrame, column: str, baseline: Any = "legnet", model_axis: str = "model") -> pd.DataFrame:
    """Every model against ``baseline`` on paired seeds in a per-run metric without per-sequence
    predictions to bootstrap (e.g. the official DREAM scores).

    Returns
    -------
    pandas.DataFrame
        As :func:`paired_comparison`, plus ``metric`` (= ``column``): Δ is the mean over the
        seeds both runs have a value for, its CI a Student-t interval over those seeds
        (basis ``seeds``; none for a single seed, verdict then ``no difference``).
    """
    others = [axis for axis in axis_columns(runs) if axis != model_axis]
    columns = [*others, model_axis, "metric", *COMPARISON_COLUMNS]
    rows = []
    if column in runs:
        for key, model, base, candidates, seeds in _seed_pairs(runs, baseline, model_axis):
            diffs = (candidates.loc[seeds, column] - base.loc[seeds, column]).dropna()
            if diffs.empty:
                continue
            delta, _, half = mean_sd_ci(diffs)
            low, high = delta - half, delta + half
            rows.append({**key, model_axis: model, "metric": column, "baseline": base[model_axis].iloc[0],
                         "n_pairs": len(diffs), "seeds_better": f"{int((diffs > 0).sum())}/{len(diffs)}",
                         "delta": delta, "ci_low": low, "ci_high": high,
                         "verdict": verdict(low, high) if len(diffs) > 1 else "no difference", "basis": "seeds"})
    return _sorted(pd.DataFrame(rows, columns=columns), [*others, model_axis])


def _seed_pairs(runs: pd.DataFrame, baseline: Any, model_axis: str) -> Iterator[tuple]:
    """``(other axes' values, model, baseline rows, model rows, shared seeds)`` for every model
    with a baseline run of the same seed at the same values of the other axes (rows indexed by seed)."""
    axes = axis_columns(runs)
    if model_axis not in runs:
        if model_axis == "model":
            return
        raise ValueError(f"no axis {model_axis!r} in these runs (axes: {', '.join(axes) or 'none'})")
    is_base = (runs[model_axis] == baseline) | (runs[model_axis].astype(str) == str(baseline))
    try:  # --baseline 0 should find rho 0.0
        is_base |= pd.to_numeric(runs[model_axis], errors="coerce") == float(baseline)
    except (TypeError, ValueError):
        pass
    if not is_base.any():
        return
    for key, group in iter_groups(runs, [axis for axis in axes if axis != model_axis]):
        base = group[is_base.loc[group.index]].drop_duplicates(SEED).set_index(SEED)
        for model, candidates in group[~is_base.loc[group.index]].groupby(model_axis, sort=False):
            candidates = candidates.drop_duplicates(SEED).set_index(SEED)
            seeds = sorted(set(base.index) & set(candidates.index))
            if seeds:
                yield key, model, base, candidates, seeds


def analyse(runs_dir: str | Path, baseline: Any = "legnet",
            model_axis: str = "model") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(runs, summary, comparison)`` of a runs folder: :func:`collect_runs`, :func:`summarise`
    and :func:`paired_comparison` in one call."""
    runs = collect_runs(runs_dir)
    return runs, summarise(runs), paired_comparison(runs, baseline=baseline, model_axis=model_axis)


def verdict(ci_low: float, ci_high: float) -> str:
    """``better`` if the interval lies above 0, ``worse`` if below, else ``no difference``."""
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "no difference"


def write_tables(summary: pd.DataFrame, comparison: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``summary.csv``/``.md`` and ``comparison.csv``/``.md`` in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (("summary", summary), ("comparison", comparison)):
        for suffix, text in ((".csv", frame.to_csv(index=False)), (".md", markdown_table(frame) + "\n")):
            path = out / f"{name}{suffix}"
            write_text_atomic(path, text)
            paths.append(path)
    return paths


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table of ``frame`` (:meth:`pandas.DataFrame.to_markdown`, pipe format).

    Floats are rounded to ``digits`` decimals and NaN is left empty; other values are written
    as they are (a text axis value such as ``1e-3`` is not reformatted), with ``|`` escaped.
    Numeric columns are right-aligned.
    """
    def cell(value: Any) -> str:
        if value is pd.NA:
            return ""
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    cells = frame.astype(object).map(cell) if len(frame.columns) else frame
    align = ["right" if pd.api.types.is_numeric_dtype(frame[c]) else "left" for c in frame.columns]
    return cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align or None)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not keys or frame.empty:
        return frame.reset_index(drop=True)
    try:
        return frame.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)
    except TypeError:  # an axis mixing numbers and strings
        return frame.sort_values(keys, key=lambda column: column.astype(str), kind="stable").reset_index(drop=True)
