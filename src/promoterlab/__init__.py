"""promoterlab: predict gene expression from promoter DNA with LegNet and its hybrids."""

__version__ = "0.1.0"

from promoterlab.api import evaluate, load_run, predict, predict_sequences, train  # noqa: E402

__all__ = ["__version__", "evaluate", "load_run", "predict", "predict_sequences", "train"]
