"""Paired bootstrap over test sequences: the difference in test Pearson between paired runs.

Every draw resamples the test sequences once and scores every run on that same resample, so
the interval of a difference reflects the finite test set with the runs' errors paired.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from promoterlab.evaluation.bootstrap import bootstrap_pearson
from promoterlab.evaluation.bootstrap import weighted_pearson as pearson_weighted
from promoterlab.runs import TEST_PREDICTIONS


def read_test_predictions(run_dir: str | Path) -> pd.DataFrame:
    """``test_predictions.tsv`` of a run (columns ``index``, ``target``, ``prediction``)."""
    return pd.read_csv(Path(run_dir) / TEST_PREDICTIONS, sep="\t")


def paired_bootstrap_delta(pairs: list[tuple[str, str]], n_boot: int, rng: np.random.Generator,
                           chunk_cells: int = 4_000_000) -> tuple[float, float, float]:
    """Δ test Pearson (model − baseline, mean over pairs) and its 95 % paired-bootstrap percentile CI.

    Parameters
    ----------
    pairs : list of (str, str)
        ``(model run folder, baseline run folder)`` per seed; each holds ``test_predictions.tsv``.
    n_boot : int
        Bootstrap draws.
    rng : numpy.random.Generator
        Source of the resamples.
    chunk_cells : int
        Draws are made in chunks of about this many sequence counts (bounds the memory).

    Returns
    -------
    tuple of float
        ``(delta, ci_low, ci_high)``.

    Raises
    ------
    ValueError
        When the runs' test predictions are not of the same test sequences.
    """
    frames = [read_test_predictions(d) for pair in pairs for d in pair]
    target = frames[0]["target"].to_numpy(np.float64)
    for frame, run in zip(frames, [d for pair in pairs for d in pair]):
        if len(frame) != len(target) or not np.allclose(frame["target"].to_numpy(np.float64), target):
            raise ValueError(f"{run}: test predictions are not of the same test sequences as {pairs[0][0]}")
    # Columns alternate model, baseline, model, baseline, ...
    preds = np.column_stack([frame["prediction"].to_numpy(np.float64) for frame in frames])
    sign = np.tile([1.0, -1.0], len(pairs)) / len(pairs)
    return bootstrap_pearson(target, preds, sign, n_boot, rng, chunk_cells)


