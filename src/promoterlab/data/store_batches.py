"""Training and validation sets read from a :mod:`sequence store <promoterlab.data.store>` batch by batch.

A :class:`StoreSet` has the interface of :class:`~promoterlab.data.dataset.EncodedSet`
(``codes``, ``targets``, ``singleton``, ``len``, ``subset``), but its columns read only the
rows a batch asks for from the memory-mapped arrays. So
:class:`~promoterlab.data.dataset.TrainBatches` (reverse-complement augmentation included) and
:class:`~promoterlab.data.dataset.EvalBatches` build the same batches from it as from the
in-memory set, without the data ever being loaded whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from promoterlab.data.dataset import EncodedSet
from promoterlab.data.readers import DataError
from promoterlab.data.store import ReadOptions, SequenceStore, split_store
from promoterlab.data.store_build import store_for


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
    """Store rows as a lazy :class:`~promoterlab.data.dataset.EncodedSet`."""

    codes: StoreColumn
    targets: StoreColumn
    singleton: StoreColumn

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
        return StoreSet(self.codes.select(index), self.targets.select(index), self.singleton.select(index))

    def load(self) -> EncodedSet:
        """The rows in memory, as the :class:`~promoterlab.data.dataset.EncodedSet` ``load_split`` returns."""
        return EncodedSet(torch.from_numpy(self.codes.numpy()), torch.from_numpy(self.targets.numpy()),
                          torch.from_numpy(self.singleton.numpy()))


def load_store_split(cfg, seed: int, cache_root: str | Path | None = None) -> tuple[StoreSet, StoreSet]:
    """:func:`~promoterlab.data.dataset.load_split` from the store of ``cfg.path`` (built on first
    use by :func:`~promoterlab.data.store.store_for`): the same rows, targets and flags, read
    batch by batch. Training targets are clipped to ``cfg.clip_targets`` as in ``load_split``."""
    read = ReadOptions(cfg.seq_col, cfg.target_col, cfg.group_col, cfg.drop_missing)
    store = store_for(cfg.path, cfg.layout, read, cache_root=cache_root)
    try:
        train_idx, val_idx = split_store(store, cfg.train_size, cfg.val_size, seed)
    except ValueError as err:
        raise DataError(cfg.path, None, str(err)) from None
    return (StoreSet.of(store, train_idx, cfg.singleton_channel, cfg.clip_targets),
            StoreSet.of(store, val_idx, cfg.singleton_channel))
