"""Writing outputs safely: atomic files, checked output paths, standard output and devices."""

from __future__ import annotations

import hashlib

import os
import stat
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temp name is unique per call (process id and a random tag), so two processes writing
    the same file never share a temp file; on an error the temp file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class OutputError(ValueError):
    """An output path that cannot be written safely; the message names the path."""


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (of the compressed bytes for ``.gz``), read in 16 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(16 * 2**20):
            digest.update(block)
    return digest.hexdigest()


def _is_stdout(path: str | Path) -> bool:
    return str(path) == "-"


def _is_system_path(path: Path) -> bool:
    """Whether ``path`` names a file through ``/dev`` or ``/proc`` (``/dev/stdout``, ``/dev/fd/3``)."""
    parts = Path(os.path.abspath(path)).parts
    return len(parts) > 1 and parts[1] in ("dev", "proc")


def _is_stdout_file(path: Path) -> bool:
    """Whether ``path`` is this process's standard output (``/dev/stdout``, ``/dev/fd/1``, ...)."""
    try:
        out, named = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured in a test)
        return False
    return (out.st_dev, out.st_ino) == (named.st_dev, named.st_ino)


def check_output(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> None:
    """Check, before any work, that ``path`` can be written without harming anything.

    ``-`` (standard output) and an existing non-regular file (a character device such as
    ``/dev/null`` or ``/dev/stdout``, a named pipe) pass: they are streamed to, never replaced.

    Raises
    ------
    OutputError
        When ``path`` is an existing directory, is one of ``inputs`` (also through a link or a
        second name), or its directory does not exist or is not writable; the message names
        ``path``.
    """
    _resolve_output(path, inputs)


def _resolve_output(path: str | Path, inputs: Iterable[str | Path | None]) -> tuple[Path | None, bool]:
    """``(where to write, whether to stream to it)``; ``(None, True)`` for standard output.

    A regular path comes back with symbolic links resolved, so that the atomic rename replaces
    the link's target rather than the link.
    """
    if _is_stdout(path):
        return None, True
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout -> /proc/self/fd/1 -> a pipe or tty
    except (FileNotFoundError, NotADirectoryError):  # the parent is checked below
        mode = None
    except OSError as err:
        raise OutputError(f"{path}: cannot write here ({err.strerror or err})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"{path}: is a directory; give a file name")
    if mode is None or stat.S_ISREG(mode):  # a device or a pipe can be read and written at once
        for source in inputs:
            if source is None or _is_stdout(source):
                continue
            try:
                same = os.path.samefile(path, source)
            except OSError:  # one of the two does not exist
                same = False
            if same or os.path.realpath(path) == os.path.realpath(source):
                raise OutputError(f"{path}: is also an input ({source}); choose another output file")
    if mode is not None and _is_stdout_file(path):
        return None, True
    if mode is not None and (not stat.S_ISREG(mode) or _is_system_path(path)):
        # A device or a pipe (or a file the shell opened for us, as in `-o /dev/stdout > file`):
        # written to as it is, never replaced.
        return path, True
    target = Path(os.path.realpath(path))
    parent = target.parent if path.is_symlink() else path.parent
    if not target.parent.is_dir():
        problem = "is not a directory" if target.parent.exists() else "does not exist"
        raise OutputError(f"{path}: directory {parent} {problem}")
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"{path}: directory {parent} is not writable")
    return target, False


@contextmanager
def output_stream(path: str | Path, inputs: Iterable[str | Path | None] = (), mode: str = "w",
                  encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open an output of a command for writing: the one way commands write their files.

    - ``-`` is standard output (not closed afterwards);
    - an existing non-regular file (``/dev/stdout``, ``/dev/null``, a named pipe) is opened
      and written to directly, never replaced;
    - a regular path is written to a unique temp file beside it, renamed onto it when the block
      succeeds and removed when it fails, so a failed command leaves no output behind.

    The checks of :func:`check_output` run first (call that function itself to check an
    output before a long computation).

    Parameters
    ----------
    path : str or Path
        Output file, or ``-``.
    inputs : iterable of paths
        Files the command reads; ``path`` must not be one of them.
    mode : str
        ``"w"`` (text, the default) or ``"wb"``.
    encoding : str, optional
        Text encoding (ignored in binary mode).

    Raises
    ------
    OutputError
        See :func:`check_output`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"output_stream mode must be 'w' or 'wb', not {mode!r}")
    binary = mode == "wb"
    target, streamed = _resolve_output(path, inputs)
    if target is None:
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    kwargs = {} if binary else {"encoding": encoding, "newline": ""}
    if streamed:
        # Append: a regular file behind /dev/fd/N was opened (and truncated) by the shell already.
        with open(target, mode.replace("w", "a"), **kwargs) as handle:
            yield handle
        return
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
