"""Every sequence format in one place: bases and codes, the window layout, the model's tensors.

Codes: A=0, C=1, G=2, T=3, N=4 (any case), one uint8 per base. The model input is ``(batch, 6, L)``
float: one-hot A, C, G, T with N = 0.25 in all four (:func:`model_one_hot`), then ``is_reverse``
and ``is_singleton`` (:func:`model_input`). tangermeme wants ``(batch, 4, L)`` int8 one-hot with
N as a column of zeros instead (:func:`tangermeme_one_hot`).

DREAM 2022 sequences are ``LEFT_ADAPTER (17 bp) + N80 + RIGHT_ADAPTER (13 bp)``. LegNet strips
the leading adapter and prepends the plasmid that lies upstream of the insert (which itself ends
with that adapter), then keeps the last ``seq_len`` bases: a 110 bp DREAM sequence becomes the
last 57 bp of the upstream plasmid + its own last 93 bp. :class:`Layout` holds these settings
(its defaults are the defaults of every run); :func:`lay_out` applies them to many sequences at
once, on their concatenated codes, for the in-memory path and the sequence store alike.

The *insert* is what a sequence brings to its window: the sequence less a leading adapter, at
the window's end. Its *insert window* (:func:`insert_windows`, for EvoAug) also leaves out a
right flank that all training sequences share (:func:`common_suffix`).

The bottom layer: this module imports nothing from promoterlab.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if TYPE_CHECKING:
    import torch

BASES = "ACGTN"
INVALID_CODE = 255  # CODE_OF_BYTE of every byte that is not a base
CODE_OF_BYTE = np.full(256, INVALID_CODE, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    CODE_OF_BYTE[ord(_base)] = _code
    CODE_OF_BYTE[ord(_base.lower())] = _code
CODE_OF_BYTE.flags.writeable = False
BYTE_CODES = bytes(CODE_OF_BYTE.tolist())  # the same table for bytes.translate

LEFT_ADAPTER = "TGCATTTTTTTCACATC"
RIGHT_ADAPTER = "GGTTACGGCTGTT"
# 200 bp of the DREAM plasmid directly upstream of the N80 insert (Rafi et al. 2024,
# plasmid.json positions 3448..3647); it ends with LEFT_ADAPTER.
PLASMID_UPSTREAM = (
    "CAAAAGAATAGACCGAGATAGGGTTGAGTGTTGTTCCAGTTTGGAACAAGAGTCCACTATTAAAGAACGTGGACTCCAACG"
    "TCAAAGGGCGAAAAACCGTCTATCAGGGCGATGGCCCACTACGTGAACCATCACCCTAATCAAGTGCTAGCAGGAATGATG"
    "CAAAAGGTTCCCGATTCGAACTGCATTTTTTTCACATC"
)

_COMPLEMENT = [3, 2, 1, 0, 4]  # codes A C G T N -> T G C A N
_COMPLEMENT_TEXT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


# torch is imported by the functions that make tensors, so that the layout and its defaults load
# without it (the command line's help is built from the configs that hold them).
@cache
def _complement_code() -> "torch.Tensor":
    import torch

    return torch.tensor(_COMPLEMENT, dtype=torch.long)


@cache
def _model_one_hot_table() -> "torch.Tensor":
    import torch

    return torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.25, 0.25, 0.25, 0.25]],
                        dtype=torch.float32)


class SequenceError(ValueError):
    """A sequence that cannot be encoded or laid out: ``row`` is its 0-based index among the
    sequences given, ``problem`` what is wrong. Readers turn it into an error naming the file
    and line (:meth:`promoterlab.data.readers.DataError.from_sequence_error`)."""

    def __init__(self, row: int, problem: str):
        self.row, self.problem = int(row), problem
        super().__init__(f"sequence {self.row + 1}: {problem}")


def text_codes(text: str) -> np.ndarray:
    """The codes of one string (``INVALID_CODE`` for characters other than ACGTN), writable."""
    return np.frombuffer(bytearray(text.encode("ascii", "replace").translate(BYTE_CODES)), dtype=np.uint8)


def concatenated_codes(seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The codes of all ``seqs`` one after another, and each one's length.

    Raises
    ------
    SequenceError
        For the first sequence with a character other than ACGTN (any case).
    """
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    codes = text_codes("".join(seqs))  # one byte per character: non-ASCII ones become "?"
    bad = np.flatnonzero(codes == INVALID_CODE)
    if len(bad):
        row = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise SequenceError(row, "characters other than ACGTN")
    return codes, lengths


