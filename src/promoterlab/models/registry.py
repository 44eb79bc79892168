"""The registry of architectures: every model is built by name from its typed config."""

from __future__ import annotations

import dataclasses

from torch import nn

from promoterlab.models.legnet import LegNet, LegNetConfig

_REGISTRY: dict[str, tuple[type[LegNet], type[LegNetConfig], dict]] = {}


def register(name: str, model_cls: type[LegNet], config_cls: type[LegNetConfig], **defaults) -> None:
    """Register ``model_cls`` under ``name`` with ``defaults`` applied to its config."""
    _REGISTRY[name] = (model_cls, config_cls, defaults)


def model_names() -> list[str]:
    return list(_REGISTRY)


def model_config(name: str, **overrides) -> LegNetConfig:
    """Config of the registered model ``name`` with preset defaults, then ``overrides``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    _, config_cls, defaults = _REGISTRY[name]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"model {name!r} has no setting {', '.join(sorted(unknown))}; "
                         f"settings are {', '.join(sorted(known - {'name'}))}")
    return config_cls(**{**defaults, **overrides, "name": name})


def build_model(cfg: LegNetConfig, n_outputs: int) -> nn.Module:
    """Instantiate the model class registered for ``cfg.name``."""
    model_cls = _REGISTRY[cfg.name][0]
    return model_cls(cfg, n_outputs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


register("legnet", LegNet, LegNetConfig)
register("legnet-s", LegNet, LegNetConfig, width=0.5)
