"""Predictions of a run (one model or an ensemble) for sequence files of any size, chunk by chunk.

The file is read, laid out (with the run's layout) and predicted ``chunk_rows`` rows at a time;
an ensemble predicts its members' mean with their standard deviation ``sd`` and ``n_models``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import iter_sequences, iter_table
from promoterlab.evaluation.calibration import load_calibration, member_moments, scale_features
from promoterlab.evaluation.ensemble import ensemble_predict
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict
from promoterlab.files import check_output, output_stream
from promoterlab.models.autotune import apply_choice, choose_kernels
from promoterlab.models.fold import fold_batchnorm
from promoterlab.precision import resolve_precision
from promoterlab.runs import Run

CHUNK_ROWS = 50_000
# Prediction measures its kernels (models/autotune.py) when its first chunk has this many rows,
# for at most PREDICT_TUNE_SECONDS; smaller inputs use a cached choice or the precision's rule.
PREDICT_TUNE_ROWS = 20_000
PREDICT_TUNE_SECONDS = 10.0
Runs = Run | str | Path | Sequence[str | Path]


def open_run(run: Runs) -> Run:
    """``run`` itself, or the :class:`~promoterlab.runs.Run` its paths name."""
    return run if isinstance(run, Run) else Run.open(run)


class RunPredictor:
    """A run's models loaded once (BatchNorm folded), predicting codes as one model or an ensemble."""

    def __init__(self, run: Runs, batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
                 precision: str = "auto", interval: float | None = None):
        self.run = open_run(run)
        # Before the models load: a run without a calibration fails at once.
        self.calibration = load_calibration(self.run) if interval is not None else None
        if self.calibration is not None:
            self.calibration.multiplier(interval)  # checks the level
        self.interval = interval
        members = self.run.load_members(device)
        self.members = [(fold_batchnorm(model), config) for model, config in members]
        self.layout = self.members[0][1].data.layout
        self.batch_size, self.device, self.precision = batch_size, device, precision
        self._tuned = False

    def tune(self, rows: int) -> None:
        """Set on each (folded) member the formulation that predicts fastest here: cached, measured
        for an input of :data:`PREDICT_TUNE_ROWS` rows or more, else the precision's rule."""
        resolved = resolve_precision(self.precision, self.device)
        seconds = PREDICT_TUNE_SECONDS if rows >= PREDICT_TUNE_ROWS else 0.0
        for model, _ in self.members:
            apply_choice(model, choose_kernels(model, "predict", resolved, self.batch_size, device=self.device,
                                               max_seconds=seconds))
        self._tuned = True

    def __call__(self, codes) -> tuple[np.ndarray, dict]:
        """Predictions of ``codes``, and for an ensemble ``{"sd": ..., "n_models": ...}``."""
        if not self._tuned:
            self.tune(len(codes))
        if self.calibration is not None:
            moments = member_moments(self.members, codes, self.batch_size, self.device, self.precision, fold=False,
                                     second_moment=self.calibration.feature == "predictive_sd")
            lower, upper = self.calibration.interval(moments.mean, scale_features(moments), self.interval)
            spread = {"sd": moments.sd, "n_models": len(self.members)} if self.run.ensemble else {}
            return moments.mean, {**spread, "lower": lower, "upper": upper}
        if not self.run.ensemble:
            return predict(self.members[0][0], codes, batch_size=self.batch_size, device=self.device,
                           precision=self.precision, fold=False), {}
        result = ensemble_predict(self.members, codes, [str(m) for m in self.run.members], batch_size=self.batch_size,
                                  device=self.device, precision=self.precision, fold=False)
        return result.mean, {"sd": result.sd, "n_models": result.n_models}


def iter_predictions(run: Runs, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                     batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                     precision: str = "auto", chunk_rows: int = CHUNK_ROWS, strict: bool = False,
                     interval: float | None = None) -> Iterator[pd.DataFrame]:
    """Predictions of a run for a FASTA, DREAM text or CSV/TSV file, chunk by chunk.

    Each chunk has the columns ``id``, ``seq``, ``prediction`` (RC-averaged), in input order, and
    for an ensemble ``sd``, ``n_models``; with ``interval`` (a level such as 0.9) ``lower`` and
    ``upper``, the run's calibrated interval (:mod:`promoterlab.evaluation.calibration`); a bad
    row raises :class:`~promoterlab.data.readers.DataError` naming its line. An id that repeats an
    earlier one is warned about once, or refused with ``strict``.
    """
    predictor = RunPredictor(run, batch_size, device, precision, interval)
    bar = tqdm(disable=not progress, desc="predict", unit=" seq")
    for chunk in iter_sequences(path, seq_col, id_col, chunk_rows, strict):
        codes = encode_sequences(chunk["seq"], predictor.layout, path, chunk["line"].to_numpy())
        chunk["prediction"], extra = predictor(codes)
        bar.update(len(chunk))
        yield chunk[["id", "seq", "prediction"]].assign(**extra)
    bar.close()


def measured_predictions(run: Runs, path: str | Path, seq_col: str | None = None, target_col: str | None = None,
                         batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                         precision: str = "auto", chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Predictions of a run next to the measured values of a file (rows without a value skipped).

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (row among the measured rows), ``target``, ``prediction`` (for an
        ensemble, the mean, with ``sd`` and ``n_models``).

    Raises
    ------
    ValueError
        When no row of the file has a measured value.
    """
    predictor = RunPredictor(run, batch_size, device, precision)
    parts = []
    bar = tqdm(disable=not progress, desc="predict", unit=" seq")
    for chunk in iter_table(path, seq_col, target_col, drop_missing=True, chunk_rows=chunk_rows):
        if chunk.empty:
            continue
        codes = encode_sequences(chunk["seq"], predictor.layout, path, chunk["line"].to_numpy())
        prediction, extra = predictor(codes)
        parts.append(pd.DataFrame({"target": chunk["target"].to_numpy(dtype=np.float32), "prediction": prediction,
                                   **extra}))
        bar.update(len(chunk))
    bar.close()
    if not parts:
        raise ValueError(f"{path}: no row has a measured value")
    result = pd.concat(parts, ignore_index=True)
    result.insert(0, "index", range(len(result)))
    return result


def write_predictions(run: Runs, path: str | Path, output: str | Path, seq_col: str | None = None,
                      id_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
                      progress: bool = False, precision: str = "auto", chunk_rows: int = CHUNK_ROWS,
                      inputs: Sequence[str | Path] = (), strict: bool = False,
                      interval: float | None = None) -> int:
    """Stream predictions for ``path`` into the TSV ``output`` (``-`` for standard output).

    Rows are written as their chunk is predicted; a regular file appears, renamed into place,
    only when every row succeeded (see :func:`promoterlab.files.output_stream`). Returns the
    number of sequences. ``output`` may not be ``path`` nor any of ``inputs`` (e.g. the run's files).
    """
    inputs = [path, *inputs]
    check_output(output, inputs)
    n = 0
    with output_stream(output, inputs=inputs) as handle:
        for chunk in iter_predictions(run, path, seq_col, id_col, batch_size, device, progress, precision,
                                      chunk_rows, strict, interval):
            chunk.to_csv(handle, sep="\t", index=False, header=n == 0, lineterminator="\n")
            n += len(chunk)
    return n
