"""Read promoter tables (DREAM text, CSV/TSV, gzip) and FASTA, validating every row.

Every reader returns a :class:`pandas.DataFrame` with a ``line`` column (1-based line in
the file) so later checks can name the offending line.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import inspect
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import TextIO

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from promoterlab.sequence import SequenceError
from promoterlab.data.text_input import open_text as _open_text
from promoterlab.data.text_input import peeked as _peeked
from promoterlab.data.errors import DataError
from promoterlab.files import os_error_what, shown

_DNA = re.compile(r"^[ACGTNacgtn]+$")
_BAD_CHAR = re.compile(r"[^ACGTNacgtn]")
SEQ_COLUMNS = ("seq", "sequence")  # the sequence column of a table with a header, unless named
TARGET_COLUMNS = ("expr", "expression", "target", "el_combined")  # the target column, unless named
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")


def _names_damaged_files(read):
    """Turn the low-level errors of a damaged or unreadable file (a cut-short ``.gz``, binary
    data, a directory, no permission) into a :class:`DataError` naming it, in a reader whose
    first argument is the path."""
    @contextlib.contextmanager
    def named(path):
        try:
            yield
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise DataError(path, None, f"damaged or truncated gzip file ({err})") from None
        except UnicodeDecodeError as err:
            raise DataError(path, None, f"not a text file (undecodable byte at offset {err.start})") from None
        except FileNotFoundError:
            raise DataError(path, None, "file not found") from None
        except IsADirectoryError:
            raise DataError(path, None, "is a directory; give a file") from None
        except OSError as err:
            raise DataError(path, None, os_error_what(err, path)) from None

    if inspect.isgeneratorfunction(read):
        @functools.wraps(read)
        def chunks(path, *args, **kwargs):
            with named(path):
                yield from read(path, *args, **kwargs)
        return chunks

    @functools.wraps(read)
    def wrapper(path, *args, **kwargs):
        with named(path):
            return read(path, *args, **kwargs)
    return wrapper


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
        print(f"{path}: dropped {int(missing.sum())} rows with a missing or non-numeric target", file=sys.stderr)
        frame, target = frame[~missing], target[~missing]
    return frame.assign(target=target.astype(np.float64)).reset_index(drop=True)


@_names_damaged_files
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
    return pd.concat(list(iter_table(path, seq_col, target_col, group_col, id_col, drop_missing,
                                     require_target, read_target)), ignore_index=True)


@_names_damaged_files
def iter_table(
    path: str | Path,
    seq_col: str | None = None,
    target_col: str | None = None,
    group_col: str | None = None,
    id_col: str | None = None,
    drop_missing: bool = False,
    require_target: bool = True,
    read_target: bool = True,
    chunk_rows: int | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`read_table` in chunks of ``chunk_rows`` file rows (all at once when ``None``), so
    a file of any size can be streamed; each chunk is validated before it is yielded. The file is
    opened once (a named pipe or ``-``, standard input, can be read)."""
    path = Path(path)
    with _peeked(path) as (first, text, skipped):
        yield from _table_chunks(path, first, text, skipped, seq_col, target_col, group_col, id_col, drop_missing,
                                 require_target, read_target, chunk_rows)


