"""Reading the ``train`` command's option values: KEY=VALUE model options, ranges, and errors of
the config's checks worded with the option that sets the field."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from promoterlab.cli_data import _fail

# Config field -> the option that sets it, to name the option in an error of the config's checks.
_OPTION_OF_FIELD = {"max_lr": "--lr", "clip_targets": "--clip-targets", "val_singleton": "--val-singleton"}


def _option_error(err: Exception) -> str:
    """A config check's message (``"val_size must be ..."``) with the field named as its option."""
    from promoterlab.config import DataConfig, TrainConfig

    text = str(err)
    field, _, rest = text.partition(" ")
    if field.endswith(":"):  # "augment: unknown ..." -> "--augment: unknown ..."
        field, rest = field[:-1], ": " + rest
    names = {f.name for f in dataclasses.fields(DataConfig)} | {f.name for f in dataclasses.fields(TrainConfig)}
    if rest and field in names:
        return f"{_OPTION_OF_FIELD.get(field, '--' + field.replace('_', '-'))}{'' if rest[0] == ':' else ' '}{rest}"
    return text


def _parse_options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--model-opt expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            _fail(f"--model-opt {pair}: cannot read the value {value!r} (a number, true/false or [a, b])")
    return options


def _parse_range(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        _fail(f"--clip-targets expects LOW,HIGH (e.g. 0,17), got {text!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        _fail(f"--clip-targets expects LOW,HIGH with LOW < HIGH, got {text!r}")
    return [low, high]


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (the annotation of a config field)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is None:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value if args)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    names = {float: "a number", int: "an integer", bool: "true or false", str: "a text"}
    if typing.get_origin(hint) in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {_type_name(args[0]).split(' ', 1)[1]}s" if args else "a list"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _bad_model_value(config_cls: type, values: dict[str, Any]) -> tuple[str, Any, str] | None:
    """``(field, value, expected)`` of the first of ``values`` of the wrong type for the model config class."""
    hints = typing.get_type_hints(config_cls)
    for key, value in values.items():
        if key in hints and not _fits(value, hints[key]):
            return key, value, _type_name(hints[key])
    return None
