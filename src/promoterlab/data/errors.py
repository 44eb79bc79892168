"""The error of bad input data, naming the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from promoterlab.files import shown

if TYPE_CHECKING:
    import numpy as np

    from promoterlab.sequence import SequenceError


class DataError(ValueError):
    """Invalid input data; the message names the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{shown(path)}:{line}" if line is not None else shown(path)
        super().__init__(f"{where}: {problem}")

    @classmethod
    def from_sequence_error(cls, err: SequenceError, path: str | Path, lines: np.ndarray | None = None
                            ) -> "DataError":
        """``err`` about sequences read from ``path``, naming the line of its row (``lines[row]``),
        or, without ``lines``, the row's number among the sequences."""
        if lines is None:
            return cls(path, None, str(err))
        return cls(path, int(lines[err.row]), err.problem)