def _table_chunks(path: Path, first: str | None, text: TextIO, skipped: int, seq_col: str | None,
                  target_col: str | None, group_col: str | None, id_col: str | None, drop_missing: bool,
                  require_target: bool, read_target: bool, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """:func:`iter_table` of the opened ``text`` from its first non-blank line ``first``, after
    ``skipped`` blank lines."""
    headerless, sep = _sniff(path, first)
    reader = pd.read_csv(text, sep=sep, header=None if headerless else 0, dtype=str, keep_default_na=False,
                         skip_blank_lines=False, chunksize=chunk_rows)
    rows = 0
    for table in [reader] if chunk_rows is None else reader:
        if headerless:
            table.columns = ["seq", "target", *[f"col{i}" for i in range(2, table.shape[1])]][: table.shape[1]]
            seq_col, target_col = "seq", ("target" if table.shape[1] > 1 else None)
        elif rows == 0:
            seq_col = seq_col or _pick(path, table, SEQ_COLUMNS, "sequence", required=True)
            target_col = target_col or _pick(path, table, TARGET_COLUMNS, "target", required=require_target)
            for name in (seq_col, target_col, group_col, id_col):
                if name is not None and name not in table.columns:
                    raise DataError(path, skipped + 1, f"no column {name!r}; columns are {list(table.columns)}")
        index = table.index.to_numpy()
        frame = pd.DataFrame({"seq": table[seq_col].str.strip().to_numpy(),
                              "line": index + skipped + (1 if headerless else 2)})
        frame["id"] = table[id_col].to_numpy() if id_col else index.astype(str)
        if group_col:
            frame["group"] = table[group_col].to_numpy()
        blank = ((frame["seq"] == "").to_numpy()
                 & table.apply(lambda col: col.str.strip() == "").all(axis=1).to_numpy())
        frame, table = frame[~blank], table[~blank]
        rows += len(frame)
        if frame.empty:
            continue
        _check_sequences(path, frame)
        if target_col is None or not read_target:
            if require_target and read_target:
                raise DataError(path, skipped + 1, "no target column")
            yield frame.reset_index(drop=True)
        else:
            yield _parse_targets(path, frame, table[target_col].reset_index(drop=True).set_axis(frame.index),
                                 drop_missing)
    if rows == 0:
        raise DataError(path, None, "file has no data rows")


@_names_damaged_files
def sniff_table(path: str | Path) -> tuple[bool, str]:
    """Whether a table is headerless DREAM text (its first non-blank line starts with a DNA
    field) and its separator: a tab for DREAM text or a header with a tab, else a comma.

    Raises
    ------
    DataError
        When the file is missing or empty.
    """
    path = Path(path)
    with _peeked(path) as (first, _, _):
        return _sniff(path, first)


def _sniff(path: Path, first: str | None) -> tuple[bool, str]:
    if first is None:
        raise DataError(path, None, "file is empty")
    headerless = _DNA.match(first.split("\t")[0].strip()) is not None
    return headerless, "\t" if ("\t" in first or headerless) else ","


def _pick(path: Path, table: pd.DataFrame, names: tuple[str, ...], what: str, required: bool) -> str | None:
    for name in names:
        if name in table.columns:
            return name
    if required:
        option = "--seq-col" if what == "sequence" else "--target-col"
        raise DataError(path, 1, f"cannot tell which column holds the {what}; columns are "
                                 f"{list(table.columns)} (name it with {option})")
    return None


@_names_damaged_files
def read_fasta(path: str | Path) -> pd.DataFrame:
    """Read FASTA (optionally gzipped) into columns ``id``, ``seq``, ``line``.

    ``id`` is the first word of the header; multi-line records are joined.
    """
    return pd.concat(list(iter_fasta(path)), ignore_index=True)


@_names_damaged_files
def iter_fasta(path: str | Path, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """:func:`read_fasta` in chunks of ``chunk_rows`` records (all at once when ``None``)."""
    path = Path(path)
    with _open_text(path) as handle:
        yield from _fasta_chunks(path, handle, chunk_rows)


def _fasta_chunks(path: Path, handle: TextIO, chunk_rows: int | None, skipped: int = 0) -> Iterator[pd.DataFrame]:
    """:func:`iter_fasta` of the opened ``handle``, whose first line is line ``skipped + 1``."""
    records: list[tuple[str, list[str], int]] = []
    seen = 0

    def flush(upto: int) -> pd.DataFrame:
        done, records[:] = records[:upto], records[upto:]
        for name, parts, number in done:
            if not parts:
                raise DataError(path, number, f"record {name!r} has an empty sequence")
        return pd.DataFrame({"id": [r[0] for r in done], "seq": ["".join(r[1]) for r in done],
                             "line": [r[2] for r in done]})

    for number, raw in enumerate(handle, start=skipped + 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            name = line[1:].split()[0] if line[1:].strip() else ""
            if not name:
                raise DataError(path, number, "FASTA header without a name")
            if chunk_rows and len(records) == chunk_rows:  # every record before this one is complete
                yield flush(chunk_rows)
            records.append((name, [], number))
            seen += 1
        elif not records:
            raise DataError(path, number, "sequence before the first '>' header; is this FASTA?")
        else:
            bad = _BAD_CHAR.search(line)
            if bad:
                raise DataError(path, number, f"sequence has character {bad.group()!r}; "
                                              "only A, C, G, T, N (any case) are allowed")
            records[-1][1].append(line)
    if not seen:
        raise DataError(path, None, "file is empty")
    yield flush(len(records))


def read_sequences(path: str | Path, seq_col: str | None = None, id_col: str | None = None) -> pd.DataFrame:
    """Prediction input: FASTA, DREAM text or a CSV/TSV (any target column is ignored)."""
    return pd.concat(list(iter_sequences(path, seq_col, id_col)), ignore_index=True)


@_names_damaged_files
def iter_sequences(path: str | Path, seq_col: str | None = None, id_col: str | None = None,
                   chunk_rows: int | None = None, strict: bool = False) -> Iterator[pd.DataFrame]:
    """:func:`read_sequences` in chunks of ``chunk_rows`` sequences (all at once when ``None``),
    each validated before it is yielded: columns ``id``, ``seq``, ``line``. The file is opened
    once (a named pipe or ``-``, standard input, can be read).

    An id that repeats an earlier one (a FASTA name, or a value of ``id_col``) is a
    :class:`DataError` with ``strict``; else one warning on stderr at the end names the first
    and counts them (:class:`RepeatedIds`)."""
    from promoterlab.data.repeated_ids import RepeatedIds

    path = Path(path)
    repeated = RepeatedIds(path, strict)
    with _peeked(path) as (first, text, skipped):
        fasta = path.name.lower().endswith(FASTA_SUFFIXES) or (first or "").startswith(">")
        if fasta:
            chunks = _fasta_chunks(path, text, chunk_rows, skipped)
        else:
            chunks = _table_chunks(path, first, text, skipped, seq_col, None, None, id_col, False, False, False,
                                   chunk_rows)
        for chunk in chunks:
            if fasta or id_col:  # row numbers are unique
                repeated.add(chunk["id"].to_numpy(), chunk["line"].to_numpy())
            yield chunk
    repeated.warn()


@_names_damaged_files
def read_seq_values(path: str | Path) -> pd.DataFrame:
    """Rows of a ``seq<TAB>value`` file (DREAM text; an optional header line is skipped), in file
    order, with the values as text.

    For readers that index rows by position, such as DREAM scoring: :func:`read_table` refuses
    or drops a row without a number, but an unmeasured row of the DREAM test file (``nan``)
    keeps its position, so the caller decides what a value means.

    Returns
    -------
    pandas.DataFrame
        Columns ``seq``, ``value`` (text, stripped) and ``line`` (1-based line in the file).

    Raises
    ------
    DataError
        When the file is missing or empty, a row has not exactly two tab-separated fields, or a
        sequence is empty or has a character other than A, C, G, T, N.
    """
    path = Path(path)
    with _open_text(path) as handle:
        return seq_values_of_text(path, handle.read())


def seq_values_of_text(path: str | Path, text: str) -> pd.DataFrame:
    """:func:`read_seq_values` of the ``text`` already read from ``path`` (a file read once)."""
    rows = [line.split("\t") for line in text.removeprefix("\ufeff").rstrip("\r\n").splitlines()]
    if not rows:
        raise DataError(path, None, "file is empty")
    start = int(_DNA.match(rows[0][0].strip()) is None)  # a header line
    for number, row in enumerate(rows[start:], start=start + 1):
        if len(row) != 2:
            raise DataError(path, number, f"expected 'seq<TAB>value', found {len(row)} field(s)")
    frame = pd.DataFrame({"seq": [row[0].strip() for row in rows[start:]],
                          "value": [row[1].strip() for row in rows[start:]],
                          "line": np.arange(start + 1, len(rows) + 1)})
    if not frame.empty:
        _check_sequences(path, frame)
    return frame
