"""One verified, resumable HTTP download, on :mod:`pooch`.

Pooch does the retry loop (``retry_if_failed``), the temporary file that is renamed onto the
target only after a complete transfer, and the digests (:func:`pooch.file_hash`). HTTP
``Range`` resume is added here as a pooch *downloader* (:class:`ResumingHTTPDownloader`),
because pooch cannot resume: its ``HTTPDownloader`` opens a fresh temporary file for every
attempt and pooch deletes it when an attempt fails, so an interrupted transfer of the
multi-gigabyte DREAM training file would start again from byte 0. The bytes received are kept
in ``NAME.part`` beside the target, across attempts and calls, and the rest is asked for with
``Range: bytes=N-``. The finished file is checked (size, md5, sha256, git blob id where known)
before it is moved into place; a checksum error is final (not retried) and removes the partial file.

The git blob id (:func:`git_blob_id`) is the checksum of a file in a git repository: a file
downloaded from a pinned commit is verified by the id that ``git ls-tree`` lists, with no separate
list of hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pooch
from tqdm.auto import tqdm

USER_AGENT = "promoterlab/0.1 (dataset downloader)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(RuntimeError):
    """A transfer that could not be completed; the message names the URL and the target."""


class ChecksumError(DownloadError):
    """A downloaded or present file whose size or digest differs from the expected one."""


def git_blob_id(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Git's object id of a file's content: SHA-1 of ``b"blob <size>\\0" + content``, in hex."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(path: str | os.PathLike[str], git_blob: bool = False) -> dict[str, str | int]:
    """Size, md5 and sha256 of a file, and its git blob id when ``git_blob``."""
    found: dict[str, str | int] = {"size": Path(path).stat().st_size,
                                   "md5": pooch.file_hash(str(path), alg="md5"),
                                   "sha256": pooch.file_hash(str(path), alg="sha256")}
    if git_blob:
        found["git_blob"] = git_blob_id(path)
    return found


def check_file(path: str | os.PathLike[str], size: int | None = None, md5: str | None = None,
               sha256: str | None = None, git_blob: str | None = None) -> dict[str, str | int]:
    """Digests of ``path``, after checking them against whatever is expected.

    Raises
    ------
    ChecksumError
        If the size, md5, sha256 or git blob id differs from an expected (non-``None``) value.
    """
    found = file_digests(path, git_blob=git_blob is not None)
    problem = _mismatch(found, size, md5, sha256, git_blob)
    if problem:
        raise ChecksumError(f"{path}: checksum mismatch, {problem}")
    return found


def _mismatch(found: dict[str, str | int], size: int | None, md5: str | None,
              sha256: str | None, git_blob: str | None = None) -> str | None:
    for key, expected in (("size", size), ("md5", md5), ("sha256", sha256), ("git_blob", git_blob)):
        if expected is not None and str(found[key]).lower() != str(expected).lower():
            return f"{key} is {found[key]}, expected {expected}"
    return None


class ResumingHTTPDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that resumes with HTTP Range.

    Each call continues ``part`` with the rest of ``url`` (or rewrites it when the server ignores
    ``Range``), checks the complete file against ``size``/``md5``/``sha256``/``git_blob`` and moves it onto
    ``output_file`` (pooch's temporary file, which pooch then renames onto the target).
    An interrupted transfer raises a :mod:`requests` exception, which pooch retries, and leaves
    ``part`` in place; an HTTP 4xx raises :class:`DownloadError` and a wrong checksum
    :class:`ChecksumError` (removing ``part``), which pooch does not retry.
    """

    def __init__(self, part: Path, *, size: int | None = None, md5: str | None = None,
                 sha256: str | None = None, git_blob: str | None = None, progress: bool = True,
                 timeout: float = 60.0, chunk_size: int = 1 << 20, desc: str | None = None):
        self.part = Path(part)
        self.expected = {"size": size, "md5": md5, "sha256": sha256, "git_blob": git_blob}
        self.progress, self.timeout, self.chunk_size = progress, timeout, chunk_size
        self.desc = desc or self.part.name.removesuffix(".part")
        self.digests: dict[str, str | int] | None = None

    def __call__(self, url: str, output_file: str, pooch_instance: pooch.Pooch | None = None) -> None:
        self._transfer(url)
        digests = file_digests(self.part, git_blob=self.expected["git_blob"] is not None)
        problem = _mismatch(digests, **self.expected)
        if problem:
            self.part.unlink(missing_ok=True)
            raise ChecksumError(f"{url} -> {self.desc}: checksum error, downloaded file rejected ({problem}); "
                                "the partial file was removed and nothing was placed")
        os.replace(self.part, output_file)
        self.digests = digests

    def _transfer(self, url: str) -> None:
        import requests

        offset = self.part.stat().st_size if self.part.exists() else 0
        # identity: byte offsets must count the bytes as stored, not as compressed in transit
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            status = response.status_code
            if status == 416 and offset:
                # Range beyond the end: the partial file is complete, or longer than the remote one.
                match = _UNSATISFIED_RANGE.search(response.headers.get("Content-Range", ""))
                if match and int(match.group(1)) == offset:
                    return
                self.part.unlink()
                raise requests.HTTPError(f"partial file of {offset} bytes does not fit the remote file")
            if status >= 500:
                raise requests.HTTPError(f"HTTP {status} {response.reason}")  # retried by pooch
            if status >= 400:
                raise DownloadError(f"{url}: HTTP {status} {response.reason}")
            if offset and status == 206:
                match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    self.part.unlink()
                    raise requests.HTTPError(f"server answered the resume with range "
                                             f"{response.headers.get('Content-Range')!r}")
                total = int(match.group(3)) if match.group(3) != "*" else None
                mode = "ab"
            else:
                length = response.headers.get("Content-Length")
                offset, mode, total = 0, "wb", int(length) if length else None
            received = offset
            # urllib3 would raise on a short body and drop the bytes of the read in progress; the
            # length is checked below instead, so that every byte received is kept for resuming.
            response.raw.enforce_content_length = False
            with open(self.part, mode) as handle, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=self.desc, disable=not self.progress, leave=False,
            ) as bar:
                try:
                    for chunk in response.iter_content(self.chunk_size):
                        handle.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except requests.RequestException as exc:
                    raise requests.ConnectionError(
                        f"connection closed after {received} of {total} bytes ({exc})") from exc
        if total is not None and received < total:
            raise requests.ConnectionError(f"connection closed after {received} of {total} bytes")


