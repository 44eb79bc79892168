"""Resumable, verified downloads and the fetching of registered datasets.

A transfer writes ``NAME.part`` next to the target; an interrupted transfer is resumed
with an HTTP ``Range`` request. The finished file is checked (size, md5, sha256 where
known) and only then moved into place with :func:`os.replace`, so the target path never
holds a partial or corrupt file. Checksums computed on first download are kept in
``promoterlab_manifest.json`` in the dataset directory and checked on later runs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from promoterlab.datasets.registry import Dataset, RemoteFile

ENV_VAR = "PROMOTERLAB_DATA"
MANIFEST_NAME = "promoterlab_manifest.json"
USER_AGENT = "promoterlab/0.1 (dataset downloader)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(RuntimeError):
    """A transfer that could not be completed; the message names the URL and the target."""


class ChecksumError(DownloadError):
    """A downloaded or present file whose size or digest differs from the expected one."""


class _Interrupted(Exception):
    """A transfer that stopped early and may be resumed."""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The root directory for datasets.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit choice (the ``--data-dir`` option); wins over everything else.

    Returns
    -------
    pathlib.Path
        ``data_dir`` if given, else ``$PROMOTERLAB_DATA`` if set and non-empty, else
        ``~/.cache/promoterlab``. The directory is not created.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "promoterlab"


def dataset_dir(dataset: Dataset, data_dir: str | os.PathLike[str] | None = None,
                directory: str | os.PathLike[str] | None = None) -> Path:
    """Directory of ``dataset``: ``directory`` if given, else ``resolve_data_dir(data_dir)/NAME``."""
    if directory is not None:
        return Path(directory).expanduser()
    return resolve_data_dir(data_dir) / dataset.name


def file_digests(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> dict[str, str | int]:
    """Size, md5 and sha256 of a file, read once."""
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return {"size": size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def check_file(path: str | os.PathLike[str], size: int | None = None, md5: str | None = None,
               sha256: str | None = None) -> dict[str, str | int]:
    """Digests of ``path``, after checking them against whatever is expected.

    Raises
    ------
    ChecksumError
        If the size, md5 or sha256 differs from an expected (non-``None``) value.
    """
    found = file_digests(path)
    problem = _mismatch(found, size, md5, sha256)
    if problem:
        raise ChecksumError(f"{path}: checksum mismatch, {problem}")
    return found


def _mismatch(found: dict[str, str | int], size: int | None, md5: str | None,
              sha256: str | None) -> str | None:
    for key, expected in (("size", size), ("md5", md5), ("sha256", sha256)):
        if expected is not None and str(found[key]).lower() != str(expected).lower():
            return f"{key} is {found[key]}, expected {expected}"
    return None


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _transfer(url: str, part: Path, timeout: float, chunk_size: int, progress: bool,
              desc: str) -> None:
    """Append the rest of ``url`` to ``part`` (or rewrite it when the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range beyond the end: the partial file is complete, or longer than the remote one.
            match = _UNSATISFIED_RANGE.search(exc.headers.get("Content-Range", "") or "")
            if match and int(match.group(1)) == offset:
                return
            part.unlink()
            raise _Interrupted(f"partial file of {offset} bytes does not fit the remote file") from exc
        if exc.code >= 500:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    with response:
        total: int | None = None
        length = response.headers.get("Content-Length")
        if offset and response.status == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", "") or "")
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise _Interrupted(f"server answered the resume with range "
                                   f"{response.headers.get('Content-Range')!r}")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:
            offset, mode = 0, "wb"
            total = int(length) if length is not None else None
        received = offset
        with open(part, mode) as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=desc, disable=not progress, leave=False,
        ) as bar:
            while chunk := response.read(chunk_size):
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without complaint when the peer closes early.
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")


def download_file(url: str, dest: str | os.PathLike[str], *, size: int | None = None,
                  md5: str | None = None, sha256: str | None = None, progress: bool = True,
                  retries: int = 3, retry_wait: float = 2.0, timeout: float = 60.0,
                  chunk_size: int = 1 << 20) -> dict[str, str | int]:
    """Download ``url`` to ``dest``, resuming, verifying and placing it atomically.

    Parameters
    ----------
    url : str
        Source address (``http``, ``https`` or ``file``).
    dest : str or path-like
        Final path. Parent directories are created.
    size, md5, sha256 : optional
        Expected size and digests; ``None`` skips that check.
    progress : bool
        Show a byte progress bar.
    retries : int
        How many times an interrupted transfer is resumed within this call.
    retry_wait : float
        Seconds before the first retry; doubled each time, at most 30 s.
    timeout : float
        Socket timeout in seconds.
    chunk_size : int
        Bytes read per step.

    Returns
    -------
    dict
        ``size``, ``md5`` and ``sha256`` of the placed file.

    Raises
    ------
    ChecksumError
        If the complete transfer has the wrong size or digest. The partial file is removed
        and nothing is placed at ``dest``.
    DownloadError
        If the transfer fails for good. An interrupted partial file is kept as
        ``dest + '.part'`` and resumed by the next call.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(url, part, timeout, chunk_size, progress, dest.name)
            break
        except (_Interrupted, http.client.HTTPException, ConnectionError, socket.timeout,
                TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        except urllib.error.URLError as exc:
            problem = str(exc.reason)
        attempt += 1
        if attempt > retries:
            kept = f"; {part.stat().st_size} bytes kept in {part} for resuming" if part.exists() else ""
            raise DownloadError(f"{url} -> {dest}: transfer failed after {attempt} attempt(s): "
                                f"{problem}{kept}")
        time.sleep(min(retry_wait * 2 ** (attempt - 1), 30.0))
    digests = file_digests(part)
    problem = _mismatch(digests, size, md5, sha256)
    if problem:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url} -> {dest}: checksum error, downloaded file rejected ({problem}); "
                            f"the partial file was removed and nothing was placed")
    os.replace(part, dest)
    return digests


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, dict]:
    """Per-file records (``size``, ``md5``, ``sha256``, ``url``, ``downloaded``) of a directory."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("files", {}))
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DownloadError(f"{path}: not a valid manifest ({exc})") from exc


