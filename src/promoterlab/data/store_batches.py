"""Training and validation sets read from a :mod:`sequence store <promoterlab.data.store>` batch by batch.

A :class:`StoreSet` has the interface of :class:`~promoterlab.data.encoded.EncodedSet`
(``codes``, ``targets``, ``singleton``, ``windows``, ``len``, ``subset``), but its codes read
only the rows a batch asks for from the memory-mapped arrays. So
:class:`~promoterlab.data.dataset.TrainBatches` (reverse-complement and EvoAug augmentation
included) and :class:`~promoterlab.data.dataset.EvalBatches` build the same batches from it as
from the in-memory set, without the data ever being loaded whole. :func:`config_store` finds
the store that a :class:`~promoterlab.config.DataConfig` asks for, and :func:`load_store_split`
is ``load_split`` from it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from promoterlab.data.encoded import EncodedSet, SplitSets, held_out_test_size
from promoterlab.data.readers import DataError
from promoterlab.data.store import ReadOptions, SequenceStore, StoreError, open_store, split_store
from promoterlab.data.store_build import store_for
from promoterlab.data.store_windows import store_common_suffix, store_windows

log = logging.getLogger("promoterlab")

# store="auto" uses the cached store for files of this size or more (on disk, gzipped or not):
# below it, reading the table into memory takes under 5 s and 400 MB (1 M DREAM rows of text in
# 13.7 s and 1.15 GB, docs/scaling.md), and the store would only add a folder next to the data.
STORE_AUTO_BYTES = 32 * 2**20


def _as_index(indices) -> np.ndarray:
    if torch.is_tensor(indices):
        return indices.numpy().astype(np.int64, copy=False)
    return np.asarray(indices, dtype=np.int64)


class StoreColumn:
    """One array of a store restricted to ``rows``: ``column[indices]`` reads rows
    ``rows[indices]`` into a new tensor (in sorted order, which keeps disk reads sequential).

    Parameters
    ----------
    store : SequenceStore
        The opened store.
    name : str
        ``codes``, ``targets`` or ``singleton``.
    rows : numpy.ndarray, optional
        Store rows of this set, in set order (all rows when ``None``).
    clip : (float, float), optional
        Clip values into this range when read (training targets with ``clip_targets``).
    zeros : bool
        Read zeros instead (the singleton column without the singleton channel).
    """

    def __init__(self, store: SequenceStore, name: str, rows: np.ndarray | None = None,
                 clip: Sequence[float] | None = None, zeros: bool = False):
        self.store, self.name, self.rows = store, name, rows
        self.clip, self.zeros = (tuple(clip) if clip is not None else None), zeros

    @property
    def array(self) -> np.memmap:
        return getattr(self.store, self.name)

    def __len__(self) -> int:
        return len(self.store) if self.rows is None else len(self.rows)

    def select(self, index: np.ndarray) -> "StoreColumn":
        """The column restricted to its ``index``-th rows."""
        index = _as_index(index)
        rows = index if self.rows is None else self.rows[index]
        return StoreColumn(self.store, self.name, rows, self.clip, self.zeros)

    def __getitem__(self, indices) -> torch.Tensor:
        index = _as_index(indices)
        if index.ndim != 1:
            raise IndexError(f"index a store column with a 1-d array of positions, got shape {index.shape}")
        rows = index if self.rows is None else self.rows[index]
        if self.zeros:
            return torch.zeros(len(rows), dtype=torch.bool)
        order = np.argsort(rows, kind="stable")
        values = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        values[order] = self.array[rows[order]]
        if self.clip is not None:
            np.clip(values, *self.clip, out=values)
        return torch.from_numpy(values)

    def numpy(self, block_rows: int = 1 << 20) -> np.ndarray:
        """Every row of the column in memory, read in blocks (for the small validation set, or
        the targets)."""
        blocks = [self[np.arange(start, min(start + block_rows, len(self)))].numpy()
                  for start in range(0, len(self), block_rows)]
        if not blocks:
            return np.zeros((0, *self.array.shape[1:]), dtype=bool if self.zeros else self.array.dtype)
        return np.concatenate(blocks)


@dataclass
class StoreSet:
    """Store rows as a lazy :class:`~promoterlab.data.encoded.EncodedSet`: ``codes`` read from
    the store per batch; ``targets`` and ``singleton`` are store columns or, as
    :func:`load_store_split` returns them, tensors in memory (5 bytes per sequence)."""

    codes: StoreColumn
    targets: StoreColumn | torch.Tensor
    singleton: StoreColumn | torch.Tensor
    windows: torch.Tensor | None = None

    @classmethod
    def of(cls, store: SequenceStore, rows: np.ndarray | None = None, singleton_channel: bool = True,
           clip: Sequence[float] | None = None) -> "StoreSet":
        """Rows ``rows`` of ``store`` (all when ``None``); with ``singleton_channel`` False the
        flags read as 0; ``clip`` clips the targets as they are read."""
        rows = None if rows is None else _as_index(rows)
        return cls(StoreColumn(store, "codes", rows), StoreColumn(store, "targets", rows, clip=clip),
                   StoreColumn(store, "singleton", rows, zeros=not singleton_channel))

    def __len__(self) -> int:
        return len(self.codes)

    def subset(self, index: np.ndarray) -> "StoreSet":
        def part(column):
            if isinstance(column, StoreColumn):
                return column.select(index)
            return None if column is None else column[torch.as_tensor(_as_index(index))]

        return StoreSet(part(self.codes), part(self.targets), part(self.singleton), part(self.windows))

    def load(self) -> EncodedSet:
        """The rows in memory, as the :class:`~promoterlab.data.encoded.EncodedSet` ``load_split`` returns."""
        def tensor(column):
            return torch.from_numpy(column.numpy()) if isinstance(column, StoreColumn) else column

        return EncodedSet(tensor(self.codes), tensor(self.targets), tensor(self.singleton), self.windows)


def config_store(cfg, cache_root: str | Path | None = None) -> SequenceStore | None:
    """The store that ``cfg.store`` of a :class:`~promoterlab.config.DataConfig` asks for, or
    ``None`` to read ``cfg.path`` into memory.

    ``"auto"`` is the cached store of ``cfg.path`` (:func:`~promoterlab.data.store_build.store_for`)
    when the file has at least :data:`STORE_AUTO_BYTES` and the cache can be written; ``"on"``
    is that store always; ``"off"`` is ``None``; anything else is the folder of a store made
    by ``promoterlab data encode``, which must hold ``cfg.path`` as it is now, encoded with the
    run's layout and read options.

    Raises
    ------
    StoreError
        An explicit store that is missing, damaged, stale or encoded with other options.
    DataError
        Invalid source data, found while building the cached store.
    """
    read = ReadOptions(cfg.seq_col, cfg.target_col, cfg.group_col, cfg.drop_missing)
    if cfg.store == "off":
        return None
    if cfg.store == "auto":
        if cfg.path is None or not Path(cfg.path).is_file() or Path(cfg.path).stat().st_size < STORE_AUTO_BYTES:
            return None  # a missing file is reported by the in-memory reader
        try:
            return store_for(cfg.path, cfg.layout, read, cache_root=cache_root)
        except OSError as err:  # e.g. no writable cache: the in-memory path still works
            log.warning("not using a sequence store for %s (%s); reading it into memory", cfg.path, err)
            return None
    if cfg.store == "on":
        return store_for(cfg.path, cfg.layout, read, cache_root=cache_root)
    store = open_store(cfg.store, verify=True, source=cfg.path)
    _check_options(store, cfg.layout, read)
    return store


def _check_options(store: SequenceStore, layout, read: ReadOptions) -> None:
    """Refuse a store encoded with another layout or other read options than the run's."""
    built = {**asdict(store.layout), **asdict(store.read)}
    wanted = {**asdict(layout), **asdict(read)}
    differ = [name for name in wanted if built[name] != wanted[name]]
    if differ:
        shown = ", ".join(f"{name} {_short(built[name])} (the run: {_short(wanted[name])})" for name in differ)
        raise StoreError(f"{store.path}: encoded with {shown}; encode it again with the run's options "
                         f"('promoterlab data encode'), or train with --store auto")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:24] + "...'"


