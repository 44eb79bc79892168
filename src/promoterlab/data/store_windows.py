"""EvoAug insert windows of store rows, equal to those of the in-memory path.

:func:`~promoterlab.data.augment.insert_windows` finds each sequence's insert from its string:
it starts where the sequence (less a leading adapter) starts in the window, and stops before a
right flank that every training sequence shares (:func:`~promoterlab.data.augment.common_suffix`).
A store keeps no strings, but each row's insert length and adapter flag, and the insert is the
end of the row's codes; so the last bases of the sequence as it was read are the codes' last
bases, then the adapter's. Both functions read the store in blocks, in row order.
"""

from __future__ import annotations

import numpy as np
import torch

from promoterlab.data.encoding import _CODE_OF_BYTE, BASES
from promoterlab.data.store import SequenceStore

_BLOCK_ROWS = 1 << 16


def _blocks(rows: np.ndarray, block_rows: int):
    for begin in range(0, len(rows), block_rows):
        yield rows[begin:begin + block_rows]


def sequence_tails(store: SequenceStore, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``width`` bases of each row's sequence as it was read (its adapter included), as
    codes, last base first.

    Parameters
    ----------
    store : SequenceStore
        The store.
    rows : numpy.ndarray
        Sorted store rows.
    width : int
        Bases to return per row.

    Returns
    -------
    tuple of numpy.ndarray
        ``(len(rows), width)`` uint8 codes, and ``(len(rows), width)`` bool: True where the
        sequence has that many bases (codes elsewhere are meaningless).
    """
    adapter = store.layout.left_adapter
    inserts = store.inserts[rows].astype(np.int64)
    lengths = inserts + store.adapter[rows] * len(adapter)
    position = np.arange(width)
    window = store.codes.shape[1]
    from_insert = store.codes[rows][:, ::-1][:, np.minimum(position, window - 1)]
    if adapter:
        adapter_codes = _CODE_OF_BYTE[np.frombuffer(adapter.encode("ascii", "replace"), dtype=np.uint8)][::-1]
        into_adapter = np.clip(position - inserts[:, None], 0, len(adapter) - 1)
        tails = np.where(position < inserts[:, None], from_insert, adapter_codes[into_adapter])
    else:
        tails = from_insert
    return tails, position < lengths[:, None]


def store_common_suffix(store: SequenceStore, rows: np.ndarray, block_rows: int = _BLOCK_ROWS) -> str:
    """:func:`~promoterlab.data.augment.common_suffix` of the sequences of store ``rows``: the
    longest ending they all share (upper case)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if not len(rows):
        return ""
    adapter = len(store.layout.left_adapter)
    width = int((store.inserts[rows].astype(np.int64) + store.adapter[rows] * adapter).min())
    reference = None
    for block in _blocks(rows, block_rows):
        if width == 0:
            break
        tails, _ = sequence_tails(store, block, width)
        reference = tails[0] if reference is None else reference[:width]
        differs = np.flatnonzero((tails != reference).any(axis=0))
        width = int(differs[0]) if len(differs) else width
    return "".join(BASES[code] for code in reference[:width][::-1]) if width else ""


def store_windows(store: SequenceStore, rows: np.ndarray, right_flank: str = "",
                  block_rows: int = _BLOCK_ROWS) -> torch.Tensor:
    """:func:`~promoterlab.data.augment.insert_windows` of store ``rows`` (in their order).

    Returns
    -------
    torch.Tensor
        ``(len(rows), 2)`` int64: start (inclusive) and stop (exclusive) in the window.
    """
    rows = np.asarray(rows, dtype=np.int64)
    length = store.codes.shape[1]
    start = length - store.inserts[rows].astype(np.int64)
    stop = np.full_like(start, length)
    flank = right_flank.upper()
    if flank:
        wanted = _CODE_OF_BYTE[np.frombuffer(flank.encode("ascii", "replace"), dtype=np.uint8)][::-1]
        order = np.argsort(rows, kind="stable")
        ends = np.empty(len(rows), dtype=bool)
        for begin in range(0, len(rows), block_rows):
            chosen = order[begin:begin + block_rows]
            tails, present = sequence_tails(store, rows[chosen], len(flank))
            ends[chosen] = present[:, -1] & (tails == wanted).all(axis=1)
        stop = stop - ends * len(flank)
    return torch.from_numpy(np.stack([start, np.maximum(stop, start)], axis=1))
