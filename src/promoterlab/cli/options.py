"""Command-line options generated from the config dataclasses: each training option is written once,
as a field of :class:`~promoterlab.config.DataConfig` or :class:`~promoterlab.config.TrainConfig`
with its help text (:func:`promoterlab.config.setting.setting`), like
nanoGPT's single override mechanism. ``train --help`` shows the field's help, its default and
what ``auto`` means; a value given on the command line overrides the config (``--config``) field
of the same name, and a config check's message names the option.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from typing import Any, Optional

import typer

from promoterlab.cli.base import fail

SECTIONS = ("data", "train")
_SEPARATOR = "__"


@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """One config field as a command-line option."""

    section: str
    field: str
    flag: str
    help: str
    metavar: str | None
    kind: str  # "bool", "int", "float", "str", "auto-int", "auto-float", "auto-number", "range", "path"

    @property
    def parameter(self) -> str:
        return f"{self.section}{_SEPARATOR}{self.field}"


def _config_classes() -> dict[str, type]:
    from promoterlab.config import DataConfig, TrainConfig

    return {"data": DataConfig, "train": TrainConfig}


def config_options() -> list[ConfigOption]:
    """Every field of the data and training configs that has a help text, as an option."""
    options = []
    for section, cls in _config_classes().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if "help" not in meta or meta.get("cli") is False:
                continue
            flag = meta.get("flag") or "--" + f.name.replace("_", "-")
            options.append(ConfigOption(section, f.name, flag, _help(meta["help"], f), meta.get("metavar"),
                                        meta.get("kind") or _kind(hints[f.name])))
    return options


def _kind(hint: Any) -> str:
    args = set(typing.get_args(hint)) - {type(None)}
    if hint is bool or args == {bool}:
        return "bool"
    if hint is int or args == {int}:
        return "int"
    if hint is float or args == {float}:
        return "float"
    if args == {int, str}:
        return "auto-int"
    if args == {float, str}:
        return "auto-float"
    if args == {int, float, str}:
        return "auto-number"
    return "str"


def _help(text: str, f: dataclasses.Field) -> str:
    """The field's help with its default, unless the text says it (``auto: ...``) or there is none."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if "(default" in text or default is None or (default == "auto" and "auto" in text):
        return text
    if isinstance(default, bool):
        return f"{text} (default: {'on' if default else 'off'})"
    if isinstance(default, str) and len(default) > 40:
        return text
    return f"{text} (default: {default if default != '' else chr(34) * 2})"


def config_parameters() -> list[inspect.Parameter]:
    """typer parameters (keyword-only, all defaulting to None: unset) for :func:`config_options`."""
    parameters = []
    for option in config_options():
        if option.kind == "bool":
            name = option.flag.removeprefix("--")
            declaration, annotation = f"--{name}/--no-{name}", Optional[bool]
        else:
            declaration = option.flag
            annotation = {"int": Optional[int], "float": Optional[float]}.get(option.kind, Optional[str])
        default = typer.Option(None, declaration, help=option.help, metavar=option.metavar or _metavar(option),
                               show_default=False)
        parameters.append(inspect.Parameter(option.parameter, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=annotation))
    return parameters


def _metavar(option: ConfigOption) -> str | None:
    return {"int": "N", "float": "X", "auto-int": "N|auto", "auto-float": "X|auto", "auto-number": "N|auto",
            "range": "LOW,HIGH", "bool": None}.get(option.kind, option.field.split("_")[-1].upper())


def config_changes(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields the command line sets, by section (``{"data": {...}, "train": {...}}``), parsed;
    unset options (None) are left out."""
    changes: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    by_parameter = {option.parameter: option for option in config_options()}
    for name, value in values.items():
        option = by_parameter.get(name)
        if option is None or value is None:
            continue
        changes[option.section][option.field] = parse_value(option, value)
    return changes


def parse_value(option: ConfigOption, value: Any) -> Any:
    """A command-line text as the field's value, or one ``error:`` line naming the option."""
    if option.kind in ("bool", "int", "float", "str", "path"):
        return value
    text = str(value).strip()
    if option.kind == "range":
        try:
            low, high = (float(part) for part in text.split(","))
        except ValueError:
            fail(f"{option.flag} expects LOW,HIGH (e.g. 0,17), got {text!r}")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            fail(f"{option.flag} expects LOW,HIGH with LOW < HIGH, got {text!r}")
        return [low, high]
    if text == "auto":
        return "auto"
    try:
        number = float(text)
    except ValueError:
        fail(f"{option.flag} must be a number or auto, got {text!r}")
    if option.kind == "auto-int":
        if not number.is_integer():
            fail(f"{option.flag} must be a whole number or auto, got {text!r}")
        return int(number)
    if option.kind == "auto-number" and number.is_integer() and "." not in text:
        return int(number)
    return number


def option_error(err: Exception) -> str:
    """A config check's message (``"val_size must be ..."``) with the field named as its option."""
    text = str(err)
    field, _, rest = text.partition(" ")
    if field.endswith(":"):  # "augment: unknown ..." -> "--augment: unknown ..."
        field, rest = field[:-1], ": " + rest
    flags = {option.field: option.flag for option in config_options()}
    if rest and field in flags:
        return f"{flags[field]}{'' if rest[0] == ':' else ' '}{rest}"
    return text


def with_parameters(function, parameters: list[inspect.Parameter]):
    """``function`` (taking ``**values``) with a typer-readable signature of ``parameters``."""
    function.__signature__ = inspect.Signature(parameters)
    return function


def parse_model_options(pairs: list[str]) -> dict:
    """``--model-opt KEY=VALUE`` pairs as a dict (values read as YAML: numbers, true/false, [a, b])."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--model-opt expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            fail(f"--model-opt {pair}: cannot read the value {value!r} (a number, true/false or [a, b])")
    return options


def bad_model_value(config_cls: type, values: dict[str, Any]) -> tuple[str, Any, str] | None:
    """``(field, value, expected)`` of the first of ``values`` of the wrong type for the model config class."""
    from promoterlab.config.checks import fits, type_name

    hints = typing.get_type_hints(config_cls)
    for key, value in values.items():
        if key in hints and not fits(value, hints[key]):
            return key, value, type_name(hints[key])
    return None
