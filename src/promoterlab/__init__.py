"""promoterlab: predict gene expression from promoter DNA with LegNet and its hybrids.

The public API (``train``, ``load_run``, ``predict``, ``predict_sequences``, ``evaluate``) is
imported on first use, so that ``import promoterlab`` stays light and has no side effects: it
imports neither torch-heavy training code nor Lightning or Optuna, selects no matplotlib
backend and installs no warning filters.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promoterlab.version import __version__

_API = ("Run", "evaluate", "load_run", "predict", "predict_sequences", "train")
_SUBMODULES = ("api", "cli", "config", "data", "datasets", "evaluation", "experiments", "files", "models", "objective",
               "pretrained", "runs", "training")

__all__ = ["__version__", *_API]

if TYPE_CHECKING:
    from promoterlab.api import Run, evaluate, load_run, predict, predict_sequences, train


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module("promoterlab.api"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, *_SUBMODULES})
