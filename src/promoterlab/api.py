"""The Python API that the command line wraps.

Prediction and evaluation take one run or several (run directories, sweep folders or glob
patterns, :func:`~promoterlab.evaluation.ensemble.resolve_runs`); several models predict as an
ensemble: the mean of their predictions, with their standard deviation ``sd`` and ``n_models``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import iter_sequences, iter_table
from promoterlab.evaluation.ensemble import calibration, ensemble_predict, load_ensemble, plot_calibration
from promoterlab.evaluation.metrics import regression_metrics
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict, predict_sequences
from promoterlab.files import check_output, output_stream
from promoterlab.models.fold import fold_batchnorm
from promoterlab.training.ensemble_train import train_ensemble
from promoterlab.training.run import load_run, train

CHUNK_ROWS = 50_000
Runs = str | Path | Sequence[str | Path]


def load_models(runs: Runs, device: str = "cpu") -> tuple[list[tuple], list[str]]:
    """``(model, config)`` of every run in ``runs`` and the runs' names; models must share a layout.

    One run directory (or ``model.pt``) is loaded as it is; several paths, a folder of runs or a
    glob pattern are expanded by :func:`~promoterlab.evaluation.ensemble.resolve_runs`.
    """
    paths = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if len(paths) == 1 and not _names_several(Path(paths[0])):
        return [load_run(paths[0], device)], [str(paths[0])]
    return load_ensemble(paths, device)


def _names_several(path: Path) -> bool:
    """A glob pattern, or a folder without ``model.pt`` that has runs below it."""
    if not path.exists():
        return bool(set("*?[") & set(str(path)))
    return path.is_dir() and not (path / "model.pt").exists() and any(path.rglob("model.pt"))


def evaluate(run_dir: Runs, data_path: str | Path, seq_col: str | None = None,
             target_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
             progress: bool = False, precision: str = "auto", calibration_plot: str | Path | None = None
             ) -> dict[str, float]:
    """Pearson, Spearman, MSE and n of a trained run (or an ensemble's mean) on a measured file.

    Rows with a missing target (e.g. ``nan`` in the DREAM public test file) are skipped; a file
    with no measured row is a ``ValueError``. An ensemble adds ``n_models`` and the
    :func:`~promoterlab.evaluation.ensemble.calibration` of its sd (``within_1sd``,
    ``within_2sd``, ``spearman_error_sd``), and with ``calibration_plot`` saves its figure
    (:func:`~promoterlab.evaluation.ensemble.plot_calibration`) there.
    """
    frame = measured_predictions(run_dir, data_path, seq_col, target_col, batch_size, device, progress, precision)
    metrics = regression_metrics(frame["prediction"].to_numpy(), frame["target"].to_numpy())
    if calibration_plot is not None and "sd" not in frame:
        raise ValueError("a calibration plot needs an ensemble (several runs): one model has no sd")
    if "sd" in frame:
        y, mean, sd = frame["target"].to_numpy(), frame["prediction"].to_numpy(), frame["sd"].to_numpy()
        stats = calibration(y, mean, sd)
        if calibration_plot is not None:
            plot_calibration(y, mean, sd, calibration_plot, title=Path(data_path).name)
        metrics.update({"n_models": int(frame["n_models"].iloc[0]),
                        **{k: v for k, v in stats.items() if k != "n"}})
    return metrics


def measured_predictions(run_dir: Runs, data_path: str | Path, seq_col: str | None = None,
                         target_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE,
                         device: str = "cpu", progress: bool = False, precision: str = "auto",
                         chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Predictions of a trained run next to the measured values of a file.

    The file is read, encoded and predicted ``chunk_rows`` rows at a time; only the targets and
    predictions of all rows are kept, so files of any size stream through.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (row among the measured rows), ``target``, ``prediction`` (for an
        ensemble, the mean, with ``sd`` and ``n_models``).
    """
    members, names = load_models(run_dir, device)
    members = [(fold_batchnorm(model), config) for model, config in members]
    layout = members[0][1].data.layout
    parts = []
    bar = tqdm(disable=not progress, desc="predict", unit=" seq")
    for chunk in iter_table(data_path, seq_col, target_col, drop_missing=True, chunk_rows=chunk_rows):
        if chunk.empty:
            continue
        codes = encode_sequences(chunk["seq"], layout, data_path, chunk["line"].to_numpy())
        prediction, extra = _predict_codes(members, names, codes, batch_size, device, precision, fold=False)
        parts.append(pd.DataFrame({"target": chunk["target"].to_numpy(dtype=np.float32), "prediction": prediction,
                                   **extra}))
        bar.update(len(chunk))
    bar.close()
    if not parts:
        raise ValueError(f"{data_path}: no row has a measured value")
    result = pd.concat(parts, ignore_index=True)
    result.insert(0, "index", range(len(result)))
    return result


def _predict_codes(members: list[tuple], names: list[str], codes, batch_size: int, device: str, precision: str,
                   fold: bool = True, progress: bool = False) -> tuple[np.ndarray, dict]:
    """Predictions of one model, or an ensemble's mean with ``{"sd": ..., "n_models": ...}``."""
    if len(members) == 1:
        return predict(members[0][0], codes, batch_size=batch_size, device=device, progress=progress,
                       precision=precision, fold=fold), {}
    result = ensemble_predict(members, codes, names, batch_size=batch_size, device=device, precision=precision,
                              fold=fold, progress=progress)
    return result.mean, {"sd": result.sd, "n_models": result.n_models}


def iter_predictions(run_dir: Runs, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                     batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                     precision: str = "auto", chunk_rows: int = CHUNK_ROWS, strict: bool = False
                     ) -> Iterator[pd.DataFrame]:
    """Predictions of a trained run for a FASTA, DREAM text or CSV/TSV file, chunk by chunk.

    At most ``chunk_rows`` sequences are in memory at once, so files of any size stream
    through. Each chunk has the columns ``id``, ``seq``, ``prediction`` (RC-averaged), in input
    order; a bad row raises :class:`~promoterlab.data.readers.DataError` naming its line.
    With several runs (an ensemble), ``prediction`` is their mean and ``sd``, ``n_models`` follow.
    An id that repeats an earlier one is warned about once, or refused with ``strict``
    (:func:`~promoterlab.data.readers.iter_sequences`).
    """
    members, names = load_models(run_dir, device)
    members = [(fold_batchnorm(model), config) for model, config in members]
    layout = members[0][1].data.layout
    bar = tqdm(disable=not progress, desc="predict", unit=" seq")
    for chunk in iter_sequences(path, seq_col, id_col, chunk_rows, strict):
        codes = encode_sequences(chunk["seq"], layout, path, chunk["line"].to_numpy())
        chunk["prediction"], extra = _predict_codes(members, names, codes, batch_size, device, precision, fold=False)
        bar.update(len(chunk))
        yield chunk[["id", "seq", "prediction"]].assign(**extra)
    bar.close()


def predict_file(run_dir: Runs, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                 batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                 precision: str = "auto") -> pd.DataFrame:
    """All of :func:`iter_predictions` in one frame (``id``, ``seq``, ``prediction``)."""
    return pd.concat(list(iter_predictions(run_dir, path, seq_col, id_col, batch_size, device, progress,
                                           precision)), ignore_index=True)


def write_predictions(run_dir: Runs, path: str | Path, output: str | Path, seq_col: str | None = None,
                      id_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
                      progress: bool = False, precision: str = "auto", chunk_rows: int = CHUNK_ROWS,
                      inputs: Sequence[str | Path] = (), strict: bool = False) -> int:
    """Stream predictions for ``path`` into the TSV ``output`` (``-`` for standard output).

    Rows are written as their chunk is predicted; a regular file appears, renamed into place,
    only when every row succeeded (see :func:`promoterlab.files.output_stream`). Returns the
    number of sequences. ``output`` may not be ``path`` nor any of ``inputs`` (e.g. the run's files).
    """
    inputs = [path, *inputs]
    check_output(output, inputs)
    n = 0
    with output_stream(output, inputs=inputs) as handle:
        for chunk in iter_predictions(run_dir, path, seq_col, id_col, batch_size, device, progress, precision,
                                      chunk_rows, strict):
            chunk.to_csv(handle, sep="\t", index=False, header=n == 0, lineterminator="\n")
            n += len(chunk)
    return n


__all__ = ["evaluate", "iter_predictions", "load_models", "load_run", "measured_predictions", "predict", "predict_file",
           "predict_sequences", "train", "train_ensemble", "write_predictions"]
