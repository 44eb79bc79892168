"""Write sequence stores (see :mod:`promoterlab.data.store` for the format).

The table is parsed in chunks by :func:`~promoterlab.data.readers.iter_table` (the validation
and messages of ``train``), laid out and encoded by a vectorised :func:`layout_codes`, and
written as it goes, so memory stays bounded whatever the file size. A store is written to a
temporary folder and renamed into place only when complete. :func:`store_for` keeps one store
per source file and options in a cache, as ``train`` uses it.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from promoterlab.data.encoding import _CODE_OF_BYTE, is_integer
from promoterlab.data.layout import Layout
from promoterlab.data.readers import DataError, iter_table
from promoterlab.data.store import (_ARRAYS, FORMAT, GROUP_LABELS, HEADER, VERSION, ReadOptions, SequenceStore,
                                    StoreError, file_sha256, open_store)

log = logging.getLogger("promoterlab")

STORE_DIR_ENV = "PROMOTERLAB_STORE_DIR"
MAX_SEQ_LEN = np.iinfo(np.uint16).max  # insert lengths are stored as uint16


_TRANSLATE = bytes(_CODE_OF_BYTE.tolist())  # bytes.translate table: ACGTN (any case) -> 0..4, else 255


@functools.lru_cache(maxsize=8)
def _window_rows(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Row ``k`` of each ``(seq_len + 1, seq_len)`` table is for an insert of ``seq_len - k`` bases:
    the codes start with the last ``k`` bases of N-padding + upstream, and the mask is True where
    the insert goes."""
    length = layout.seq_len
    padded = np.frombuffer(("N" * length + layout.upstream).encode("ascii", "replace").translate(_TRANSLATE),
                           dtype=np.uint8)
    codes = np.zeros((length + 1, length), dtype=np.uint8)
    for k in range(1, length + 1):
        codes[k, :k] = padded[len(padded) - k:]
    return codes, np.arange(length) >= np.arange(length + 1)[:, None]


def layout_codes(seqs: Sequence[str], layout: Layout, path: str | Path = "<sequences>",
                 lines: np.ndarray | None = None) -> np.ndarray:
    """Vectorised :func:`~promoterlab.data.dataset.encode_sequences` (same codes, same errors) for
    validated A/C/G/T/N strings: strip a leading adapter, right-align the insert in the window,
    fill the left with the upstream plasmid (N beyond it).

    Returns
    -------
    numpy.ndarray
        ``(n, layout.seq_len)`` uint8 codes.
    """
    return layout_inserts(seqs, layout, path, lines)[0]


