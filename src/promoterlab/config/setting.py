"""The help text of a config field, kept with the field: the command line builds its options
from it (:mod:`promoterlab.cli.options`), so each option is written once."""

from __future__ import annotations

import dataclasses
from typing import Any


def setting(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
            metavar: str | None = None, kind: str | None = None, cli: bool = True,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its command-line help.

    Parameters
    ----------
    default, default_factory
        As for :func:`dataclasses.field`.
    help : str
        What the setting does, as ``--help`` shows it (the default is added).
    flag : str, optional
        The option's name when it is not ``--field-name`` (e.g. ``--lr`` for ``max_lr``).
    metavar : str, optional
        How ``--help`` names the value (default from the field's type: N, X, TEXT, ...).
    kind : str, optional
        How the command line reads the value when the type does not say it: ``"range"``
        (``LOW,HIGH``).
    cli : bool
        False: a setting of config files only.
    """
    metadata = {"help": help, "flag": flag, "metavar": metavar, "kind": kind, "cli": cli}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)
