"""Place a promoter sequence into the fixed-length window LegNet reads.

DREAM 2022 sequences are ``LEFT_ADAPTER (17 bp) + N80 + RIGHT_ADAPTER (13 bp)``. LegNet
strips the leading adapter and prepends the plasmid that lies upstream of the insert
(which itself ends with that adapter), then keeps the last ``seq_len`` bases: a 110 bp
DREAM sequence becomes the last 57 bp of the upstream plasmid + its own last 93 bp.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LEFT_ADAPTER = "TGCATTTTTTTCACATC"
RIGHT_ADAPTER = "GGTTACGGCTGTT"
# 200 bp of the DREAM plasmid directly upstream of the N80 insert (Rafi et al. 2024,
# plasmid.json positions 3448..3647); it ends with LEFT_ADAPTER.
PLASMID_UPSTREAM = (
    "CAAAAGAATAGACCGAGATAGGGTTGAGTGTTGTTCCAGTTTGGAACAAGAGTCCACTATTAAAGAACGTGGACTCCAACG"
    "TCAAAGGGCGAAAAACCGTCTATCAGGGCGATGGCCCACTACGTGAACCATCACCCTAATCAAGTGCTAGCAGGAATGATG"
    "CAAAAGGTTCCCGATTCGAACTGCATTTTTTTCACATC"
)
COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (N stays N, case kept)."""
    return seq.translate(COMPLEMENT)[::-1]


def insert_length(seq: str, left_adapter: str = LEFT_ADAPTER) -> int:
    """Length of ``seq`` after stripping a leading copy of the left adapter."""
    if left_adapter and seq.upper().startswith(left_adapter):
        return len(seq) - len(left_adapter)
    return len(seq)


def layout(
    seq: str,
    seq_len: int = 150,
    left_adapter: str = LEFT_ADAPTER,
    upstream: str = PLASMID_UPSTREAM,
) -> str:
    """Lay ``seq`` out to exactly ``seq_len`` bases, upper case.

    Parameters
    ----------
    seq : str
        Promoter sequence, optionally starting with ``left_adapter``.
    seq_len : int
        Model input length.
    left_adapter : str
        Adapter stripped from the start of ``seq`` when present ("" disables).
    upstream : str
        Plasmid sequence prepended to reach ``seq_len`` (it normally ends with the adapter);
        any remaining shortfall is padded with N.

    Returns
    -------
    str
        The last ``seq_len`` bases of ``upstream + stripped seq``.

    Raises
    ------
    ValueError
        If the stripped sequence is longer than ``seq_len``.
    """
    seq = seq.upper()
    if left_adapter and seq.startswith(left_adapter):
        seq = seq[len(left_adapter):]
    if len(seq) > seq_len:
        raise ValueError(f"sequence of {len(seq)} bp (adapter stripped) is longer than the model length {seq_len}")
    full = upstream + seq
    if len(full) < seq_len:
        full = "N" * (seq_len - len(full)) + full
    return full[len(full) - seq_len:]


def layout_all(seqs: Iterable[str], seq_len: int = 150, left_adapter: str = LEFT_ADAPTER,
               upstream: str = PLASMID_UPSTREAM) -> list[str]:
    """:func:`layout` applied to every sequence."""
    return [layout(s, seq_len, left_adapter, upstream) for s in seqs]


@dataclass(frozen=True)
class Layout:
    """How a run places sequences in the model's window; saved with the run (``DataConfig``).

    Every encoder takes one, so a model always sees its inputs laid out as in training.

    Parameters
    ----------
    seq_len : int
        Model input length.
    left_adapter : str
        Leading adapter stripped when present ("" disables); de Boer 2020 native fragments
        use ``AACTGCATTTTTTTCACATC``.
    upstream : str
        Plasmid prepended to reach ``seq_len``.
    """

    seq_len: int = 150
    left_adapter: str = LEFT_ADAPTER
    upstream: str = PLASMID_UPSTREAM

    def apply(self, seq: str) -> str:
        """:func:`layout` of one sequence."""
        return layout(seq, self.seq_len, self.left_adapter, self.upstream)

    def insert_length(self, seq: str) -> int:
        """Length of ``seq`` once its leading adapter is stripped."""
        return insert_length(seq, self.left_adapter)
