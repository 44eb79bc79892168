"""EvoAug insert windows of store rows, equal to those of the in-memory path.

A store keeps each row's laid-out codes, insert length and adapter flag: the
:class:`~promoterlab.sequence.LaidOut` rows that :func:`~promoterlab.sequence.laid_out_windows`
and :func:`~promoterlab.sequence.laid_out_common_suffix` read, as for sequences laid out in
memory. Both functions here read the store in blocks, in row order, to bound memory.
"""

from __future__ import annotations

import numpy as np
import torch

from promoterlab.data.store import SequenceStore
from promoterlab.sequence import LaidOut, laid_out_common_suffix, laid_out_windows

_BLOCK_ROWS = 1 << 16


def _laid_out(store: SequenceStore, rows: np.ndarray, codes: bool = True) -> LaidOut:
    """Sorted store ``rows`` as laid-out sequences; without ``codes``, their codes are not read
    (all A) and must not be used."""
    window = store.codes[rows] if codes else np.broadcast_to(np.uint8(0), (len(rows), store.codes.shape[1]))
    return LaidOut(window, store.inserts[rows].astype(np.int64), store.adapter[rows])


def store_common_suffix(store: SequenceStore, rows: np.ndarray, block_rows: int = _BLOCK_ROWS) -> str:
    """:func:`~promoterlab.sequence.common_suffix` of the sequences of store ``rows``: the
    longest ending they all share (upper case)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    suffix = None
    for begin in range(0, len(rows), block_rows):
        suffix = laid_out_common_suffix(_laid_out(store, rows[begin:begin + block_rows]),
                                        store.layout.left_adapter, suffix)
        if not suffix:
            break
    return suffix or ""


def store_windows(store: SequenceStore, rows: np.ndarray, right_flank: str = "",
                  block_rows: int = _BLOCK_ROWS) -> torch.Tensor:
    """:func:`~promoterlab.sequence.insert_windows` of store ``rows`` (in their order).

    Returns
    -------
    torch.Tensor
        ``(len(rows), 2)`` int64: start (inclusive) and stop (exclusive) in the window.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    windows = torch.empty((len(rows), 2), dtype=torch.int64)
    for begin in range(0, len(rows), block_rows):
        chosen = order[begin:begin + block_rows]
        laid = _laid_out(store, rows[chosen], codes=bool(right_flank))  # only a flank is looked for in them
        windows[torch.from_numpy(chosen)] = laid_out_windows(laid, store.layout, right_flank)
    return windows
