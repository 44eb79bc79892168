"""Aggregate a folder of training runs into per-run rows, per-configuration statistics and
paired model comparisons.

A run is a folder holding ``summary.json`` (found one or two levels below the runs folder);
folders without it are unfinished and skipped. Its axis values come from ``axes.json`` (written
by a sweep) or, without one, are ``model``, ``train_size`` and ``seed`` from its config and
summary. A *configuration* is every axis value but ``seed``; its seeds are its replicates.

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

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from promoterlab.experiments.spec import resolve_key
from promoterlab.files import write_text_atomic

SEED = "seed"
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

RUN_COLUMNS = ["run", "run_dir", SEED, "best_val_pearson", "best_val_spearman", "best_epoch", "epochs",
               "train_seconds", "params", "test_pearson", "test_spearman", "loss_gap", "pearson_gap"]
SUMMARY_COLUMNS = ["n_seeds", "val_pearson_mean", "val_pearson_sd", "val_pearson_ci95", "test_pearson_mean",
                   "test_pearson_sd", "test_pearson_ci95", "loss_gap_mean", "pearson_gap_mean", "best_is_last",
                   "fit", "train_seconds_mean", "params"]
COMPARISON_COLUMNS = ["baseline", "n_pairs", "seeds_better", "delta", "ci_low", "ci_high", "verdict", "basis"]
_RESERVED = set(RUN_COLUMNS) | set(SUMMARY_COLUMNS) | set(COMPARISON_COLUMNS)


def find_run_dirs(runs_dir: str | Path) -> list[Path]:
    """Finished run folders (holding ``summary.json``) in ``runs_dir`` or one or two levels below."""
    root = Path(runs_dir)
    found = {p.parent for pattern in ("summary.json", "*/summary.json", "*/*/summary.json")
             for p in root.glob(pattern)}
    return sorted(found)


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
        summary metrics, ``test_pearson``/``test_spearman`` (NaN without a test evaluation) and
        the final-epoch gaps ``loss_gap`` (train − val loss; negative when the training data is
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
        except (ValueError, yaml.YAMLError) as err:  # JSONDecodeError is a ValueError
            raise ValueError(f"{run_dir}: unreadable run files: {err}") from None
        axes += [key for key in values if key not in axes and key != SEED]
        rows.append({"run": run_dir.relative_to(root).as_posix(), "run_dir": str(run_dir), **values, **metrics})
    frame = pd.DataFrame(rows)[["run", "run_dir", *axes, *RUN_COLUMNS[2:]]]
    repeated = frame.duplicated([*axes, SEED], keep=False)
    if repeated.any():
        raise ValueError(f"{root}: runs {', '.join(frame.loc[repeated, 'run'][:4])} have the same axis values and "
                         "seed (several sweeps in one folder?); point at one sweep folder")
    return frame


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


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Statistics over the seeds of every configuration of :func:`collect_runs`' frame.

    Returns
    -------
    pandas.DataFrame
        One row per configuration, sorted by the axis columns: ``n_seeds``; mean, sample SD and
        95 % CI half-width (Student t, n − 1 df; NaN for one seed) of the best validation
        Pearson and, when any run has one, of the test Pearson; mean final ``loss_gap`` and
        ``pearson_gap``; ``best_is_last`` (fraction of seeds whose best epoch was the last);
        ``fit`` (see the module docstring); mean ``train_seconds`` and ``params``.
    """
    axes = axis_columns(runs)
    has_test = runs["test_pearson"].notna().any()
    rows = []
    for key, group in iter_groups(runs, axes):
        row: dict[str, Any] = {**key, "n_seeds": len(group)}
        metrics = ("val_pearson", "best_val_pearson"), ("test_pearson", "test_pearson")
        for name, column in metrics if has_test else metrics[:1]:
            mean, sd, half = mean_sd_ci(group[column].dropna())
            row.update({f"{name}_mean": mean, f"{name}_sd": sd, f"{name}_ci95": half})
        row["loss_gap_mean"] = group["loss_gap"].mean()
        row["pearson_gap_mean"] = group["pearson_gap"].mean()
        row["best_is_last"] = float((group["best_epoch"] >= group["epochs"]).mean())
        row["fit"] = fit_label(row["pearson_gap_mean"], row["best_is_last"])
        row["train_seconds_mean"] = group["train_seconds"].mean()
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
    axes = axis_columns(runs)
    others = [axis for axis in axes if axis != model_axis]
    columns = [*others, model_axis, *COMPARISON_COLUMNS]
    if model_axis not in runs:
        if model_axis == "model":
            return pd.DataFrame(columns=columns)
        raise ValueError(f"no axis {model_axis!r} in these runs (axes: {', '.join(axes) or 'none'})")
    is_base = (runs[model_axis] == baseline) | (runs[model_axis].astype(str) == str(baseline))
    try:  # --baseline 0 should find rho 0.0
        is_base |= pd.to_numeric(runs[model_axis], errors="coerce") == float(baseline)
    except (TypeError, ValueError):
        pass
    if not is_base.any():
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in iter_groups(runs, others):
        base = group[is_base.loc[group.index]].drop_duplicates(SEED).set_index(SEED)
        for model, candidates in group[~is_base.loc[group.index]].groupby(model_axis, sort=False):
            candidates = candidates.drop_duplicates(SEED).set_index(SEED)
            seeds = sorted(set(base.index) & set(candidates.index))
            if not seeds:
                continue
            pairs = [(candidates.at[s, "run_dir"], base.at[s, "run_dir"]) for s in seeds]
            if all((Path(d) / "test_predictions.tsv").exists() for pair in pairs for d in pair):
                delta, low, high = _bootstrap_delta(pairs, n_boot, rng)
                basis = "test bootstrap"
                wins = int((candidates.loc[seeds, "test_pearson"] > base.loc[seeds, "test_pearson"]).sum())
            else:
                diffs = candidates.loc[seeds, "best_val_pearson"] - base.loc[seeds, "best_val_pearson"]
                delta, _, half = mean_sd_ci(diffs)
                low, high = delta - half, delta + half
                basis = "val seeds"
                wins = int((diffs > 0).sum())
            rows.append({**key, model_axis: model, "baseline": base[model_axis].iloc[0], "n_pairs": len(seeds),
                         "seeds_better": f"{wins}/{len(seeds)}",
                         "delta": delta, "ci_low": low, "ci_high": high,
                         "verdict": verdict(low, high), "basis": basis})
    return _sorted(pd.DataFrame(rows, columns=columns), [*others, model_axis])


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
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    cells = frame.astype(object).map(cell) if len(frame.columns) else frame
    align = ["right" if pd.api.types.is_numeric_dtype(frame[c]) else "left" for c in frame.columns]
    return cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align or None)


