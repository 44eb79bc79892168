"""The Python API that the command line wraps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from promoterlab.data.dataset import encode_frame, encode_sequences
from promoterlab.data.readers import iter_sequences, read_table
from promoterlab.evaluation.metrics import regression_metrics
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict, predict_sequences
from promoterlab.files import check_output, output_stream
from promoterlab.models.fold import fold_batchnorm
from promoterlab.training.run import load_run, train

CHUNK_ROWS = 50_000


def evaluate(run_dir: str | Path, data_path: str | Path, seq_col: str | None = None,
             target_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
             progress: bool = False, precision: str = "auto") -> dict[str, float]:
    """Pearson, Spearman, MSE and n of a trained run on a measured file.

    Rows with a missing target (e.g. ``nan`` in the DREAM public test file) are skipped; a file
    with no measured row is a ``ValueError``.
    """
    frame = measured_predictions(run_dir, data_path, seq_col, target_col, batch_size, device, progress, precision)
    return regression_metrics(frame["prediction"].to_numpy(), frame["target"].to_numpy())


def measured_predictions(run_dir: str | Path, data_path: str | Path, seq_col: str | None = None,
                         target_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE,
                         device: str = "cpu", progress: bool = False, precision: str = "auto") -> pd.DataFrame:
    """Predictions of a trained run next to the measured values of a file.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (row among the measured rows), ``target``, ``prediction``.
    """
    model, config = load_run(run_dir, device)
    frame = read_table(data_path, seq_col=seq_col, target_col=target_col, drop_missing=True)
    if frame.empty:
        raise ValueError(f"{data_path}: no row has a measured value")
    encoded = encode_frame(frame, config.data.layout, False, data_path)
    pred = predict(model, encoded.codes, batch_size=batch_size, device=device, progress=progress,
                   precision=precision)
    return pd.DataFrame({"index": range(len(pred)), "target": encoded.targets.numpy(), "prediction": pred})


def iter_predictions(run_dir: str | Path, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                     batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                     precision: str = "auto", chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Predictions of a trained run for a FASTA, DREAM text or CSV/TSV file, chunk by chunk.

    At most ``chunk_rows`` sequences are in memory at once, so files of any size stream
    through. Each chunk has the columns ``id``, ``seq``, ``prediction`` (RC-averaged), in input
    order; a bad row raises :class:`~promoterlab.data.readers.DataError` naming its line.
    """
    model, config = load_run(run_dir, device)
    model = fold_batchnorm(model)
    bar = tqdm(disable=not progress, desc="predict", unit=" seq")
    for chunk in iter_sequences(path, seq_col, id_col, chunk_rows):
        codes = encode_sequences(chunk["seq"], config.data.layout, path, chunk["line"].to_numpy())
        chunk["prediction"] = predict(model, codes, batch_size=batch_size, device=device, precision=precision,
                                      fold=False)
        bar.update(len(chunk))
        yield chunk[["id", "seq", "prediction"]]
    bar.close()


def predict_file(run_dir: str | Path, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                 batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", progress: bool = False,
                 precision: str = "auto") -> pd.DataFrame:
    """All of :func:`iter_predictions` in one frame (``id``, ``seq``, ``prediction``)."""
    return pd.concat(list(iter_predictions(run_dir, path, seq_col, id_col, batch_size, device, progress,
                                           precision)), ignore_index=True)


def write_predictions(run_dir: str | Path, path: str | Path, output: str | Path, seq_col: str | None = None,
                      id_col: str | None = None, batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu",
                      progress: bool = False, precision: str = "auto", chunk_rows: int = CHUNK_ROWS,
                      inputs: Sequence[str | Path] = ()) -> int:
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
                                      chunk_rows):
            chunk.to_csv(handle, sep="\t", index=False, header=n == 0, lineterminator="\n")
            n += len(chunk)
    return n


__all__ = ["evaluate", "iter_predictions", "load_run", "measured_predictions", "predict", "predict_file",
           "predict_sequences", "train", "write_predictions"]
