"""The Python API that the command line wraps."""

from __future__ import annotations

from pathlib import Path

from promoterlab.data.dataset import encode_frame
from promoterlab.data.readers import read_table
from promoterlab.evaluation.metrics import regression_metrics
from promoterlab.evaluation.predict import predict, predict_sequences
from promoterlab.training.run import load_run, train


def evaluate(run_dir: str | Path, data_path: str | Path, seq_col: str | None = None,
             target_col: str | None = None, batch_size: int = 128, device: str = "cpu",
             progress: bool = False) -> dict[str, float]:
    """Pearson, Spearman, MSE and n of a trained run on a measured file.

    Rows with a missing target (e.g. ``nan`` in the DREAM public test file) are skipped.
    """
    model, config = load_run(run_dir, device)
    frame = read_table(data_path, seq_col=seq_col, target_col=target_col, drop_missing=True)
    data = config.data
    encoded = encode_frame(frame, data.seq_len, data.left_adapter, data.upstream, False, data_path)
    pred = predict(model, encoded.codes, batch_size=batch_size, device=device, progress=progress)
    return regression_metrics(pred, encoded.targets.numpy())


__all__ = ["evaluate", "load_run", "predict", "predict_sequences", "train"]
