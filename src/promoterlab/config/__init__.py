"""Typed run configuration, saved next to every run as ``config.yaml``: ``data``
(:class:`DataConfig`), ``model`` (the model's own config, :mod:`promoterlab.models`), ``train``
(:class:`TrainConfig`), ``seed``. Each field carries its command-line help
(:func:`~promoterlab.config.setting.setting`).

The names are imported on first use: :mod:`~promoterlab.config.data` and
:mod:`~promoterlab.config.train` load without torch (the command line's help is built from them),
:mod:`~promoterlab.config.run` imports the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataConfig": "data",
    "DEFAULT_TIME_BUDGET": "train", "NARROWEST_WIDTH": "train", "SCHEDULES": "train", "TrainConfig": "train",
    "averaging_spec": "train", "budget_widths": "train", "time_budget": "train",
    "RunConfig": "run", "check_config_keys": "run", "replace_fields": "run",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from promoterlab.config.data import DataConfig
    from promoterlab.config.run import RunConfig, check_config_keys, replace_fields
    from promoterlab.config.train import (DEFAULT_TIME_BUDGET, NARROWEST_WIDTH, SCHEDULES, TrainConfig,
                                          averaging_spec, budget_widths, time_budget)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
