"""Lay out and encode many sequences at once into the model's window, for the sequence store.

The vectorised equivalent of :func:`~promoterlab.data.dataset.encode_sequences` (the same codes
and errors): strip a leading adapter, right-align the insert in the window and fill the left
with the upstream plasmid (N beyond it), on the sequences' concatenated codes rather than one
string at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from promoterlab.data.encoding import _CODE_OF_BYTE
from promoterlab.data.layout import Layout
from promoterlab.data.readers import DataError
from promoterlab.data.table_stream import BYTE_CODES


@functools.lru_cache(maxsize=8)
def _upstream_rows(layout: Layout) -> np.ndarray:
    """Row ``k`` of this ``(seq_len + 1, seq_len)`` table starts with what precedes an insert of
    ``seq_len - k`` bases in the window: the last ``k`` bases of N-padding + upstream."""
    length = layout.seq_len
    padded = np.frombuffer(("N" * length + layout.upstream).encode("ascii", "replace").translate(BYTE_CODES),
                           dtype=np.uint8)
    codes = np.zeros((length + 1, length), dtype=np.uint8)
    for k in range(1, length + 1):
        codes[k, :k] = padded[len(padded) - k:]
    return codes


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
    return layout_coded(*sequence_codes(seqs), layout, path, lines)


def sequence_codes(seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validated A/C/G/T/N strings as concatenated codes and lengths."""
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    codes = np.frombuffer("".join(seqs).encode("ascii", "replace").translate(BYTE_CODES), dtype=np.uint8)
    if len(codes) != lengths.sum() or (codes == 255).any():
        raise ValueError("sequences must be validated A/C/G/T/N strings")
    return codes, lengths


def layout_coded(codes: np.ndarray, lengths: np.ndarray, layout: Layout, path: str | Path = "<sequences>",
                 lines: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`layout_inserts` of sequences given as their concatenated codes (A=0 C=1 G=2 T=3
    N=4) and their lengths.

    Raises
    ------
    DataError
        When an insert is longer than the window, naming ``path`` and the row's line (its
        number among the sequences when ``lines`` is ``None``).
    """
    n, length = len(lengths), layout.seq_len
    if n == 0:
        return np.zeros((0, length), dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    ends = np.cumsum(lengths)
    has_adapter = _has_adapter(codes, ends - lengths, lengths, layout.left_adapter)
    inserts = lengths - has_adapter * len(layout.left_adapter)
    if (inserts > length).any():
        row = int(np.argmax(inserts > length))
        problem = (f"sequence of {int(inserts[row])} bp (after stripping the left adapter) is longer than "
                   f"the model length {length}")
        if lines is None:
            raise DataError(path, None, f"sequence {row + 1}: {problem}")
        raise DataError(path, int(lines[row]), problem)
    # each row's last seq_len codes: its insert right-aligned, after whatever came before it;
    # then the upstream plasmid in front of the insert, for the rows of one insert length at a time
    padded = np.concatenate([np.zeros(length, dtype=np.uint8), codes])
    window = sliding_window_view(padded, length)[ends]
    left = length - inserts
    upstream = _upstream_rows(layout)
    for k in np.unique(left[left > 0]).tolist():
        if (upstream[k, :k] == 255).any():
            raise ValueError(f"layout upstream {layout.upstream[:20]!r}...: characters other than ACGTN")
        window[np.flatnonzero(left == k), :k] = upstream[k, :k]
    return window, inserts, has_adapter


def _has_adapter(codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, adapter: str) -> np.ndarray:
    """Whether each sequence (codes from ``starts``) begins with ``adapter`` (any case)."""
    if not adapter or not set(adapter) <= set("ACGTN"):  # a lower-case adapter never matches upper-cased input
        return np.zeros(len(lengths), dtype=bool)
    record = np.dtype((np.void, len(adapter)))  # the adapter's bytes compared as one value
    wanted = _CODE_OF_BYTE[np.frombuffer(adapter.encode(), dtype=np.uint8)].view(record)[0]
    padded = np.concatenate([codes, np.zeros(len(adapter), dtype=np.uint8)])
    heads = sliding_window_view(padded, len(adapter))[starts]  # a shorter row's runs into the next one
    return (lengths >= len(adapter)) & (heads.view(record)[:, 0] == wanted)
