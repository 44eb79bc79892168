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
