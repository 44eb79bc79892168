"""Read promoter tables (DREAM text, CSV/TSV, gzip) and FASTA, validating every row.

Every reader returns a :class:`pandas.DataFrame` with a ``line`` column (1-based line in
the file) so later checks can name the offending line.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd

_DNA = re.compile(r"^[ACGTNacgtn]+$")
_BAD_CHAR = re.compile(r"[^ACGTNacgtn]")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")


class DataError(ValueError):
    """Invalid input data; the message names the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _first_line(path: Path) -> str | None:
    with _open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.rstrip("\n")
    return None


def _check_sequences(path: Path, frame: pd.DataFrame) -> None:
    seqs = frame["seq"]
    empty = seqs.str.len() == 0
    if empty.any():
        raise DataError(path, int(frame.loc[empty.idxmax(), "line"]), "empty sequence")
    bad = ~seqs.str.fullmatch(_DNA)
    if bad.any():
        idx = bad.idxmax()
        char = _BAD_CHAR.search(seqs[idx]).group()
        raise DataError(path, int(frame.loc[idx, "line"]),
                        f"sequence has character {char!r}; only A, C, G, T, N (any case) are allowed")


def _parse_targets(path: Path, frame: pd.DataFrame, raw: pd.Series, drop_missing: bool) -> pd.DataFrame:
    target = pd.to_numeric(raw, errors="coerce")
    missing = target.isna() | ~np.isfinite(target)
    if missing.any():
        if not drop_missing:
            idx = missing.idxmax()
            value = raw[idx]
            problem = "missing target" if str(value).strip().lower() in ("", "na", "nan", "none") \
                else f"target {value!r} is not a number"
            raise DataError(path, int(frame.loc[idx, "line"]), f"{problem} (use --drop-missing to skip such rows)")
        print(f"{path}: dropped {int(missing.sum())} rows with a missing or non-numeric target")
        frame, target = frame[~missing], target[~missing]
    return frame.assign(target=target.astype(np.float64)).reset_index(drop=True)


def read_table(
    path: str | Path,
    seq_col: str | None = None,
    target_col: str | None = None,
    group_col: str | None = None,
    id_col: str | None = None,
    drop_missing: bool = False,
    require_target: bool = True,
    read_target: bool = True,
) -> pd.DataFrame:
    """Read a DREAM text file (``seq<TAB>expr``, no header) or a CSV/TSV with a header.

    Parameters
    ----------
    path : str or Path
        File to read; ``.gz`` is decompressed transparently. A file whose first field is a
        DNA string is taken as headerless DREAM text; otherwise the first line is a header
        and the separator is a tab if the header has one, else a comma.
    seq_col, target_col, group_col, id_col : str, optional
        Column names for files with a header (``seq_col`` defaults to ``seq`` or
        ``sequence``; ``target_col`` to ``expr``, ``expression`` or ``target``).
    drop_missing : bool
        Drop rows whose target is missing or non-numeric (printing a count) instead of
        raising.
    require_target : bool
        Whether a target column is needed.
    read_target : bool
        Whether to read targets at all (False for prediction input).

    Returns
    -------
    pandas.DataFrame
        Columns ``seq``, ``line``, ``id`` and, where present, ``target`` and ``group``.

    Raises
    ------
    DataError
        Naming the file, the line and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    first = _first_line(path)
    if first is None:
        raise DataError(path, None, "file is empty")
    headerless = _DNA.match(first.split("\t")[0].strip()) is not None
    sep = "\t" if ("\t" in first or headerless) else ","
    table = pd.read_csv(path, sep=sep, header=None if headerless else 0, dtype=str,
                        keep_default_na=False, skip_blank_lines=False)
    if headerless:
        table.columns = ["seq", "target", *[f"col{i}" for i in range(2, table.shape[1])]][: table.shape[1]]
        seq_col, target_col = "seq", ("target" if table.shape[1] > 1 else None)
    else:
        seq_col = seq_col or _pick(path, table, ("seq", "sequence"), "sequence", required=True)
        target_col = target_col or _pick(path, table, ("expr", "expression", "target", "el_combined"),
                                         "target", required=require_target)
        for name in (seq_col, target_col, group_col, id_col):
            if name is not None and name not in table.columns:
                raise DataError(path, 1, f"no column {name!r}; columns are {list(table.columns)}")
    frame = pd.DataFrame({"seq": table[seq_col].str.strip(),
                          "line": np.arange(len(table)) + (1 if headerless else 2)})
    frame["id"] = table[id_col].to_numpy() if id_col else np.arange(len(table)).astype(str)
    if group_col:
        frame["group"] = table[group_col].to_numpy()
    blank = (frame["seq"] == "") & (table.apply(lambda col: col.str.strip() == "").all(axis=1))
    frame, table = frame[~blank], table[~blank]
    if frame.empty:
        raise DataError(path, None, "file has no data rows")
    _check_sequences(path, frame)
    if target_col is None or not read_target:
        if require_target and read_target:
            raise DataError(path, 1, "no target column")
        return frame.reset_index(drop=True)
    return _parse_targets(path, frame, table[target_col], drop_missing)


def _pick(path: Path, table: pd.DataFrame, names: tuple[str, ...], what: str, required: bool) -> str | None:
    for name in names:
        if name in table.columns:
            return name
    if required:
        option = "--seq-col" if what == "sequence" else "--target-col"
        raise DataError(path, 1, f"cannot tell which column holds the {what}; columns are "
                                 f"{list(table.columns)} (name it with {option})")
    return None


def read_fasta(path: str | Path) -> pd.DataFrame:
    """Read FASTA (optionally gzipped) into columns ``id``, ``seq``, ``line``.

    ``id`` is the first word of the header; multi-line records are joined.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    records: list[tuple[str, list[str], int]] = []
    with _open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith(">"):
                name = line[1:].split()[0] if line[1:].strip() else ""
                if not name:
                    raise DataError(path, number, "FASTA header without a name")
                records.append((name, [], number))
            elif not records:
                raise DataError(path, number, "sequence before the first '>' header; is this FASTA?")
            else:
                bad = _BAD_CHAR.search(line)
                if bad:
                    raise DataError(path, number, f"sequence has character {bad.group()!r}; "
                                                  "only A, C, G, T, N (any case) are allowed")
                records[-1][1].append(line)
    if not records:
        raise DataError(path, None, "file is empty")
    for name, parts, number in records:
        if not parts:
            raise DataError(path, number, f"record {name!r} has an empty sequence")
    return pd.DataFrame({"id": [r[0] for r in records], "seq": ["".join(r[1]) for r in records],
                         "line": [r[2] for r in records]})


def read_sequences(path: str | Path, seq_col: str | None = None, id_col: str | None = None) -> pd.DataFrame:
    """Prediction input: FASTA, DREAM text or a CSV/TSV (any target column is ignored)."""
    path = Path(path)
    first = _first_line(path) if path.exists() else ""
    if path.name.lower().endswith(FASTA_SUFFIXES) or (first or "").startswith(">"):
        return read_fasta(path)
    return read_table(path, seq_col=seq_col, id_col=id_col, require_target=False, read_target=False)