def load_store_split(cfg, seed: int, windows: bool = False, cache_root: str | Path | None = None,
                     store: SequenceStore | None = None) -> SplitSets:
    """:func:`~promoterlab.data.dataset.load_split` from a store: the same rows, targets, flags
    and (with ``windows``) insert windows, in the same order.

    The training set is a :class:`StoreSet` whose codes are read batch by batch; its targets
    (clipped to ``cfg.clip_targets``), flags and windows, and the whole validation and test
    sets, are in memory. ``store`` defaults to the cached store of ``cfg.path``
    (:func:`~promoterlab.data.store_build.store_for`, built on first use).
    """
    if store is None:
        read = ReadOptions(cfg.seq_col, cfg.target_col, cfg.group_col, cfg.drop_missing)
        store = store_for(cfg.path, cfg.layout, read, cache_root=cache_root)
    try:
        rows = split_store(store, cfg.train_size, cfg.val_size, seed, held_out_test_size(cfg))
    except ValueError as err:
        raise DataError(cfg.path or store.path, None, str(err)) from None
    train_set = StoreSet.of(store, rows.train, cfg.singleton_channel)
    train_set.targets = torch.from_numpy(train_set.targets.numpy())
    train_set.singleton = torch.from_numpy(train_set.singleton.numpy())
    if cfg.clip_targets:
        low, high = cfg.clip_targets
        train_set.targets = train_set.targets.clamp(float(low), float(high))
    val_set = StoreSet.of(store, rows.val, cfg.singleton_channel).load()
    test_set = StoreSet.of(store, rows.test, singleton_channel=False).load() if len(rows.test) else None
    if windows:
        right_flank = store_common_suffix(store, rows.train)
        train_set.windows = store_windows(store, rows.train, right_flank)
        val_set.windows = store_windows(store, rows.val, right_flank)
    return SplitSets(train_set, val_set, test_set, rows, len(store))
