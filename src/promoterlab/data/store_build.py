"""Write sequence stores (see :mod:`promoterlab.data.store` for the format).

The table is parsed in blocks by pyarrow (:func:`~promoterlab.data.table_stream.iter_table_codes`),
or, for what that reader leaves to it (quoted fields, invalid rows and their messages, ...), in
chunks by :func:`~promoterlab.data.readers.iter_table`, the reader of ``train``; either way the
rows are laid out and encoded by :func:`~promoterlab.sequence.lay_out_concatenated` (as in
memory) and written as they come, so
memory stays bounded whatever the file size. A store is written to a temporary folder and renamed
into place only when complete. :func:`store_for` keeps one store per source file and options in a
cache, as ``train`` uses it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from promoterlab.data.readers import DataError, iter_table
from promoterlab.data.store import (_ARRAYS, ADAPTER_BIT, FORMAT, GROUP_LABELS, HEADER, SINGLETON_BIT, VERSION,
                                    ReadOptions, SequenceStore, StoreError, array_file, file_sha256, open_store)
from promoterlab.data.table_stream import NotStreamable, TableChunk, iter_table_codes
from promoterlab.files import os_error_words
from promoterlab.sequence import Layout, SequenceError, concatenated_codes, is_integer, lay_out_concatenated

log = logging.getLogger("promoterlab")

STORE_DIR_ENV = "PROMOTERLAB_STORE_DIR"
MAX_SEQ_LEN = np.iinfo(np.uint16).max  # insert lengths are stored as uint16


class StoreDirError(StoreError, OSError):
    """The folder of the sequence-store cache cannot be made or written (an ``OSError`` too, so
    that ``store: auto`` falls back to reading the table into memory); the message names it, and
    ``PROMOTERLAB_STORE_DIR`` when that set it."""


def _options_key(layout: Layout, read: ReadOptions) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "layout": asdict(layout), "read": asdict(read)}


def _build(source: Path, folder: Path, layout: Layout, read: ReadOptions, chunk_rows: int,
           reader: Literal["auto", "pandas"]) -> dict[str, Any]:
    """Encode ``source`` into the empty ``folder``; return the header (written last)."""
    stat = source.stat()
    sha256 = file_sha256(source)
    written = None
    if reader == "auto":
        try:
            written = _write_arrays(iter_table_codes(source, read), folder, layout, read, source)
        except (NotStreamable, DataError) as err:  # iter_table reads it, or says what is wrong, and where
            log.debug("%s: reading it with pandas (%s)", source, err)
    if written is None:
        written = _write_arrays(_pandas_chunks(source, read, chunk_rows), folder, layout, read, source)
    rows, crcs, group_ids = written
    if rows == 0:
        raise DataError(source, None, "no rows left to encode")
    now = source.stat()
    if (now.st_size, now.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        raise DataError(source, None, "the file changed while it was being encoded; encode it again")
    header = {**_options_key(layout, read), "rows": rows, "seq_len": layout.seq_len,
              "source": {"path": str(source.resolve()), "bytes": stat.st_size, "sha256": sha256},
              "arrays": {}, "group_labels": None}
    names = list(crcs)
    if read.group_col:
        labels = list(group_ids)
        order = sorted(range(len(labels)), key=labels.__getitem__)
        rank = np.empty(len(labels), dtype=np.int32)
        rank[order] = np.arange(len(labels), dtype=np.int32)
        crcs["groups"] = _renumber(folder / _ARRAYS["groups"][0], rank)
        text = json.dumps([labels[i] for i in order]).encode()
        (folder / GROUP_LABELS).write_bytes(text)
        header.update(group_labels=GROUP_LABELS, group_labels_crc32=zlib.crc32(text))
    for name in names:
        file, dtype = array_file(name, layout.seq_len)
        shape = [rows, layout.seq_len] if name == "codes" else [rows]
        header["arrays"][name] = {"file": file, "dtype": dtype, "shape": shape, "crc32": crcs[name]}
    (folder / HEADER).write_text(json.dumps(header, indent=1))
    return header


def _pandas_chunks(source: Path, read: ReadOptions, chunk_rows: int) -> Iterator[TableChunk]:
    """:func:`~promoterlab.data.readers.iter_table`'s chunks as :class:`TableChunk`."""
    for frame in iter_table(source, read.seq_col, read.target_col, read.group_col,
                            drop_missing=read.drop_missing, chunk_rows=chunk_rows):
        codes, lengths = concatenated_codes(frame["seq"].tolist())
        group_index = group_labels = None
        if read.group_col:
            group_index, labels = pd.factorize(frame["group"].to_numpy().astype(str))
            group_labels = labels.tolist()
        yield TableChunk(codes, lengths, frame["target"].to_numpy(dtype=np.float64), frame["line"].to_numpy(),
                         group_index, group_labels)


