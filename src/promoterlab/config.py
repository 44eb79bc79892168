"""Typed run configuration, saved next to every run as ``config.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promoterlab.data.layout import LEFT_ADAPTER, PLASMID_UPSTREAM
from promoterlab.files import write_text_atomic
from promoterlab.models import LegNetConfig, model_config


@dataclass
class DataConfig:
    """Where the data comes from and how it is laid out and split."""

    path: str | None = None
    seq_col: str | None = None
    target_col: str | None = None
    group_col: str | None = None
    drop_missing: bool = False
    train_size: int | None = None
    val_size: int = 2048
    seq_len: int = 150
    left_adapter: str = LEFT_ADAPTER
    upstream: str = PLASMID_UPSTREAM
    singleton_channel: bool = True
    # Validation inputs carry the data's is_singleton flags, as LegNet's DREAM code validates
    # (the flag is computed on the whole training file before the split); False sets them to 0,
    # as at prediction time. Test sets and new sequences always get 0.
    val_singleton: bool = True
    # [low, high]: clip training targets (not validation ones) into this range, e.g. [0, 17]
    # for libraries whose normalised values slightly overshoot the sort-seq bin scale.
    clip_targets: list[float] | None = None


@dataclass
class TrainConfig:
    """Optimisation recipe (LegNet's DREAM 2022 defaults) and Lightning hardware settings."""

    loss: str = "kl"
    epochs: int = 20
    batch_size: int = 1024
    max_lr: float = 0.005
    weight_decay: float = 0.01
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    rc_augment: bool = True
    max_time: float | None = None
    patience: int | None = None
    precision: str = "32"
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        if self.loss not in ("kl", "mse"):
            raise ValueError(f"loss must be 'kl' or 'mse', not {self.loss!r}")


@dataclass
class RunConfig:
    """Everything that determines a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: LegNetConfig = field(default_factory=LegNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        raw = dict(raw)
        try:
            data = DataConfig(**raw.pop("data", {}))
            train = TrainConfig(**raw.pop("train", {}))
            model_raw = dict(raw.pop("model", {}))
            model = model_config(model_raw.pop("name", "legnet"), **model_raw)
            return cls(data=data, model=model, train=train, **raw)
        except TypeError as err:
            raise ValueError(f"invalid config: {err}") from None

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def replace_fields(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` ignoring ``None`` values (unset command-line options)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