def encode(seqs: Sequence[str]) -> np.ndarray:
    """Equal-length sequences (already laid out) to a ``(n, L)`` uint8 code matrix.

    Raises
    ------
    SequenceError
        If a sequence has characters other than ACGTN, or another length than the first.
    """
    if len(seqs) == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    codes, lengths = concatenated_codes(seqs)
    if (lengths != lengths[0]).any():
        row = int(np.argmax(lengths != lengths[0]))
        raise SequenceError(row, f"{lengths[row]} bases, not {lengths[0]} as the first: sequences must all "
                                 "have the same length; lay them out first")
    return codes.reshape(len(seqs), int(lengths[0]))


def decode(codes: np.ndarray) -> list[str]:
    """``(n, L)`` codes back to upper-case strings (inverse of :func:`encode`)."""
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[np.asarray(codes, dtype=np.int64)]
    return [row.tobytes().decode() for row in letters]


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (N stays N, case kept)."""
    return seq.translate(_COMPLEMENT_TEXT)[::-1]


def complement_codes(codes: torch.Tensor) -> torch.Tensor:
    """The complement of every code (A<->T, C<->G, N stays), in ``codes``' dtype and order."""
    return _complement_code()[codes.long()].to(codes.dtype)


def reverse_complement_codes(codes: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Reverse complement of ``(batch, L)`` codes: an int64 tensor for a tensor, a uint8 array for
    an array."""
    if isinstance(codes, np.ndarray):
        return np.asarray(_COMPLEMENT, dtype=np.uint8)[codes][..., ::-1].copy()
    return _complement_code()[codes.long()].flip(-1)


def model_one_hot(codes: torch.Tensor) -> torch.Tensor:
    """The model's one-hot: ``(batch, L)`` codes to ``(batch, 4, L)`` float32, N = 0.25 in all four."""
    return _model_one_hot_table()[codes.long()].transpose(1, 2)


def tangermeme_one_hot(codes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """tangermeme's one-hot: ``(n, L)`` codes to ``(n, 4, L)`` int8, N a column of zeros."""
    import torch

    codes = torch.as_tensor(np.asarray(codes, dtype=np.uint8) if not torch.is_tensor(codes) else codes).long()
    return torch.nn.functional.one_hot(codes, 5)[..., :4].transpose(1, 2).to(torch.int8).contiguous()


def model_input(codes: torch.Tensor, is_reverse: bool | torch.Tensor, is_singleton: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Build the 6-channel input; ``codes`` must already be reverse-complemented if reverse.

    Parameters
    ----------
    codes : torch.Tensor
        ``(batch, L)`` uint8 codes.
    is_reverse : bool or torch.Tensor
        Scalar flag or ``(batch,)`` flags for the ``is_reverse`` channel.
    is_singleton : torch.Tensor, optional
        ``(batch,)`` flags for the ``is_singleton`` channel; zeros when omitted (prediction).
    """
    import torch

    batch, length = codes.shape
    x = torch.zeros(batch, 6, length)
    x[:, :4] = model_one_hot(codes)
    x[:, 4] = torch.as_tensor(is_reverse, dtype=torch.float32).reshape(-1, 1) if torch.is_tensor(
        is_reverse) else float(is_reverse)
    if is_singleton is not None:
        x[:, 5] = is_singleton.to(torch.float32).reshape(-1, 1)
    return x


def is_integer(values: np.ndarray) -> np.ndarray:
    """The DREAM singleton convention: a target that is an integer."""
    values = np.asarray(values, dtype=np.float64)
    return np.isclose(values, np.round(values), rtol=0.0, atol=1e-9)


@dataclass(frozen=True)
class Layout:
    """How a run places sequences in the model's window; saved with the run (``DataConfig``).

    Every encoder takes one, so a model always sees its inputs laid out as in training. These
    defaults are the defaults of every run.

    Parameters
    ----------
    seq_len : int
        Model input length.
    left_adapter : str
        Leading adapter stripped when present, in upper case ("" disables); de Boer 2020 native
        fragments use ``AACTGCATTTTTTTCACATC``.
    upstream : str
        Plasmid prepended to reach ``seq_len`` (it normally ends with the adapter); any
        remaining shortfall is padded with N.
    """

    seq_len: int = 150
    left_adapter: str = LEFT_ADAPTER
    upstream: str = PLASMID_UPSTREAM

    def apply(self, seq: str) -> str:
        """One sequence laid out (:func:`lay_out`), as an upper-case string."""
        return decode(lay_out([seq], self).codes)[0]

    def insert_length(self, seq: str) -> int:
        """Length of ``seq`` once its leading adapter is stripped."""
        if self.left_adapter and seq.upper().startswith(self.left_adapter):
            return len(seq) - len(self.left_adapter)
        return len(seq)


class LaidOut(NamedTuple):
    """Sequences laid out in their windows: ``codes`` ``(n, seq_len)`` uint8, ``inserts`` ``(n,)``
    int64 insert lengths (the insert fills the window's last positions) and ``has_adapter``
    ``(n,)`` bool, whether the sequence began with the layout's left adapter (which it lost)."""

    codes: np.ndarray
    inserts: np.ndarray
    has_adapter: np.ndarray


def lay_out(seqs: Sequence[str], layout: Layout) -> LaidOut:
    """Lay out and encode sequences: strip a leading adapter, right-align the insert in the window
    and fill the left with the upstream plasmid (N beyond it).

    Raises
    ------
    SequenceError
        For the first sequence with a character other than ACGTN, or whose insert is longer
        than the window.
    """
    return lay_out_concatenated(*concatenated_codes(seqs), layout)


def lay_out_concatenated(codes: np.ndarray, lengths: np.ndarray, layout: Layout) -> LaidOut:
    """:func:`lay_out` of sequences given as their concatenated codes and lengths
    (:func:`concatenated_codes`).

    Raises
    ------
    SequenceError
        For the first sequence whose insert is longer than the window.
    ValueError
        If the upstream plasmid that some window needs has characters other than ACGTN.
    """
    n, length = len(lengths), layout.seq_len
    if n == 0:
        return LaidOut(np.zeros((0, length), dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
    ends = np.cumsum(lengths)
    has_adapter = _has_adapter(codes, ends - lengths, lengths, layout.left_adapter)
    inserts = lengths - has_adapter * len(layout.left_adapter)
    if (inserts > length).any():
        row = int(np.argmax(inserts > length))
        raise SequenceError(row, f"sequence of {int(inserts[row])} bp (after stripping the left adapter) is "
                                 f"longer than the model length {length} (a model is trained for one length: "
                                 f"train with --seq-len {int(inserts.max())} or more for longer inserts)")
    # each row's last seq_len codes: its insert right-aligned, after whatever came before it;
    # then the upstream plasmid in front of the insert, for the rows of one insert length at a time
    padded = np.concatenate([np.zeros(length, dtype=np.uint8), codes])
    window = sliding_window_view(padded, length)[ends]
    upstream = text_codes("N" * length + layout.upstream)[-length:]  # what precedes the window's end
    left = length - inserts
    for k in np.unique(left[left > 0]).tolist():
        if (upstream[length - k:] == INVALID_CODE).any():
            raise ValueError(f"layout upstream {layout.upstream[:20]!r}...: characters other than ACGTN")
        window[np.flatnonzero(left == k), :k] = upstream[length - k:]
    return LaidOut(window, inserts, has_adapter)


def _has_adapter(codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray, adapter: str) -> np.ndarray:
    """Whether each sequence (codes from ``starts``) begins with ``adapter`` (any case)."""
    if not adapter or not set(adapter) <= set(BASES):  # a lower-case adapter never matches upper-cased input
        return np.zeros(len(lengths), dtype=bool)
    record = np.dtype((np.void, len(adapter)))  # the adapter's bytes compared as one value
    wanted = text_codes(adapter).view(record)[0]
    padded = np.concatenate([codes, np.zeros(len(adapter), dtype=np.uint8)])
    heads = sliding_window_view(padded, len(adapter))[starts]  # a shorter row's runs into the next one
    return (lengths >= len(adapter)) & (heads.view(record)[:, 0] == wanted)


def sequence_tails(laid: LaidOut, adapter: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``width`` bases of each sequence as it was read (its adapter included), as codes,
    last base first: its insert is the end of its window, and before that came the adapter it
    lost.

    Parameters
    ----------
    laid : LaidOut
        The laid-out sequences (``codes`` may be a memory-mapped array).
    adapter : str
        The layout's left adapter.
    width : int
        Bases to return per sequence.

    Returns
    -------
    tuple of numpy.ndarray
        ``(n, width)`` uint8 codes, and ``(n, width)`` bool: True where the sequence has that
        many bases (codes elsewhere are meaningless).
    """
    inserts = np.asarray(laid.inserts, dtype=np.int64)
    lengths = inserts + np.asarray(laid.has_adapter, dtype=np.int64) * len(adapter)
    position = np.arange(width)
    window = laid.codes.shape[1]
    from_insert = np.asarray(laid.codes)[:, ::-1][:, np.minimum(position, window - 1)]
    if adapter:
        adapter_codes = text_codes(adapter)[::-1]
        into_adapter = np.clip(position - inserts[:, None], 0, len(adapter) - 1)
        tails = np.where(position < inserts[:, None], from_insert, adapter_codes[into_adapter])
    else:
        tails = from_insert
    return tails, position < lengths[:, None]


def laid_out_common_suffix(laid: LaidOut, adapter: str, within: str | None = None) -> str:
    """The longest ending that all the laid-out sequences (adapters included) share, in upper
    case; with ``within``, the longest that they share with it too (to continue over blocks
    of sequences)."""
    if not len(laid.inserts):
        return "" if within is None else within.upper()
    lengths = np.asarray(laid.inserts, dtype=np.int64) + np.asarray(laid.has_adapter) * len(adapter)
    width = int(lengths.min()) if within is None else min(int(lengths.min()), len(within))
    if width == 0:
        return ""
    tails, _ = sequence_tails(laid, adapter, width)
    reference = tails[0] if within is None else text_codes(within.upper())[::-1][:width]
    differs = np.flatnonzero((tails != reference).any(axis=0))
    width = int(differs[0]) if len(differs) else width
    return "".join(BASES[code] for code in reference[:width][::-1])


def common_suffix(seqs: Iterable[str]) -> str:
    """The longest ending that all ``seqs`` share (upper case): a library's fixed right adapter
    (given enough sequences that their variable parts differ in the last base).

    Raises
    ------
    SequenceError
        For a sequence with a character other than ACGTN.
    """
    seqs = list(seqs)
    longest = max(map(len, seqs), default=0)
    if longest == 0:
        return ""
    return laid_out_common_suffix(lay_out(seqs, Layout(longest, "", "")), "")


def laid_out_windows(laid: LaidOut, layout: Layout, right_flank: str = "") -> torch.Tensor:
    """Where each laid-out sequence's insert lies in its window: from the insert's first position
    to the window's end, less ``right_flank`` where the sequence ends with it (any case).

    Returns
    -------
    torch.Tensor
        ``(n, 2)`` int64: start (inclusive) and stop (exclusive) in the window.
    """
    length = layout.seq_len
    start = length - np.asarray(laid.inserts, dtype=np.int64)
    stop = np.full_like(start, length)
    if right_flank:
        tails, present = sequence_tails(laid, layout.left_adapter, len(right_flank))
        wanted = text_codes(right_flank)[::-1]
        ends = present[:, -1] & (tails == wanted).all(axis=1)
        stop = stop - ends * len(right_flank)
    import torch

    return torch.from_numpy(np.stack([start, np.maximum(stop, start)], axis=1))


def insert_windows(seqs: Iterable[str], layout: Layout, right_flank: str = "") -> torch.Tensor:
    """:func:`laid_out_windows` of sequences laid out with ``layout``: the insert (the sequence
    less a leading ``left_adapter``) occupies the window's end; a sequence ending with
    ``right_flank`` (a fixed adapter, e.g. ``RIGHT_ADAPTER`` for DREAM, see
    :func:`common_suffix`) has that adapter left out too.

    Returns
    -------
    torch.Tensor
        ``(n, 2)`` int64: start (inclusive) and stop (exclusive) in the window.
    """
    return laid_out_windows(lay_out(list(seqs), layout), layout, right_flank)
