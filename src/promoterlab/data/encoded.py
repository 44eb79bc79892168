"""Encoded sequences in memory with their targets, singleton flags and insert windows, and the
sets of a split.

:func:`~promoterlab.data.dataset.load_split` returns them, and a store's
:class:`~promoterlab.data.store_batches.StoreSet` loads into one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from promoterlab.data.splits import Split


@dataclass
class EncodedSet:
    """Encoded sequences with their targets and singleton flags, and optionally each sequence's
    insert window (``(n, 2)`` start, stop; :func:`~promoterlab.sequence.insert_windows`)."""

    codes: torch.Tensor
    targets: torch.Tensor
    singleton: torch.Tensor
    windows: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def subset(self, index: np.ndarray) -> "EncodedSet":
        index = torch.as_tensor(index, dtype=torch.long)
        windows = None if self.windows is None else self.windows[index]
        return EncodedSet(self.codes[index], self.targets[index], self.singleton[index], windows)


class SplitSets(NamedTuple):
    """The encoded sets of a split and the rows each took from the table.

    ``test`` is None without a held-out test split (``test_size`` 0, or an external test file);
    its singleton channel is always 0, as at prediction. ``n_rows`` counts the table's rows.
    """

    train: EncodedSet
    val: EncodedSet
    test: EncodedSet | None
    rows: Split
    n_rows: int


def held_out_test_size(cfg) -> int | float | str:
    """The held-out test size a :class:`~promoterlab.config.DataConfig` asks of the split: its
    ``test_size``, or 0 when an external ``test_path`` is the test set instead."""
    return 0 if getattr(cfg, "test_path", None) else getattr(cfg, "test_size", 0)
