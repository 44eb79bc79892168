"""An encoded sequence store: a table's laid-out codes, targets and flags as memory-mapped arrays.

A store is a folder of raw C-order numpy arrays, each read with :class:`numpy.memmap`, and a
``header.json`` that describes them (dtype, shape, CRC-32), the layout they were encoded with
and the source file they came from (path, size, SHA-256):

=================  ======================  ==============================================
file               array                   per sequence
=================  ======================  ==============================================
``codes.u8``       ``(n, seq_len)`` uint8  laid-out codes A=0 C=1 G=2 T=3 N=4 (150 B)
``targets.f32``    ``(n,)`` float32        measured value (4 B)
``flags.u8``       ``(n,)`` uint8          bit 0: integer target (DREAM's singleton flag);
                                           bit 1: the row began with the left adapter (1 B)
``lines.u32``      ``(n,)`` uint32         line of the row in the source, for messages (4 B)
``inserts.u8``     ``(n,)`` uint8          insert length: bases after a leading adapter (1 B;
                                           ``inserts.u16``, 2 B, when ``seq_len`` > 255)
``groups.i32``     ``(n,)`` int32          group id, only with a group column (4 B)
=================  ======================  ==============================================

That is 160 B per sequence of the default 150 bp layout (164 with groups). An opened store reads
the two flags as bool arrays, ``singleton`` and ``adapter`` (:class:`FlagBit`).

The insert lengths and adapter flags give each row's EvoAug insert window without the source
(:func:`~promoterlab.data.store_windows.store_windows`).

Group ids index ``group_labels.json``, sorted as strings, so that a split by id equals a split
by label (:func:`split_store`).

This module reads and checks stores; :mod:`promoterlab.data.store_build` writes them
(``promoterlab data encode``, and the cache of :func:`~promoterlab.data.store_build.store_for`)
and :mod:`promoterlab.data.store_batches` reads training and validation batches from them.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promoterlab.files import file_sha256
from promoterlab.sequence import Layout

# 2: insert lengths and adapter flags; 3: both flags in one byte, one-byte insert lengths
FORMAT, VERSION = "promoterlab-sequence-store", 3
HEADER = "header.json"
GROUP_LABELS = "group_labels.json"
_ARRAYS = {"codes": ("codes.u8", "uint8"), "targets": ("targets.f32", "float32"),
           "flags": ("flags.u8", "uint8"), "lines": ("lines.u32", "uint32"),
           "inserts": ("inserts.u8", "uint8"), "groups": ("groups.i32", "int32")}
SINGLETON_BIT, ADAPTER_BIT = 1, 2  # masks in flags.u8
_BLOCK = 1 << 24  # bytes read at a time when checksumming


class StoreError(ValueError):
    """A store that cannot be used (missing, incomplete, truncated, corrupted, stale); the message
    names the store and the problem."""


@dataclass(frozen=True)
class ReadOptions:
    """How the source table is read (the options of ``train`` that change what is stored)."""

    seq_col: str | None = None
    target_col: str | None = None
    group_col: str | None = None
    drop_missing: bool = False


def array_file(name: str, seq_len: int) -> tuple[str, str]:
    """File name and dtype of the store array ``name`` for windows of ``seq_len`` positions."""
    if name == "inserts" and seq_len > np.iinfo(np.uint8).max:
        return "inserts.u16", "uint16"
    return _ARRAYS[name]


class FlagBit:
    """One bit of a store's ``flags`` array, read as a bool array: ``bit[rows]`` is an array,
    ``numpy.asarray(bit)`` all rows."""

    dtype = np.dtype(bool)

    def __init__(self, flags: np.ndarray, mask: int):
        self.flags, self.mask = flags, mask

    @property
    def shape(self) -> tuple[int, ...]:
        return self.flags.shape

    def __len__(self) -> int:
        return len(self.flags)

    def __getitem__(self, index) -> np.ndarray:
        return (np.asarray(self.flags[index]) & self.mask) != 0

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)


class SequenceStore:
    """An opened store: ``codes``, ``targets``, ``lines``, ``inserts`` and ``groups`` (or
    ``None``) are read-only :class:`numpy.memmap` views, ``singleton`` and ``adapter`` the
    :class:`FlagBit` views of ``flags``; ``group_labels`` names the group ids.

    Pickled as its path, so that DataLoader workers and spawned processes map the files
    themselves instead of receiving a copy of the arrays.
    """

    def __init__(self, path: str | Path, header: dict[str, Any]):
        self.path, self.header = Path(path), header
        self.layout = Layout(**header["layout"])
        self.read = ReadOptions(**header["read"])
        arrays = {name: np.memmap(self.path / spec["file"], dtype=spec["dtype"], mode="r", shape=tuple(spec["shape"]))
                  for name, spec in header["arrays"].items()}
        self.codes, self.targets, self.lines = arrays["codes"], arrays["targets"], arrays["lines"]
        self.singleton = FlagBit(arrays["flags"], SINGLETON_BIT)
        self.adapter = FlagBit(arrays["flags"], ADAPTER_BIT)
        self.inserts, self.groups = arrays["inserts"], arrays.get("groups")
        labels = header.get("group_labels")
        self.group_labels = json.loads((self.path / labels).read_text()) if labels else None

    def __len__(self) -> int:
        return int(self.header["rows"])

    def __repr__(self) -> str:
        return f"SequenceStore({str(self.path)!r}, rows={len(self)}, source={self.header['source']['path']!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "header": self.header}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["header"])


def _read_header(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise StoreError(f"{path}: no sequence store here" + (" (not a folder)" if path.exists() else ""))
    try:
        header = json.loads((path / HEADER).read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: no {HEADER}: not a sequence store, or its encoding did not finish; "
                         f"encode it again with 'promoterlab data encode'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: damaged {HEADER} ({err}); encode the data again") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StoreError(f"{path}: {HEADER} is not a promoterlab sequence store header")
    if header.get("version") != VERSION:
        raise StoreError(f"{path}: store format version {header.get('version')}, this promoterlab reads "
                         f"version {VERSION}; encode the data again")
    return header


def verify_store(path: str | Path, header: dict[str, Any], checksums: bool = True) -> None:
    """Check every array's size against the header and, with ``checksums``, its CRC-32.

    Raises
    ------
    StoreError
        Naming the file that is missing, truncated or corrupted.
    """
    path = Path(path)
    for spec in header["arrays"].values():
        file = path / spec["file"]
        expected = int(np.prod(spec["shape"])) * np.dtype(spec["dtype"]).itemsize
        if not file.is_file():
            raise StoreError(f"{path}: {spec['file']} is missing; encode the data again")
        size = file.stat().st_size
        if size != expected:
            raise StoreError(f"{path}: {spec['file']} has {size:,} bytes, the header says {expected:,} "
                             f"(truncated or overwritten); encode the data again")
        if checksums:
            crc = 0
            with open(file, "rb") as handle:
                while block := handle.read(_BLOCK):
                    crc = zlib.crc32(block, crc)
            if crc != spec["crc32"]:
                raise StoreError(f"{path}: {spec['file']} does not match its checksum (corrupted); "
                                 f"encode the data again")
    labels = header.get("group_labels")
    if labels and not (path / labels).is_file():
        raise StoreError(f"{path}: {labels} is missing; encode the data again")
    if labels and checksums and zlib.crc32((path / labels).read_bytes()) != header["group_labels_crc32"]:
        raise StoreError(f"{path}: {labels} does not match its checksum (corrupted); encode the data again")


def open_store(path: str | Path, verify: bool = True, source: str | Path | None = None) -> SequenceStore:
    """Open a store built by :func:`build_store` (``promoterlab data encode``).

    Parameters
    ----------
    path : str or Path
        Store folder.
    verify : bool
        Check every file's CRC-32 (reads the store once, about 0.5 s per GB); array sizes are
        always checked.
    source : str or Path, optional
        The table the store should hold: refused when its SHA-256 differs from the one the store
        was built from.

    Raises
    ------
    StoreError
        When the store is missing, unfinished, truncated, corrupted or built from other data.
    """
    path = Path(path)
    header = _read_header(path)
    verify_store(path, header, checksums=verify)
    if source is not None:
        built_from = header["source"]
        if not Path(source).is_file():
            raise StoreError(f"{path}: its source {source} is not a file")
        if file_sha256(source) != built_from["sha256"]:
            if Path(built_from["path"]) != Path(source).resolve():
                raise StoreError(f"{path}: the store was built from another file, {built_from['path']}, not "
                                 f"{source}; encode {source} into another folder (promoterlab data encode "
                                 f"{source} -o FOLDER), or train on {built_from['path']}")
            raise StoreError(f"{path}: {source} changed since the store was built from it "
                             f"(SHA-256 {built_from['sha256'][:12]}...); encode it again")
    return SequenceStore(path, header)


def split_store(store: SequenceStore, train_size: int | None, val_size: int | str, seed: int,
                test_size: int | float | str = 0) -> "Split":
    """:func:`~promoterlab.data.splits.split_indices` of a store's rows: the same rows as
    ``load_split`` chooses from the table (group labels are passed as labels, so whole groups
    go to one side exactly as from the table; that holds one label string per row in memory)."""
    from promoterlab.data.splits import split_indices

    groups = None
    if store.groups is not None:
        groups = np.asarray(store.group_labels, dtype=str)[np.asarray(store.groups)]
    return split_indices(len(store), train_size, val_size, seed, groups, test_size)