def _write_arrays(chunks: Iterable[TableChunk], folder: Path, layout: Layout, read: ReadOptions,
                  source: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    """Lay out and write ``chunks`` into ``folder``'s array files (replacing them); return the
    rows, each array's CRC-32 and the group ids in order of first appearance."""
    names = [name for name in _ARRAYS if name != "groups" or read.group_col]
    handles = {name: open(folder / array_file(name, layout.seq_len)[0], "wb") for name in names}
    crcs = dict.fromkeys(names, 0)
    group_ids: dict[str, int] = {}
    rows = 0
    try:
        for chunk in chunks:
            try:
                codes, inserts, has_adapter = lay_out_concatenated(chunk.codes, chunk.lengths, layout)
            except SequenceError as err:
                raise DataError.from_sequence_error(err, source, chunk.lines) from None
            targets = chunk.targets.astype(np.float32)
            flags = is_integer(targets) * np.uint8(SINGLETON_BIT) | has_adapter * np.uint8(ADAPTER_BIT)
            arrays = {"codes": codes, "targets": targets, "flags": flags.astype(np.uint8),
                      "lines": chunk.lines.astype(np.uint32),
                      "inserts": inserts.astype(array_file("inserts", layout.seq_len)[1])}
            if read.group_col:
                ids = np.array([group_ids.setdefault(label, len(group_ids)) for label in chunk.group_labels],
                               dtype=np.int32)
                arrays["groups"] = ids[chunk.group_index]
            for name in names:
                array = np.ascontiguousarray(arrays[name])
                handles[name].write(array.data)
                crcs[name] = zlib.crc32(array.data, crcs[name])
            rows += len(chunk.lengths)
    finally:
        for handle in handles.values():
            handle.close()
    return rows, crcs, group_ids


def _renumber(path: Path, new_id: np.ndarray, block_rows: int = 1 << 22) -> int:
    """Replace every id in the int32 file ``path`` by ``new_id[id]``, block by block; return the CRC-32."""
    crc = 0
    with open(path, "r+b") as handle:
        while True:
            start = handle.tell()
            ids = np.fromfile(handle, dtype=np.int32, count=block_rows)
            if not len(ids):
                return crc
            renumbered = new_id[ids]
            handle.seek(start)
            handle.write(renumbered.data)
            crc = zlib.crc32(renumbered.data, crc)


def build_store(source: str | Path, store: str | Path, layout: Layout = Layout(),
                read: ReadOptions = ReadOptions(), chunk_rows: int = 100_000,
                reader: Literal["auto", "pandas"] = "auto") -> SequenceStore:
    """Encode the table ``source`` into the store folder ``store``, replacing a store there.

    The store is written to a temporary folder beside ``store`` and renamed into place when
    complete; on any error nothing is left behind and an existing store is kept.

    Parameters
    ----------
    source : str or Path
        DREAM text or CSV/TSV (optionally gzipped), as ``train`` reads it.
    store : str or Path
        Folder to create. An existing folder must be a store (it is replaced) or empty.
    layout : Layout
        How sequences are placed in the model's window.
    read : ReadOptions
        Columns and missing-value handling.
    chunk_rows : int
        Rows parsed and encoded at a time by pandas (bounds the memory used; pyarrow reads
        blocks of 1 MB).
    reader : {"auto", "pandas"}
        ``"auto"``: pyarrow's streaming CSV reader, with pandas
        (:func:`~promoterlab.data.readers.iter_table`) for the files, rows and errors it leaves
        to it; ``"pandas"``: pandas alone, the slower reference. The store is the same.

    Raises
    ------
    DataError
        Invalid source data (file, line and problem).
    StoreError
        ``store`` exists and is neither a store nor an empty folder.
    """
    source, store = Path(source), Path(store)
    if reader not in ("auto", "pandas"):
        raise ValueError(f"reader must be 'auto' or 'pandas', not {reader!r}")
    if layout.seq_len > MAX_SEQ_LEN:
        raise StoreError(f"{store}: a store holds windows of up to {MAX_SEQ_LEN:,} bp, not {layout.seq_len:,}")
    if store.exists() and not (store / HEADER).is_file() and (not store.is_dir() or any(store.iterdir())):
        raise StoreError(f"{store}: exists and is not a sequence store; choose another folder")
    tmp = store.with_name(f".{store.name}.{os.getpid()}@{_HOST}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        _build(source, tmp, layout, read, chunk_rows, reader)
        _replace_folder(tmp, store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_stale_temps(store)
    return open_store(store, verify=False)


_HOST = socket.gethostname().replace("/", "-") or "localhost"
STALE_TEMP_SECONDS = 6 * 3600  # a build writes its files continuously: one silent this long is dead
_TEMP_NAME = re.compile(r"\.(?P<pid>\d+)(?:@(?P<host>.+))?\.[0-9a-f]{8}\.tmp")


def remove_stale_temps(store: str | Path, now: float | None = None) -> list[Path]:
    """Remove the temporary folders of builds of ``store`` that were killed (``kill -9``, a lost
    machine): those of a process that is no longer alive on this host, and any (another host's,
    or of a name without a host) in which nothing was written for :data:`STALE_TEMP_SECONDS`.
    Returns the folders removed."""
    store = Path(store)
    now = time.time() if now is None else now
    removed = []
    for tmp in store.parent.glob(f".{glob.escape(store.name)}.*.tmp"):
        match = _TEMP_NAME.fullmatch(tmp.name[len(store.name) + 1:])
        if match is None or not tmp.is_dir() or tmp.is_symlink():
            continue
        dead = match["host"] == _HOST and not _pid_alive(int(match["pid"]))
        if dead or now - _last_write(tmp) > STALE_TEMP_SECONDS:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    if removed:
        log.info("removed %d unfinished store build(s) of killed processes beside %s", len(removed), store)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _last_write(folder: Path) -> float:
    """The latest modification time of ``folder`` and the files in it."""
    times = [folder.stat().st_mtime]
    with contextlib.suppress(OSError):
        times += [entry.stat().st_mtime for entry in folder.iterdir()]
    return max(times)


def encode_table(source: str | Path, store: str | Path, layout: Layout = Layout(), read: ReadOptions = ReadOptions(),
                 force: bool = False, chunk_rows: int = 100_000) -> tuple[SequenceStore, bool]:
    """``promoterlab data encode``: :func:`build_store`, unless ``store`` already holds ``source``
    (same SHA-256) encoded with the same options and passes its checksums (then it is kept,
    unless ``force``). Returns the store and whether it was built."""
    store = Path(store)
    if not force and (store / HEADER).is_file():
        try:
            current = open_store(store, verify=True, source=source)
        except StoreError:
            current = None
        wanted = _options_key(layout, read)
        if current is not None and wanted == {key: current.header[key] for key in wanted}:
            return current, False
    return build_store(source, store, layout, read, chunk_rows), True


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def default_cache_root(source: Path) -> Path:
    """Where :func:`store_for` keeps stores: ``$PROMOTERLAB_STORE_DIR``, else a
    ``.promoterlab-stores`` folder next to the data, else (a read-only data folder)
    ``$XDG_CACHE_HOME/promoterlab/stores`` (``~/.cache/promoterlab/stores``)."""
    if os.environ.get(STORE_DIR_ENV):
        return Path(os.environ[STORE_DIR_ENV])
    beside = source.resolve().parent
    if _writable(beside / ".promoterlab-stores") or (not (beside / ".promoterlab-stores").exists()
                                                     and _writable(beside)):
        return beside / ".promoterlab-stores"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "promoterlab" / "stores"


def _writable(folder: Path) -> bool:
    """Whether this user may add files to ``folder`` and its permissions allow writing at all:
    a data folder made read-only (``r-x``) is left alone even by root, who may write anywhere."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) and bool(mode & 0o222)


def store_for(source: str | Path, layout: Layout = Layout(), read: ReadOptions = ReadOptions(),
              cache_root: str | Path | None = None, chunk_rows: int = 100_000) -> SequenceStore:
    """The store of ``source`` encoded with ``layout`` and ``read``: reused when one was built from
    the same bytes with the same options, else built (once, under a file lock, so that
    concurrent processes such as DDP ranks wait for one build).

    Stores live in ``cache_root`` (default :func:`default_cache_root`) as
    ``<file name>.<source SHA-256[:16]>.<options digest>``; a damaged one is rebuilt, and stores of
    earlier contents of the same file, or of an earlier store format, with the same layout and read
    options are removed. A failed first build leaves no cache folder behind.

    Raises
    ------
    DataError
        Invalid source data (file, line and problem).
    """
    source = Path(source)
    if not source.is_file():
        raise DataError(source, None, "file not found")
    root = Path(cache_root) if cache_root is not None else default_cache_root(source)
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        named = f"{STORE_DIR_ENV}={root}" if cache_root is None and os.environ.get(STORE_DIR_ENV) else str(root)
        raise StoreDirError(f"cannot keep sequence stores in {os_error_words(err, root, named)}") from None
    options = hashlib.sha256(json.dumps(_options_key(layout, read), sort_keys=True).encode()).hexdigest()[:10]
    lock = root / f"{source.name}.{options}.lock"
    try:
        return _cached_store(source, root, lock, options, layout, read, chunk_rows)
    except BaseException:
        if created:  # a first build that failed (e.g. bad data) leaves no empty cache behind
            lock.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                root.rmdir()
        raise


def _cached_store(source: Path, root: Path, lock: Path, options: str, layout: Layout, read: ReadOptions,
                  chunk_rows: int) -> SequenceStore:
    from filelock import FileLock

    sha256 = file_sha256(source)
    folder = root / f"{source.name}.{sha256[:16]}.{options}"
    with FileLock(lock):
        if folder.exists():
            try:
                store = open_store(folder, verify=True)
                if store.header["source"]["sha256"] == sha256:
                    return store
                problem = "built from other data"
            except StoreError as err:
                problem = str(err)
            log.warning("rebuilding the sequence store of %s: %s", source, problem)
            shutil.rmtree(folder)
        log.info("encoding %s into the sequence store %s", source, folder)
        store = build_store(source, folder, layout, read, chunk_rows)
        _remove_stale(root, source, layout, read, keep=folder)
        return store


def _remove_stale(root: Path, source: Path, layout: Layout, read: ReadOptions, keep: Path) -> None:
    """Remove stores of ``source`` built with the same layout and read options from earlier
    contents of the file or by an earlier store format version."""
    for other in root.glob(f"{glob.escape(source.name)}.*.*"):
        if other == keep or not other.is_dir():
            continue
        try:
            header = json.loads((other / HEADER).read_text())
            same = (header["source"]["path"] == str(source.resolve()) and header["layout"] == asdict(layout)
                    and header["read"] == asdict(read))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if same:
            shutil.rmtree(other, ignore_errors=True)


