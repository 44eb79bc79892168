"""The Python API that the command line wraps.

Every function that takes a trained model takes a run: a run folder, an ensemble folder, several
folders, a folder of runs or a glob pattern (:class:`~promoterlab.runs.Run`). An ensemble
predicts the mean of its models, with their standard deviation ``sd`` and ``n_models``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from promoterlab.data.dataset import load_split
from promoterlab.evaluation.ensemble import calibration, plot_calibration
from promoterlab.evaluation.metrics import held_out_metrics, regression_metrics
from promoterlab.evaluation.plots import plot_val_scatter
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict, predict_sequences
from promoterlab.evaluation.stream import (CHUNK_ROWS, RunPredictor, Runs, iter_predictions, measured_predictions,
                                           open_run, write_predictions)
from promoterlab.runs import Run, load_run
from promoterlab.training.outcome import read_split
from promoterlab.training.train import train, train_ensemble


def evaluate(run: Runs, data_path: str | Path, seq_col: str | None = None, target_col: str | None = None,
             batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
             precision: str = "auto", calibration_plot: str | Path | None = None,
             scatter_plot: str | Path | None = None) -> dict[str, float]:
    """Pearson, Spearman, MSE and n of a run (or an ensemble's mean) on a measured file.

    Rows with a missing target (e.g. ``nan`` in the DREAM public test file) are skipped; a file
    with no measured row is a ``ValueError``. An ensemble adds ``n_models`` and the
    :func:`~promoterlab.evaluation.ensemble.calibration` of its sd (``within_1sd``,
    ``within_2sd``, ``spearman_error_sd``), and with ``calibration_plot`` saves its figure
    (:func:`~promoterlab.evaluation.ensemble.plot_calibration`) there; ``scatter_plot`` saves
    predicted against measured values (:func:`~promoterlab.evaluation.plots.plot_val_scatter`).
    """
    frame = measured_predictions(run, data_path, seq_col, target_col, batch_size, device, progress, precision)
    return _metrics(frame, calibration_plot, Path(data_path).name, scatter_plot)


def evaluate_split(run: Runs, role: str = "test", batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
                   precision: str = "auto", calibration_plot: str | Path | None = None,
                   scatter_plot: str | Path | None = None) -> dict[str, float]:
    """:func:`evaluate` on the rows a run held out from its own training file (``role`` ``test``
    or ``val``), drawn again from its config and checked against its saved ``split.npz``; with
    95 % bootstrap intervals. The singleton channel is 0, as at prediction.

    Raises
    ------
    ValueError
        When the run has no such rows (trained with ``test_size`` 0 or a test file), or its
        training file no longer gives the saved split.
    """
    if role not in ("test", "val"):
        raise ValueError(f"role must be test or val, not {role!r}")
    run = open_run(run)
    config = run.config
    split = load_split(config.data, config.seed)
    saved = read_split(run.members[0])
    if split.n_rows != int(saved["n_rows"]) or any(
            len(saved[name]) != len(getattr(split.rows, name)) or (saved[name] != getattr(split.rows, name)).any()
            for name in ("train", "val", "test")):
        raise ValueError(f"{config.data.path}: no longer gives the split this run saved in its split.npz "
                         "(the file changed?)")
    rows = split.test if role == "test" else split.val
    if rows is None or not len(rows):
        raise ValueError(f"{run.name}: holds out no {role} rows of its training file (trained with "
                         f"--test-size 0{' or --test FILE' if role == 'test' else ''})")
    prediction, extra = RunPredictor(run, batch_size, device, precision)(rows.codes)
    frame = pd.DataFrame({"target": rows.targets.numpy(), "prediction": prediction, **extra})
    metrics = _metrics(frame, calibration_plot, f"held-out {role} rows of {Path(str(config.data.path)).name}",
                       scatter_plot)
    intervals = held_out_metrics(frame["prediction"].to_numpy(), frame["target"].to_numpy())
    return {**metrics, "pearson_ci95": intervals["pearson_ci95"], "spearman_ci95": intervals["spearman_ci95"]}


def _metrics(frame: pd.DataFrame, calibration_plot: str | Path | None, title: str,
             scatter_plot: str | Path | None = None) -> dict:
    metrics = regression_metrics(frame["prediction"].to_numpy(), frame["target"].to_numpy())
    if scatter_plot is not None:
        plot_val_scatter(frame["prediction"].to_numpy(), frame["target"].to_numpy(), scatter_plot, title=title)
    if calibration_plot is not None and "sd" not in frame:
        raise ValueError("a calibration plot needs an ensemble (several runs): one model has no sd")
    if "sd" in frame:
        y, mean, sd = frame["target"].to_numpy(), frame["prediction"].to_numpy(), frame["sd"].to_numpy()
        if calibration_plot is not None:
            plot_calibration(y, mean, sd, calibration_plot, title=title)
        metrics.update({"n_models": int(frame["n_models"].iloc[0]),
                        **{k: v for k, v in calibration(y, mean, sd).items() if k != "n"}})
    return metrics


def predict_file(run: Runs, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                 batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                 precision: str = "auto", interval: float | None = None) -> pd.DataFrame:
    """All of :func:`~promoterlab.evaluation.stream.iter_predictions` in one frame (``id``, ``seq``,
    ``prediction``, and ``sd``, ``n_models`` for an ensemble; ``lower``, ``upper`` with ``interval``)."""
    return pd.concat(list(iter_predictions(run, path, seq_col, id_col, batch_size, device, progress, precision,
                                           interval=interval)), ignore_index=True)


__all__ = ["CHUNK_ROWS", "Run", "evaluate", "evaluate_split", "iter_predictions", "load_run", "measured_predictions",
           "predict", "predict_file", "predict_sequences", "train", "train_ensemble", "write_predictions"]
