"""Everything that determines a run, saved next to it as ``config.yaml``."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promoterlab.config.checks import build_section, check_keys, section_mapping, shown_value
from promoterlab.config.data import DataConfig
from promoterlab.config.train import TrainConfig
from promoterlab.files import read_yaml, write_text_atomic
from promoterlab.models import LegNetConfig, model_config


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
    def from_dict(cls, raw: dict[str, Any], source: str | Path | None = None) -> "RunConfig":
        """A config from its nested dict (``config.yaml``'s data).

        Raises
        ------
        ValueError
            Naming ``source`` (when given), the section and the key: an unknown key (with the
            closest known one, or all of them), a section that is not a mapping, a value of the
            wrong type, or a value the config's own checks refuse.
        """
        prefix = f"{source}: " if source is not None else ""
        try:
            return cls._from_dict(raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{prefix}{err}") from None

    @classmethod
    def _from_dict(cls, raw: Any) -> "RunConfig":
        if not isinstance(raw, dict):
            raise ValueError(f"a config is a mapping with the keys {', '.join(_TOP_LEVEL)}, not {shown_value(raw)}")
        raw = dict(raw)
        check_config_keys(raw)
        sections = {name: section_mapping(name, raw.pop(name, None)) for name in ("data", "train", "model")}
        if raw.get("version") and _version_tuple(raw["version"]) < (0, 2):
            # Saved before test splits, ensemble configs and the default time budget existed: one
            # model, without a test split, trained for its epochs.
            sections["data"].setdefault("test_size", 0)
            sections["train"].setdefault("ensemble", 1)
            sections["train"].setdefault("max_time", None)
        data = build_section("data", DataConfig, sections["data"])
        train = build_section("train", TrainConfig, sections["train"])
        model_raw = sections["model"]
        name = model_raw.pop("name", "legnet")
        if not isinstance(name, str):
            raise ValueError(f"model.name must be a registered model name, not {shown_value(name)}")
        model = build_section("model", lambda **values: model_config(name, **values), model_raw,
                              type(model_config(name)))
        seed = raw.pop("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {shown_value(seed)}")
        return cls(data=data, model=model, train=train, seed=seed, version=str(raw.pop("version", "") or ""))

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """Read a ``config.yaml`` (:func:`promoterlab.files.read_yaml`); every error names the file.

        Raises
        ------
        ValueError
            :class:`~promoterlab.files.InputError` for a file that cannot be read or is not
            YAML (with the line), else the errors of :meth:`from_dict`, naming ``path``.
        """
        return cls.from_dict(read_yaml(path) or {}, source=path)


_TOP_LEVEL = ("data", "model", "train", "seed", "version")


def check_config_keys(raw: dict[str, Any]) -> None:
    """Check the keys of a nested config dict without building it: the top-level keys, that each
    section is a mapping, and the keys of ``data`` and ``train`` (those of ``model`` depend on the
    model, which a sweep may set later).

    Raises
    ------
    ValueError
        As :meth:`RunConfig.from_dict` does (without the file).
    """
    sections = _section_fields()
    check_keys("", raw, _TOP_LEVEL, sections)
    for name, fields in sections.items():
        check_keys(name, section_mapping(name, raw.get(name)), fields, sections)
    section_mapping("model", raw.get("model"))


def _section_fields() -> dict[str, list[str]]:
    return {"data": [f.name for f in dataclasses.fields(DataConfig)],
            "train": [f.name for f in dataclasses.fields(TrainConfig)]}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])


def replace_fields(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` ignoring ``None`` values (unset command-line options)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
