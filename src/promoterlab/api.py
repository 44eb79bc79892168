"""The Python API that the command line wraps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from promoterlab.data.dataset import encode_frame
from promoterlab.data.readers import read_sequences, read_table
from promoterlab.evaluation.metrics import regression_metrics
from promoterlab.evaluation.predict import predict, predict_sequences
from promoterlab.training.run import load_run, train


def evaluate(run_dir: str | Path, data_path: str | Path, seq_col: str | None = None,
             target_col: str | None = None, batch_size: int = 128, device: str = "cpu",
             progress: bool = False) -> dict[str, float]:
    """Pearson, Spearman, MSE and n of a trained run on a measured file.

    Rows with a missing target (e.g. ``nan`` in the DREAM public test file) are skipped.
    """
    frame = measured_predictions(run_dir, data_path, seq_col, target_col, batch_size, device, progress)
    return regression_metrics(frame["prediction"].to_numpy(), frame["target"].to_numpy())


def measured_predictions(run_dir: str | Path, data_path: str | Path, seq_col: str | None = None,
                         target_col: str | None = None, batch_size: int = 128, device: str = "cpu",
                         progress: bool = False) -> pd.DataFrame:
    """Predictions of a trained run next to the measured values of a file.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (row among the measured rows), ``target``, ``prediction``.
    """
    model, config = load_run(run_dir, device)
    frame = read_table(data_path, seq_col=seq_col, target_col=target_col, drop_missing=True)
    data = config.data
    encoded = encode_frame(frame, data.seq_len, data.left_adapter, data.upstream, False, data_path)
    pred = predict(model, encoded.codes, batch_size=batch_size, device=device, progress=progress)
    return pd.DataFrame({"index": range(len(pred)), "target": encoded.targets.numpy(), "prediction": pred})


def predict_file(run_dir: str | Path, path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                 batch_size: int = 128, device: str = "cpu", progress: bool = False) -> pd.DataFrame:
    """Predictions of a trained run for a FASTA, DREAM text or CSV/TSV file.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``seq``, ``prediction`` in input order (RC-averaged).
    """
    model, config = load_run(run_dir, device)
    frame = read_sequences(path, seq_col=seq_col, id_col=id_col)
    frame["prediction"] = predict_sequences(model, frame["seq"].tolist(), config, batch_size, device, progress)
    return frame[["id", "seq", "prediction"]]


__all__ = ["evaluate", "measured_predictions", "predict_file", "load_run", "predict", "predict_sequences", "train"]
