"""Opening a text input once: plain, gzipped, a named pipe or standard input (``-``), with any
UTF-8 byte-order mark dropped, and its first line looked at without reading it twice."""

from __future__ import annotations

import contextlib
import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def open_text(path: Path) -> TextIO:
    """``path`` as text, opened once: ``-`` is standard input, ``.gz`` is gunzipped, and a UTF-8
    byte-order mark is dropped."""
    if str(path) == "-":
        return _StandardInput(sys.stdin.buffer, encoding="utf-8-sig")
    if Path(path).suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


class _StandardInput(io.TextIOWrapper):
    """Standard input as text, left open when this wrapper is closed."""

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # detached already
            if not self.closed:
                self.detach()


class Replayed(io.TextIOBase):
    """A text stream that serves ``head`` (its first lines, already read to look at them) and then
    the rest of ``stream``: a file is opened once, so a named pipe or standard input works."""

    def __init__(self, head: str, stream: TextIO):
        super().__init__()
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            text, self._head = self._head + self._stream.read(), ""
            return text
        if self._head:
            text, self._head = self._head[:size], self._head[size:]
            return text
        return self._stream.read(size)

    def readline(self, size: int | None = -1) -> str:
        if not self._head:
            return self._stream.readline(-1 if size is None else size)
        line, newline, self._head = self._head.partition("\n")
        if not newline:  # the head ended inside a line: its rest is in the stream
            return line + self._stream.readline()
        return line + newline


@contextlib.contextmanager
def peeked(path: Path) -> Iterator[tuple[str | None, TextIO, int]]:
    """``(first non-blank line or None, the text from that line on, blank lines before it)`` of
    ``path``, opened once."""
    with open_text(path) as handle:
        skipped = 0
        for line in iter(handle.readline, ""):
            if line.strip():
                yield line.rstrip("\r\n"), Replayed(line, handle), skipped
                return
            skipped += 1
        yield None, Replayed("", handle), skipped
