"""Agreement between predictions and measurements."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(target) == 0:
        return float("nan")
    return float(pearsonr(pred, target).statistic)


def spearman(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(target) == 0:
        return float("nan")
    return float(spearmanr(pred, target).statistic)


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman, MSE and n."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return {"pearson": pearson(pred, target), "spearman": spearman(pred, target),
            "mse": float(np.mean((pred - target) ** 2)) if len(pred) else float("nan"), "n": int(len(pred))}


def held_out_metrics(pred: np.ndarray, target: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """:func:`regression_metrics` of a held-out set with 95 % bootstrap intervals.

    The sequences are resampled ``n_boot`` times; ``pearson_ci95`` is the percentile interval of
    Pearson r over the resamples and ``spearman_ci95`` that of the Pearson r of the ranks (the
    Spearman correlation, with ranks taken once on the whole set).
    """
    from scipy.stats import rankdata

    from promoterlab.evaluation.bootstrap import bootstrap_pearson

    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    metrics = regression_metrics(pred, target)
    for name, p, t in (("pearson", pred, target), ("spearman", rankdata(pred), rankdata(target))):
        interval = [float("nan"), float("nan")]
        if np.isfinite(metrics[name]):
            _, low, high = bootstrap_pearson(t, p[:, None], np.ones(1), n_boot=n_boot, seed=seed)
            interval = [float(low), float(high)]
        metrics[f"{name}_ci95"] = interval
    return metrics
