"""Sequences as uint8 codes and the one-hot model input built per batch.

Channel order of the model input (6 x L): A, C, G, T, ``is_reverse``, ``is_singleton``.
N is 0.25 in all four base channels. Codes: A=0, C=1, G=2, T=3, N=4.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

BASES = "ACGTN"
_CODE_OF_BYTE = np.full(256, 255, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    _CODE_OF_BYTE[ord(_base)] = _code
    _CODE_OF_BYTE[ord(_base.lower())] = _code
_ONE_HOT = torch.tensor(
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.25, 0.25, 0.25, 0.25]],
    dtype=torch.float32,
)
_COMPLEMENT_CODE = torch.tensor([3, 2, 1, 0, 4], dtype=torch.long)


def encode(seqs: Sequence[str]) -> np.ndarray:
    """Equal-length sequences to a ``(n, L)`` uint8 code matrix (one vectorised pass).

    Raises
    ------
    ValueError
        If lengths differ or a character is not ACGTN.
    """
    if len(seqs) == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    length = len(seqs[0])
    joined = "".join(seqs).encode("ascii", errors="replace")
    if len(joined) != length * len(seqs):
        raise ValueError("sequences must all have the same length; lay them out first")
    codes = _CODE_OF_BYTE[np.frombuffer(joined, dtype=np.uint8)].reshape(len(seqs), length)
    if (codes == 255).any():
        row = int(np.nonzero((codes == 255).any(axis=1))[0][0])
        raise ValueError(f"sequence {row} has characters other than ACGTN")
    return codes


def decode(codes: np.ndarray) -> list[str]:
    """Inverse of :func:`encode`."""
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[np.asarray(codes, dtype=np.int64)]
    return [row.tobytes().decode() for row in letters]


def reverse_complement_codes(codes: torch.Tensor) -> torch.Tensor:
    """Reverse complement of a ``(batch, L)`` code tensor."""
    return _COMPLEMENT_CODE[codes.long()].flip(-1)


def one_hot(codes: torch.Tensor) -> torch.Tensor:
    """``(batch, L)`` codes to a ``(batch, 4, L)`` float one-hot (N = 0.25 everywhere)."""
    return _ONE_HOT[codes.long()].transpose(1, 2)


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
    batch, length = codes.shape
    x = torch.zeros(batch, 6, length)
    x[:, :4] = one_hot(codes)
    x[:, 4] = torch.as_tensor(is_reverse, dtype=torch.float32).reshape(-1, 1) if torch.is_tensor(
        is_reverse) else float(is_reverse)
    if is_singleton is not None:
        x[:, 5] = is_singleton.to(torch.float32).reshape(-1, 1)
    return x


def is_integer(values: np.ndarray) -> np.ndarray:
    """The DREAM singleton convention: a target that is an integer."""
    values = np.asarray(values, dtype=np.float64)
    return np.isclose(values, np.round(values), rtol=0.0, atol=1e-9)
