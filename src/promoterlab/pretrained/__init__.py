"""Published LegNet weights: a registry, and their download, verification and conversion into run folders.

The registry (:mod:`promoterlab.pretrained.registry`) is imported here; the downloader and the
converter (:mod:`promoterlab.pretrained.fetch`, which import torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from promoterlab.pretrained.registry import (
    MODELS_URL_VAR,
    PRETRAINED,
    PretrainedModel,
    ReportedMetric,
    UnknownModelError,
    get_pretrained,
    list_pretrained,
    models_url,
)

_FETCH = ("download_weights", "fetch_pretrained", "import_weights", "read_state_dict", "weights_path")

__all__ = ["MODELS_URL_VAR", "PRETRAINED", "PretrainedModel", "ReportedMetric", "UnknownModelError",
           "get_pretrained", "list_pretrained", "models_url", *_FETCH]


def __getattr__(name: str) -> Any:
    if name in _FETCH:
        return getattr(importlib.import_module("promoterlab.pretrained.fetch"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
