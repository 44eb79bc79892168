"""Encoded sequences in memory with their targets, singleton flags and insert windows.

:func:`~promoterlab.data.dataset.load_split` returns them, and a store's
:class:`~promoterlab.data.store_batches.StoreSet` loads into one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