def read_test_predictions(run_dir: str | Path) -> pd.DataFrame:
    """``test_predictions.tsv`` of a run (columns ``index``, ``target``, ``prediction``)."""
    return pd.read_csv(Path(run_dir) / "test_predictions.tsv", sep="\t")


def _axis_values(run_dir: Path) -> dict[str, Any]:
    axes_path, config_path = run_dir / "axes.json", run_dir / "config.yaml"
    summary = json.loads((run_dir / "summary.json").read_text())
    if axes_path.exists():
        values = json.loads(axes_path.read_text())
    else:
        config = (yaml.safe_load(config_path.read_text()) or {}) if config_path.exists() else {}
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
    summary = json.loads((run_dir / "summary.json").read_text())
    row = {key: summary.get(key, math.nan) for key in RUN_COLUMNS[3:9]}
    test_path = run_dir / "test_metrics.json"
    test = json.loads(test_path.read_text()) if test_path.exists() else {}
    row["test_pearson"] = test.get("pearson", math.nan)
    row["test_spearman"] = test.get("spearman", math.nan)
    row["loss_gap"] = row["pearson_gap"] = math.nan
    metrics_path = run_dir / "metrics.csv"
    if metrics_path.exists():
        history = pd.read_csv(metrics_path)
        if len(history):
            last = history.iloc[-1]
            row["loss_gap"] = float(last["train_loss"] - last["val_loss"])
            row["pearson_gap"] = float(last["train_pearson"] - last["val_pearson"])
    return row


def _bootstrap_delta(pairs: list[tuple[str, str]], n_boot: int, rng: np.random.Generator,
                     chunk_cells: int = 4_000_000) -> tuple[float, float, float]:
    """Δ test Pearson (model − baseline, mean over pairs) and its paired-bootstrap percentile CI."""
    frames = [read_test_predictions(d) for pair in pairs for d in pair]
    target = frames[0]["target"].to_numpy(np.float64)
    for frame, run in zip(frames, [d for pair in pairs for d in pair]):
        if len(frame) != len(target) or not np.allclose(frame["target"].to_numpy(np.float64), target):
            raise ValueError(f"{run}: test predictions are not of the same test sequences as {pairs[0][0]}")
    # Columns alternate model, baseline, model, baseline, ...
    preds = np.column_stack([frame["prediction"].to_numpy(np.float64) for frame in frames])
    sign = np.tile([1.0, -1.0], len(pairs)) / len(pairs)
    n = len(target)
    delta = float(_pearson_weighted(np.ones((1, n)), preds, target)[0] @ sign)
    draws = []
    size = max(1, chunk_cells // n)
    for start in range(0, n_boot, size):
        rows = min(size, n_boot - start)
        # A resample of the sequences as counts per sequence: row b says how often each one was drawn.
        picks = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        draws.append(_pearson_weighted(counts, preds, target) @ sign)
    low, high = np.nanpercentile(np.concatenate(draws), [2.5, 97.5])
    return delta, float(low), float(high)


def _pearson_weighted(weights: np.ndarray, preds: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r of every prediction column with ``target`` under each row of sequence weights."""
    # Centred first, so that the one-pass moments below lose no precision.
    preds = preds - preds.mean(axis=0)
    target = (target - target.mean())[:, None]
    k = preds.shape[1]
    moments = weights @ np.hstack([preds, preds**2, preds * target, target, target**2])
    moments /= weights.sum(axis=1, keepdims=True)
    mean_p, mean_pp, mean_pt = moments[:, :k], moments[:, k:2 * k], moments[:, 2 * k:3 * k]
    mean_t, mean_tt = moments[:, -2:-1], moments[:, -1:]
    cov = mean_pt - mean_p * mean_t
    var_p = mean_pp - mean_p**2
    var_t = mean_tt - mean_t**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(var_p * var_t)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not keys or frame.empty:
        return frame.reset_index(drop=True)
    try:
        return frame.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)
    except TypeError:  # an axis mixing numbers and strings
        return frame.sort_values(keys, key=lambda column: column.astype(str), kind="stable").reset_index(drop=True)
