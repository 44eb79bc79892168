"""Fetching registered datasets into a data directory, and where that directory is.

Each file is downloaded by :func:`~promoterlab.datasets.transfer.download_file` (resumable,
verified, placed atomically). Checksums computed on first download are kept in
``promoterlab_manifest.json`` in the dataset directory and checked on later runs.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pooch

from promoterlab.datasets.registry import Dataset, RemoteFile
from promoterlab.datasets.transfer import ChecksumError, DownloadError, check_file, download_file
from promoterlab.files import os_error_words, write_text_atomic

ENV_VAR = "PROMOTERLAB_DATA"
MANIFEST_NAME = "promoterlab_manifest.json"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The root directory for datasets.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit choice (the ``--data-dir`` option); wins over everything else.

    Returns
    -------
    pathlib.Path
        ``data_dir`` if given, else ``$PROMOTERLAB_DATA`` if set and non-empty, else the
        user cache folder of :func:`pooch.os_cache` (``~/.cache/promoterlab`` on Linux, or
        ``$XDG_CACHE_HOME/promoterlab``). The directory is not created.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return pooch.os_cache("promoterlab").expanduser()


def data_dir_source(data_dir: str | os.PathLike[str] | None = None,
                    directory: str | os.PathLike[str] | None = None) -> str:
    """What chose the folder of :func:`dataset_dir`, for messages: ``--dir``, ``--data-dir``,
    ``PROMOTERLAB_DATA`` or ``the default data directory``."""
    if directory is not None:
        return "--dir"
    if data_dir is not None and str(data_dir) != "":
        return "--data-dir"
    return ENV_VAR if os.environ.get(ENV_VAR, "").strip() else "the default data directory"


def dataset_dir(dataset: Dataset, data_dir: str | os.PathLike[str] | None = None,
                directory: str | os.PathLike[str] | None = None) -> Path:
    """Directory of ``dataset``: ``directory`` if given, else ``resolve_data_dir(data_dir)/NAME``."""
    if directory is not None:
        return Path(directory).expanduser()
    return resolve_data_dir(data_dir) / dataset.name



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
    write_text_atomic(directory / MANIFEST_NAME, text)


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
          force: bool = False, progress: bool = True, retries: int = 3) -> FetchReport:
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
    retries : int
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
                                    sha256=entry.sha256, progress=progress, retries=retries)
        except (DownloadError, OSError) as exc:
            words = isinstance(exc, OSError) and exc.errno is not None
            report.files.append(FileStatus(entry.path, "failed", os_error_words(exc) if words else str(exc)))
            continue
        records[entry.path] = {**digests, "url": entry.url,
                               "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_manifest(directory, dataset.name, records)
        report.files.append(FileStatus(entry.path, "downloaded", f"{digests['size']} bytes"))
    return report
