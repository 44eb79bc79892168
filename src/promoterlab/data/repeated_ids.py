"""Ids of a streamed file that repeat an earlier row's id (``predict`` and ``variants`` inputs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from promoterlab.data.errors import DataError


class RepeatedIds:
    """Finds, chunk by chunk, the rows of a file whose id repeats an earlier row's id.

    Memory stays small per row (a 64-bit hash of the id and its line, kept in sorted runs that
    are merged as they double, so a file of any size is checked as it streams). With ``strict``,
    :meth:`add` raises at the first repeat; else :meth:`warn` prints one ``warning:`` line at the
    end naming the first repeat and counting them.
    """

    def __init__(self, path: str | Path, strict: bool = False):
        self.path, self.strict = path, strict
        self.count = 0
        self.first: tuple[str, int, int] | None = None  # (id, line, line of its first occurrence)
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, their lines)

    def add(self, ids: np.ndarray, lines: np.ndarray) -> None:
        """Check the ids of the next chunk (``lines``: their lines in the file, increasing)."""
        if not len(ids):
            return
        hashes = pd.util.hash_array(np.asarray(ids, dtype=object).astype(str))
        order = np.argsort(hashes, kind="stable")
        hashes, lines, ids = hashes[order], np.asarray(lines)[order], np.asarray(ids, dtype=object)[order]
        earlier = np.full(len(hashes), -1, dtype=np.int64)
        later = np.flatnonzero(hashes[1:] == hashes[:-1]) + 1  # repeats within the chunk
        group_start = np.maximum.accumulate(np.where(np.r_[True, hashes[1:] != hashes[:-1]],
                                                     np.arange(len(hashes)), 0))
        earlier[later] = lines[group_start[later]]
        for run_hashes, run_lines in self._runs:  # repeats of earlier chunks
            at = np.minimum(np.searchsorted(run_hashes, hashes), len(run_hashes) - 1)
            found = run_hashes[at] == hashes
            earlier[found] = run_lines[at[found]]
        repeats = np.flatnonzero(earlier >= 0)
        if len(repeats):
            self.count += len(repeats)
            row = repeats[np.argmin(lines[repeats])]
            if self.first is None:
                self.first = (str(ids[row]), int(lines[row]), int(earlier[row]))
            if self.strict:
                raise DataError(self.path, int(lines[row]), f"id {ids[row]!r} repeats the id of line "
                                                            f"{int(earlier[row])}; ids must be unique (--strict)")
        new = earlier < 0
        if new.any():
            self._runs.append((hashes[new], lines[new]))
        while len(self._runs) > 1 and len(self._runs[-1][0]) >= len(self._runs[-2][0]):
            (a, la), (b, lb) = self._runs.pop(), self._runs.pop()
            merged = np.concatenate([b, a])
            keep = np.argsort(merged, kind="stable")
            self._runs.append((merged[keep], np.concatenate([lb, la])[keep]))

    def warn(self) -> None:
        """Print one ``warning:`` line on stderr when some id was repeated."""
        if self.first is not None:
            name, line, first = self.first
            print(f"warning: {self.path}:{line}: id {name!r} repeats the id of line {first}; {self.count} "
                  f"row(s) repeat an earlier id, so the output has several rows with one id "
                  f"(--strict refuses such files)", file=sys.stderr)