@contextmanager
def _pooch_log_level(level: int) -> Iterator[None]:
    logger = pooch.get_logger()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def download_file(url: str, dest: str | os.PathLike[str], *, size: int | None = None,
                  md5: str | None = None, sha256: str | None = None, git_blob: str | None = None,
                  progress: bool = True, retries: int = 3, timeout: float = 60.0,
                  chunk_size: int = 1 << 20) -> dict[str, str | int]:
    """Download ``url`` to ``dest``, resuming, verifying and placing it atomically.

    Parameters
    ----------
    url : str
        Source address (``http`` or ``https``).
    dest : str or path-like
        Final path. Parent directories are created. A file already there is replaced once
        the new one is complete and verified.
    size, md5, sha256, git_blob : optional
        Expected size and digests (``git_blob``: :func:`git_blob_id`); ``None`` skips that check.
    progress : bool
        Show a byte progress bar and pooch's log lines.
    retries : int
        How many times an interrupted transfer is resumed within this call (pooch's
        ``retry_if_failed``; it waits 1 s, 2 s, … up to 10 s between attempts).
    timeout : float
        Socket timeout in seconds.
    chunk_size : int
        Bytes read per step.

    Returns
    -------
    dict
        ``size``, ``md5`` and ``sha256`` of the placed file (and ``git_blob`` when one was expected).

    Raises
    ------
    ChecksumError
        If the complete transfer has the wrong size or digest. The partial file is removed
        and nothing is placed at ``dest``.
    DownloadError
        If the transfer fails for good. An interrupted partial file is kept as
        ``dest + '.part'`` and resumed by the next call.
    """
    import requests

    dest = Path(dest)
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"{url} -> {dest}: only http and https addresses can be downloaded")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    # A file already at ``dest`` (a forced download) would look cached to pooch: pooch then places
    # the verified file under a staging name, renamed onto ``dest`` in one step.
    staged = dest.with_name(dest.name + ".download") if dest.exists() else dest
    if staged != dest:
        staged.unlink(missing_ok=True)
    downloader = ResumingHTTPDownloader(part, size=size, md5=md5, sha256=sha256, git_blob=git_blob,
                                        progress=progress, timeout=timeout, chunk_size=chunk_size, desc=dest.name)
    fetcher = pooch.create(path=dest.parent, base_url="", registry={staged.name: None},
                           urls={staged.name: url}, retry_if_failed=retries)
    try:
        with _pooch_log_level(logging.INFO if progress else logging.WARNING):
            fetcher.fetch(staged.name, downloader=downloader)
    except requests.RequestException as exc:
        kept = f"; {part.stat().st_size} bytes kept in {part} for resuming" if part.exists() else ""
        raise DownloadError(f"{url} -> {dest}: transfer failed after {retries + 1} attempt(s): "
                            f"{exc}{kept}") from exc
    if staged != dest:
        os.replace(staged, dest)
    return downloader.digests or file_digests(dest, git_blob=git_blob is not None)
