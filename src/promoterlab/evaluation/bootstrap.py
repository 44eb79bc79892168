"""Paired bootstrap over test sequences for differences in Pearson r between models.

Every draw resamples the test sequences once and recomputes every model's Pearson r on that
same resample, so the interval of a difference reflects only the finite test set, with the
models' shared errors cancelling (Efron & Tibshirani 1993, ch. 16).
"""

from __future__ import annotations

import numpy as np


def weighted_pearson(weights: np.ndarray, preds: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r of every prediction column with ``target`` under each row of sequence weights.

    Parameters
    ----------
    weights : numpy.ndarray
        ``(draws, n)`` non-negative weights of the ``n`` sequences (counts of a resample).
    preds : numpy.ndarray
        ``(n, k)`` predictions of ``k`` models.
    target : numpy.ndarray
        ``(n,)`` measured values.

    Returns
    -------
    numpy.ndarray
        ``(draws, k)`` Pearson r (NaN where a resample has no variance).
    """
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


def bootstrap_pearson(target: np.ndarray, preds: np.ndarray, contrast: np.ndarray, n_boot: int = 2000,
                      seed: int | np.random.Generator = 0, chunk_cells: int = 4_000_000
                      ) -> tuple[float, float, float]:
    """A linear contrast of the models' Pearson r and its paired-bootstrap 95 % percentile interval.

    Parameters
    ----------
    target : numpy.ndarray
        ``(n,)`` measured values.
    preds : numpy.ndarray
        ``(n, k)`` predictions of ``k`` models on the same sequences.
    contrast : numpy.ndarray
        ``(k,)`` weights: the statistic is ``r @ contrast`` (e.g. ``[1/2, 1/2, -1/2, -1/2]``
        for the mean of two models minus the mean of two others).
    n_boot : int
        Bootstrap draws.
    seed : int or numpy.random.Generator
        Seed (or generator) of the resampling.
    chunk_cells : int
        Draws are made in chunks of about this many sequence counts (bounds the memory).

    Returns
    -------
    (float, float, float)
        The statistic on the full test set, and the 2.5 and 97.5 percentiles over draws.
    """
    target = np.asarray(target, dtype=np.float64)
    preds = np.asarray(preds, dtype=np.float64).reshape(len(target), -1)
    contrast = np.asarray(contrast, dtype=np.float64)
    if contrast.shape != (preds.shape[1],):
        raise ValueError(f"contrast has {contrast.size} weights for {preds.shape[1]} prediction columns")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = len(target)
    value = float(weighted_pearson(np.ones((1, n)), preds, target)[0] @ contrast)
    draws = []
    size = max(1, chunk_cells // n)
    for start in range(0, n_boot, size):
        rows = min(size, n_boot - start)
        # A resample of the sequences as counts per sequence: row b says how often each one was drawn.
        picks = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        draws.append(weighted_pearson(counts, preds, target) @ contrast)
    low, high = np.nanpercentile(np.concatenate(draws), [2.5, 97.5])
    return value, float(low), float(high)


def paired_delta(target: np.ndarray, model: np.ndarray, baseline: np.ndarray, n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean Pearson r of ``model``'s columns minus that of ``baseline``'s, with a bootstrap CI.

    ``model`` and ``baseline`` are ``(n,)`` or ``(n, k)`` predictions (e.g. ``k`` seeds each,
    paired by column, or one ensemble against its members); see :func:`bootstrap_pearson`.
    """
    target = np.asarray(target, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64).reshape(len(target), -1)
    baseline = np.asarray(baseline, dtype=np.float64).reshape(len(target), -1)
    contrast = np.concatenate([np.full(model.shape[1], 1 / model.shape[1]),
                               np.full(baseline.shape[1], -1 / baseline.shape[1])])
    return bootstrap_pearson(target, np.hstack([model, baseline]), contrast, n_boot, seed)
