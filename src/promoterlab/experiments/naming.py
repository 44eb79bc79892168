"""Folder and file names made from axis values: the one slug rule of run folders and figures."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def slug(text: str) -> str:
    """``text`` with every character other than ``A-Z a-z 0-9 _ . = + -`` replaced by ``-``,
    e.g. ``"model=legnet lstm/2"`` -> ``"model=legnet-lstm-2"``."""
    return _UNSAFE.sub("-", text)
