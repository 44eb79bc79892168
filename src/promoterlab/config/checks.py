"""Checks of config values and of a config's nested dict (a ``config.yaml``, a spec's ``base``) that name the section
and the key: unknown keys (with the closest known one), sections that are not mappings, and values
of the wrong type for their field, before the config dataclasses' own checks run."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Iterable
from typing import Any


def shown_value(value: Any) -> str:
    """A value in a message, with its YAML kind: ``the text 'abc'``, ``the list [1, 2]``."""
    kind = {str: "the text", bool: "the boolean", int: "the number", float: "the number", list: "the list",
            dict: "the mapping"}.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if value is not None else "empty (null)"


def check_keys(section: str, values: dict[str, Any], known: Iterable[str],
               sections: dict[str, list[str]]) -> None:
    """Refuse a key of ``values`` that ``section`` (``""``: the top level) does not have, naming
    the closest known key (or all of them), or, at the top level, the one of ``sections`` (name
    to keys) that it belongs to."""
    known = list(known)
    for key in values:
        if key in known:
            continue
        where = f"{section} has no setting {key!r}" if section else f"unknown top-level key {key!r}"
        home = [name for name, fields in sections.items() if key in fields and name != section]
        close = difflib.get_close_matches(str(key), known, n=1)
        if home and not section:
            hint = f"it belongs in the {home[0]} section ({home[0]}: {{{key}: ...}})"
        elif close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = f"the {'keys' if not section else section + ' settings'} are {', '.join(sorted(known))}"
        raise ValueError(f"{where}; {hint}")


def section_mapping(name: str, value: Any) -> dict[str, Any]:
    """A config section's mapping (``None``: empty); refuses anything else, e.g. ``data: file.txt``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        example = f" (e.g. data: {{path: {value}}})" if name == "data" and isinstance(value, str) else ""
        raise ValueError(f"{name} must be a mapping of settings{example}, not {shown_value(value)}")
    return dict(value)


def build_section(name: str, build: Any, values: dict[str, Any], cls: type | None = None) -> Any:
    """``build(**values)`` for the config section ``name`` (a dataclass ``cls``, default ``build``),
    after checking the keys and the types; a check's message is prefixed with ``name.``."""
    cls = cls or build
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "name" or name != "model"]
    check_keys(name, values, fields, {})
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if name == "data" and key == "store":  # DataConfig reads YAML's on/off (booleans) itself
            continue
        if not fits(value, hints[key]):
            raise ValueError(f"{name}.{key} must be {type_name(hints[key])}, not {shown_value(value)}")
    try:
        return build(**values)
    except ValueError as err:  # the checks' messages start with the field name
        text = str(err)
        raise ValueError(f"{name}.{text}" if text.split(" ")[0].rstrip(":") in fields else f"{name}: {text}") \
            from None


def fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value can be the config field of type ``hint``. Lenient where YAML is: a text
    field takes a number (``precision: 32``, ``devices: 1``); an integer is a float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arm) for arm in args)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(fits(v, args[0]) for v in value if args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, int, float, os.PathLike)) and not isinstance(value, bool)
    return True


def type_name(hint: Any) -> str:
    """``"an integer"``, ``"a text or empty"``, ... for a field's type in a message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(arm) for arm in args if arm is not type(None)]
        return " or ".join(names) + (" or empty" if type(None) in args else "")
    if origin in (list, tuple):
        return f"a list of {type_name(args[0]).split(' ', 1)[1]}s" if args else "a list"
    return {float: "a number", int: "an integer", bool: "true or false", str: "a text"}.get(hint, str(hint))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_count(name: str, value: Any, low: int, auto: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``low`` (or ``"auto"`` where allowed)."""
    if auto and value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}{' or auto' if auto else ''}, got {value!r}")


def check_number(name: str, value: Any, low: float, high: float | None = None, inclusive: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number above ``low`` (and below ``high``)."""
    ok = is_number(value) and math.isfinite(value) and (value >= low if inclusive else value > low)
    if ok and high is not None:
        ok = value < high
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and < {high:g}" if high is not None else "")
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
