"""Files in and out: atomic writes, checked input and output paths (with what was found, in
words), standard output and devices, and YAML read with the file and line of any error."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import stat
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


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


def shown(path: str | Path) -> str:
    """A path for a one-line message: control characters (a newline in a file name) escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(path))


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
        raise OutputError(f"{shown(path)}: cannot write here ({os_error_what(err, path)})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"{shown(path)}: is a directory; give a file name")
    if mode is None or stat.S_ISREG(mode):  # a device or a pipe can be read and written at once
        for source in inputs:
            if source is None or _is_stdout(source):
                continue
            try:
                same = os.path.samefile(path, source)
            except OSError:  # one of the two does not exist
                same = False
            if same or os.path.realpath(path) == os.path.realpath(source):
                raise OutputError(f"{shown(path)}: is also an input ({shown(source)}); choose another output "
                                  "file")
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
        raise OutputError(f"{shown(path)}: directory {shown(parent)} {problem}")
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"{shown(path)}: directory {shown(parent)} is not writable")
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


class InputError(ValueError):
    """An input path that cannot be read as asked; the message names it and says what was found."""


_ERRNO_WORDS = {errno.ENOENT: "not found", errno.EISDIR: "is a directory", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied", errno.EROFS: "on a read-only file system",
                errno.ENOSPC: "no space left on the device", errno.EEXIST: "already exists",
                errno.ENOTEMPTY: "is a directory that is not empty", errno.ELOOP: "a loop of symbolic links",
                errno.ENAMETOOLONG: "file name too long", errno.EXDEV: "on another file system"}


def _file_on_path(path: Path) -> Path | None:
    """The first of ``path``'s parent folders that exists as something other than a folder."""
    for parent in reversed(Path(path).parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def os_error_what(err: OSError, path: str | Path | None = None) -> str:
    """What an ``OSError`` on ``path`` (default: the error's own file name) found, in words
    rather than errno text: ``[Errno 20] Not a directory: 'x/file/y'`` is ``x/file is a file,
    not a directory``."""
    path = path if path is not None else err.filename
    if err.errno == errno.ENOTDIR and path is not None:
        blocker = _file_on_path(Path(path))
        return f"{shown(blocker)} is a file, not a directory" if blocker else "is not a directory"
    if err.errno == errno.ENOENT and path is not None and not Path(path).parent.exists():
        return f"not found (its directory {shown(Path(path).parent)} does not exist)"
    return _ERRNO_WORDS.get(err.errno) or err.strerror or str(err)


def os_error_words(err: OSError, path: str | Path | None = None, label: str | None = None) -> str:
    """``"PATH: what was found"`` (:func:`os_error_what`); ``label`` replaces ``PATH`` in front
    (e.g. ``"--out x/file/y"``)."""
    path = path if path is not None else err.filename
    label = label or (str(path) if path is not None else None)
    what = os_error_what(err, path)
    return f"{shown(label)}: {what}" if label else what


def _kind(mode: int) -> str:
    return "a directory" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a file"


def check_input(path: str | Path, option: str = "", kind: str = "file") -> None:
    """Check, before any work, that ``path`` can be read as a ``kind`` (``"file"``: a file, a named
    pipe, a device or ``-`` for standard input; ``"regular"``: a regular file, for inputs read more
    than once; ``"folder"``).

    Raises
    ------
    InputError
        Naming ``option`` (e.g. ``--background``) and ``path`` and what was found: not found, a
        file on its path, a directory, a file, permission denied.
    """
    label = shown(f"{option} {path}" if option else path)
    if kind == "file" and str(path) == "-":
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        missing = Path(path).parent
        note = f" (its directory {shown(missing)} does not exist)" if not missing.exists() else ""
        raise InputError(f"{label}: {'directory' if kind == 'folder' else 'file'} not found{note}") from None
    except OSError as err:
        raise InputError(os_error_words(err, path, label)) from None
    if kind == "folder":
        if not stat.S_ISDIR(mode):
            raise InputError(f"{label}: is {_kind(mode)}, not a directory")
    elif stat.S_ISDIR(mode):
        raise InputError(f"{label}: is a directory; give a file")
    elif kind == "regular" and not stat.S_ISREG(mode):
        raise InputError(f"{label}: is {_kind(mode)}; it is read more than once, so give a regular file")
    if not os.access(path, os.R_OK | (os.X_OK if kind == "folder" else 0)):
        raise InputError(f"{label}: permission denied (not readable)")


def check_output_folder(path: str | Path, option: str = "") -> None:
    """Check, before any work, that the output folder ``path`` is (or can be made) a writable folder.

    Raises
    ------
    OutputError
        When ``path`` exists as a file, a file lies on its path, or the folder that would hold it
        is not writable.
    """
    label = shown(f"{option} {path}" if option else path)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{label}: exists and is not a directory; give a directory for the output")
    blocker = _file_on_path(path)
    if blocker is not None:
        raise OutputError(f"{label}: {shown(blocker)} is a file, not a directory")
    existing = next(folder for folder in (path, *path.parents) if folder.exists() or folder == Path(folder.anchor))
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its folder {shown(existing)})"
        raise OutputError(f"{label}: permission denied: cannot write{where}")


def read_yaml(path: str | Path) -> Any:
    """The data of a YAML file (plain values, lists and mappings only: ``safe_load``; a UTF-8
    byte-order mark is allowed). Every YAML file promoterlab reads goes through here.

    Raises
    ------
    InputError
        Naming the file, and the line of a syntax error or of a tag such as
        ``!!python/object`` (which is refused, never run).
    """
    import yaml

    path = Path(path)
    try:
        with open(path, "rb") as handle:  # once: a named pipe can be read only once
            text = handle.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{shown(path)}: file not found") from None
    except OSError as err:
        raise InputError(os_error_words(err, path)) from None
    except UnicodeDecodeError as err:
        raise InputError(f"{shown(path)}: not a text file (undecodable byte at offset {err.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(yaml_error(path, err)) from None


def yaml_error(path: str | Path, err: Exception) -> str:
    """``"PATH:LINE: not valid YAML: problem"`` for a ``yaml.YAMLError``."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{shown(path)}:{mark.line + 1}" if mark is not None else shown(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip(" '").replace("tag:yaml.org,2002:", "!!")
        return f"{where}: not valid YAML here: the tag {tag} is not allowed (only plain values, lists and mappings)"
    context = getattr(err, "context", None)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy or torch numbers as Python ones, for
    strict JSON (which has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy and torch numbers, arrays
        return json_safe(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def json_text(value: Any) -> str:
    """``value`` as indented strict JSON (:func:`json_safe`)."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False)