def layout_inserts(seqs: Sequence[str], layout: Layout, path: str | Path = "<sequences>",
                   lines: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`layout_codes` with each sequence's insert length (bases after a stripped leading
    adapter; the insert fills the window's last positions) and whether it had that adapter.

    Returns
    -------
    tuple of numpy.ndarray
        ``(n, layout.seq_len)`` uint8 codes, ``(n,)`` int64 insert lengths, ``(n,)`` bool flags.
    """
    n, length = len(seqs), layout.seq_len
    if n == 0:
        return np.zeros((0, length), dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    data = np.frombuffer("".join(seqs).encode("ascii", "replace").translate(_TRANSLATE), dtype=np.uint8)
    if len(data) != lengths.sum() or (data == 255).any():
        raise ValueError("sequences must be validated A/C/G/T/N strings")
    starts = np.concatenate([[0], np.cumsum(lengths[:-1])])
    adapter = layout.left_adapter
    has_adapter = np.zeros(n, dtype=bool)
    if adapter and set(adapter) <= set("ACGTN"):  # a lower-case adapter never matches upper-cased input
        candidates = np.flatnonzero(lengths >= len(adapter))
        heads = data[starts[candidates, None] + np.arange(len(adapter))]
        wanted = _CODE_OF_BYTE[np.frombuffer(adapter.encode(), dtype=np.uint8)]
        has_adapter[candidates] = (heads == wanted).all(axis=1)
    inserts = lengths - has_adapter * len(adapter)
    if (inserts > length).any():
        row = int(np.argmax(inserts > length))
        problem = (f"sequence of {int(inserts[row])} bp (after stripping the left adapter) is longer than "
                   f"the model length {length}")
        if lines is None:
            raise DataError(path, None, f"sequence {row + 1}: {problem}")
        raise DataError(path, int(lines[row]), problem)
    if has_adapter.any():
        keep = np.ones(len(data), dtype=bool)
        keep[(starts[has_adapter, None] + np.arange(len(adapter))).ravel()] = False
        data = data[keep]
    left = length - inserts
    upstream, insert_mask = _window_rows(layout)
    codes = upstream[left]
    codes[insert_mask[left]] = data  # C order: row by row, the inserts one after another
    if (codes == 255).any():
        raise ValueError(f"layout upstream {layout.upstream[:20]!r}...: characters other than ACGTN")
    return codes, inserts, has_adapter


def _options_key(layout: Layout, read: ReadOptions) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "layout": asdict(layout), "read": asdict(read)}


def _build(source: Path, folder: Path, layout: Layout, read: ReadOptions, chunk_rows: int) -> dict[str, Any]:
    """Encode ``source`` into the empty ``folder``; return the header (written last)."""
    stat = source.stat()
    sha256 = file_sha256(source)
    names = [name for name in _ARRAYS if name != "groups" or read.group_col]
    handles = {name: open(folder / _ARRAYS[name][0], "wb") for name in names}
    crcs = dict.fromkeys(names, 0)
    group_ids: dict[str, int] = {}
    rows = 0
    try:
        for frame in iter_table(source, read.seq_col, read.target_col, read.group_col,
                                drop_missing=read.drop_missing, chunk_rows=chunk_rows):
            lines = frame["line"].to_numpy()
            targets = frame["target"].to_numpy(dtype=np.float32)
            codes, inserts, has_adapter = layout_inserts(frame["seq"].tolist(), layout, source, lines)
            arrays = {"codes": codes, "targets": targets, "singleton": is_integer(targets),
                      "lines": lines.astype(np.uint32), "inserts": inserts.astype(np.uint16), "adapter": has_adapter}
            if read.group_col:
                codes, labels = pd.factorize(frame["group"].to_numpy().astype(str))
                ids = np.array([group_ids.setdefault(label, len(group_ids)) for label in labels], dtype=np.int32)
                arrays["groups"] = ids[codes]
            for name in names:
                array = np.ascontiguousarray(arrays[name])
                handles[name].write(array.data)
                crcs[name] = zlib.crc32(array.data, crcs[name])
            rows += len(frame)
    finally:
        for handle in handles.values():
            handle.close()
    if rows == 0:
        raise DataError(source, None, "no rows left to encode")
    now = source.stat()
    if (now.st_size, now.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        raise DataError(source, None, "the file changed while it was being encoded; encode it again")
    header = {**_options_key(layout, read), "rows": rows, "seq_len": layout.seq_len,
              "source": {"path": str(source.resolve()), "bytes": stat.st_size, "sha256": sha256},
              "arrays": {}, "group_labels": None}
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
        file, dtype = _ARRAYS[name]
        shape = [rows, layout.seq_len] if name == "codes" else [rows]
        header["arrays"][name] = {"file": file, "dtype": dtype, "shape": shape, "crc32": crcs[name]}
    (folder / HEADER).write_text(json.dumps(header, indent=1))
    return header


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
                read: ReadOptions = ReadOptions(), chunk_rows: int = 100_000) -> SequenceStore:
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
        Rows parsed and encoded at a time (bounds the memory used).

    Raises
    ------
    DataError
        Invalid source data (file, line and problem).
    StoreError
        ``store`` exists and is neither a store nor an empty folder.
    """
    source, store = Path(source), Path(store)
    if layout.seq_len > MAX_SEQ_LEN:
        raise StoreError(f"{store}: a store holds windows of up to {MAX_SEQ_LEN:,} bp, not {layout.seq_len:,}")
    if store.exists() and not (store / HEADER).is_file() and (not store.is_dir() or any(store.iterdir())):
        raise StoreError(f"{store}: exists and is not a sequence store; choose another folder")
    tmp = store.with_name(f".{store.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        _build(source, tmp, layout, read, chunk_rows)
        _replace_folder(tmp, store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_store(store, verify=False)


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
    root.mkdir(parents=True, exist_ok=True)
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