def _write_manifest(directory: Path, dataset: str, files: dict[str, dict]) -> None:
    text = json.dumps({"dataset": dataset, "files": files}, indent=2, sort_keys=True) + "\n"
    handle = tempfile.NamedTemporaryFile("w", dir=directory, prefix=".manifest-", delete=False)
    with handle:
        handle.write(text)
    os.replace(handle.name, directory / MANIFEST_NAME)


@dataclass(frozen=True)
class FileStatus:
    """Outcome for one file: ``verified``, ``present``, ``downloaded``, ``missing``,
    ``mismatch`` or ``failed``, with a human-readable detail."""

    path: str
    status: str
    detail: str = ""


@dataclass
class FetchReport:
    """What :func:`fetch` found and did for a dataset directory."""

    dataset: str
    directory: Path
    local_copy: bool
    files: list[FileStatus] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No file failed or mismatched (missing files of a local copy are allowed)."""
        return not any(f.status in ("failed", "mismatch") for f in self.files)

    def count(self, status: str) -> int:
        """Number of files with ``status``."""
        return sum(f.status == status for f in self.files)


def is_local_copy(dataset: Dataset, directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds some of the dataset's files but was not written by :func:`fetch`."""
    directory = Path(directory)
    if (directory / MANIFEST_NAME).is_file():
        return False
    return any((directory / f.path).is_file() for f in dataset.files)


def _expected(entry: RemoteFile, record: dict | None) -> dict[str, str | int | None]:
    record = record or {}
    return {"size": entry.size if entry.size is not None else record.get("size"),
            "md5": entry.md5 or record.get("md5"),
            "sha256": entry.sha256 or record.get("sha256")}


def fetch(dataset: Dataset, directory: str | os.PathLike[str], *,
          only: Sequence[str] | None = None, download_missing: bool | None = None,
          force: bool = False, progress: bool = True, retries: int = 3,
          retry_wait: float = 2.0) -> FetchReport:
    """Make the files of ``dataset`` available in ``directory``.

    Files already in place are checked against the registry's checksums, or against those
    recorded when they were downloaded; they are never fetched again unless ``force``.

    Parameters
    ----------
    dataset : Dataset
        The registry entry.
    directory : str or path-like
        The dataset directory.
    only : sequence of str, optional
        Glob patterns on the relative paths (e.g. ``"test/*"``); others are ignored.
    download_missing : bool, optional
        Download files that are absent. Default: yes, unless ``directory`` is a local copy
        (holds files of the dataset but no manifest), whose gaps are only reported.
    force : bool
        Download again even files that are present.
    progress : bool
        Show progress bars.
    retries, retry_wait : int, float
        Passed to :func:`download_file`.

    Returns
    -------
    FetchReport
        One :class:`FileStatus` per selected file.
    """
    directory = Path(directory)
    local = is_local_copy(dataset, directory)
    if download_missing is None:
        download_missing = not local
    records = read_manifest(directory)
    selected = [f for f in dataset.files
                if not only or any(fnmatch.fnmatch(f.path, pattern) for pattern in only)]
    report = FetchReport(dataset.name, directory, local)
    for entry in selected:
        target = directory / entry.path
        expected = _expected(entry, records.get(entry.path))
        if target.is_file() and not force:
            if not any(expected.values()):
                report.files.append(FileStatus(entry.path, "present", "no checksum known"))
                continue
            try:
                check_file(target, **expected)
            except ChecksumError as exc:
                report.files.append(FileStatus(entry.path, "mismatch", str(exc)))
            else:
                report.files.append(FileStatus(entry.path, "verified"))
            continue
        if not (download_missing or force):
            report.files.append(FileStatus(entry.path, "missing", f"not in local copy; {entry.url}"))
            continue
        try:
            digests = download_file(entry.url, target, size=entry.size, md5=entry.md5,
                                    sha256=entry.sha256, progress=progress, retries=retries,
                                    retry_wait=retry_wait)
        except (DownloadError, OSError) as exc:
            report.files.append(FileStatus(entry.path, "failed", str(exc)))
            continue
        records[entry.path] = {**digests, "url": entry.url,
                               "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_manifest(directory, dataset.name, records)
        report.files.append(FileStatus(entry.path, "downloaded", f"{digests['size']} bytes"))
    return report
