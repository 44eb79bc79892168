"""Stream a promoter table's sequences, targets and groups as arrays, with pyarrow's CSV reader.

For :mod:`~promoterlab.data.store_build`: :func:`~promoterlab.data.readers.iter_table` turns every
sequence into a Python string (pandas), which dominates the time to encode a large file. Here
pyarrow parses blocks of the file in C++ and the sequences stay bytes, checked and coded by a
256-entry lookup table.

:func:`iter_table_codes` reads a file exactly as ``iter_table`` does (same rows, same line numbers,
same values), or not at all: whatever it cannot vouch for raises :class:`NotStreamable`, and the
caller reads the file with ``iter_table`` instead, which gives its usual result or its usual
error naming the file and line. That covers every invalid row (a bad character, an empty sequence,
a target that is not a number; also a missing one, unless ``drop_missing``), and files outside
the common case: a quote character anywhere (pandas' quoting rules), a row of another width, a
whitespace-only line, a sequence with surrounding spaces, duplicate or empty column names,
compression other than ``.gz``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promoterlab.data.readers import DataError, SEQ_COLUMNS, TARGET_COLUMNS, sniff_table
from promoterlab.data.store import ReadOptions
from promoterlab.sequence import BYTE_CODES, INVALID_CODE
_COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")  # pandas infers these from the name


class NotStreamable(Exception):
    """The file needs :func:`~promoterlab.data.readers.iter_table` (the message says why)."""


@dataclass
class TableChunk:
    """Consecutive rows of a table: sequences as concatenated codes (A=0 C=1 G=2 T=3 N=4, any
    case), their lengths, float64 targets, 1-based file lines and, with a group column, each
    row's index into ``group_labels``."""

    codes: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    lines: np.ndarray
    group_index: np.ndarray | None = None
    group_labels: list[str] | None = None


def iter_table_codes(path: str | Path, read: ReadOptions = ReadOptions(),
                     block_bytes: int = 1 << 20) -> Iterator[TableChunk]:
    """The rows of a DREAM text file or CSV/TSV (plain or ``.gz``), as
    :func:`~promoterlab.data.readers.iter_table` reads them with the options ``read``, one block
    of about ``block_bytes`` of text at a time. pyarrow reads ahead (up to about 32 blocks, as
    measured), so the memory it holds is bounded by the block size, not by the file's.

    Blank lines are skipped (and counted for the line numbers); with ``read.drop_missing``, rows
    without a finite target are dropped and their number printed at the end, as ``iter_table``
    does.

    Raises
    ------
    NotStreamable
        Before or after yielding some chunks, when the file has anything that only
        ``iter_table`` reads right or reports right; the chunks yielded so far must be discarded.
    """
    path = Path(path)
    try:
        yield from _chunks(path, read, block_bytes)
    except (DataError, OSError, ValueError, EOFError) as err:  # pyarrow's errors are OSError / ValueError
        raise NotStreamable(f"{type(err).__name__}: {err}") from None


def _chunks(path: Path, read: ReadOptions, block_bytes: int) -> Iterator[TableChunk]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if path.name.lower().endswith(_COMPRESSION) and path.suffix != ".gz":
        raise NotStreamable(f"compression of {path.name}")
    headerless, sep = sniff_table(path)
    names = _column_names(path, sep, headerless)
    seq_col, target_col, group_col = _columns(names, read, headerless)
    types = dict.fromkeys(names, pa.string())  # every column is decoded, so bad UTF-8 anywhere is found
    types.update({seq_col: pa.binary(), target_col: pa.float64()})
    options = {"read_options": pcsv.ReadOptions(block_size=block_bytes, autogenerate_column_names=headerless),
               "parse_options": _parse_options(sep),
               "convert_options": pcsv.ConvertOptions(column_types=types, null_values=[""],
                                                      strings_can_be_null=False)}
    others = [col for col in names if col not in (seq_col, target_col)]
    line = 1 if headerless else 2
    rows = dropped = 0
    with open(path, "rb") as handle, pcsv.open_csv(_decompressed(handle, path), **options) as reader:
        for batch in reader:
            chunk, missing = _chunk(batch, seq_col, target_col, group_col, others, line, read.drop_missing)
            line += batch.num_rows
            rows += len(chunk.lengths)
            dropped += missing
            if len(chunk.lengths):
                yield chunk
    if rows == 0:
        raise NotStreamable("no rows")  # for iter_table's message
    if dropped:
        print(f"{path}: dropped {dropped} rows with a missing or non-numeric target", file=sys.stderr)


def _decompressed(handle, path: Path):
    """``handle`` as pyarrow reads it, gunzipped for ``.gz``. A Python file object, because pyarrow
    reads it no faster than it parses; it reads ahead an Arrow file of its own (``pa.input_stream``)
    without bound, so that its memory grew with the file."""
    import pyarrow as pa

    return pa.CompressedInputStream(handle, "gzip") if path.suffix == ".gz" else handle


def _parse_options(sep: str):
    """pandas' dialect where no field has a quote character; an empty line is a row of empty
    fields, as with ``skip_blank_lines=False``, and any other row of another width an error."""
    import pyarrow.csv as pcsv

    return pcsv.ParseOptions(delimiter=sep, quote_char=False, ignore_empty_lines=False)


def _column_names(path: Path, sep: str, headerless: bool) -> list[str]:
    """Column names as pyarrow reads them (``f0``, ``f1``, ... without a header)."""
    import pyarrow.csv as pcsv

    options = pcsv.ReadOptions(block_size=1 << 16, autogenerate_column_names=headerless)
    with open(path, "rb") as handle, pcsv.open_csv(_decompressed(handle, path), read_options=options,
                                                   parse_options=_parse_options(sep)) as reader:
        names = reader.schema.names
    if len(set(names)) != len(names) or any(not name or '"' in name for name in names):
        raise NotStreamable(f"column names {names}")  # pandas renames or unquotes them
    return names


def _columns(names: list[str], read: ReadOptions, headerless: bool) -> tuple[str, str, str | None]:
    """The sequence, target and group columns, chosen as ``iter_table`` chooses them."""
    if headerless:
        if read.group_col or len(names) < 2:
            raise NotStreamable("a headerless file with a group column or without a target column")
        return names[0], names[1], None
    seq_col = read.seq_col or next((col for col in SEQ_COLUMNS if col in names), None)
    target_col = read.target_col or next((col for col in TARGET_COLUMNS if col in names), None)
    chosen = [col for col in (seq_col, target_col, read.group_col) if col is not None]
    if seq_col is None or target_col is None or not set(chosen) <= set(names) or len(set(chosen)) != len(chosen):
        raise NotStreamable(f"columns {chosen} of {names}")
    return seq_col, target_col, read.group_col


def _chunk(batch, seq_col: str, target_col: str, group_col: str | None, others: list[str], first_line: int,
           drop_missing: bool) -> tuple[TableChunk, int]:
    """One record batch as a chunk, without its blank rows and (``drop_missing``) the rows
    without a finite target; and how many rows were dropped for their target."""
    import pyarrow.compute as pc

    for col in others:  # pandas would take a quote for quoting, which can join fields and rows
        # (in the sequence a quote is an invalid character, in the target not a number)
        if pc.any(pc.match_substring(batch.column(col), '"')).as_py():
            raise NotStreamable(f"a quote character in column {col!r}")
    seqs = batch.column(seq_col)
    offsets = np.frombuffer(seqs.buffers()[1], dtype=np.int32)[seqs.offset: seqs.offset + len(seqs) + 1]
    text = memoryview(seqs.buffers()[2] or b"")[offsets[0]:offsets[-1]].tobytes().translate(BYTE_CODES)
    if INVALID_CODE in text:
        raise NotStreamable("a character other than ACGTN in a sequence")
    codes = np.frombuffer(text, dtype=np.uint8)
    lengths = np.diff(offsets).astype(np.int64)
    targets = batch.column(target_col).to_numpy(zero_copy_only=False)  # an empty field (null) is NaN
    lines = np.arange(first_line, first_line + batch.num_rows, dtype=np.int64)
    keep = lengths > 0
    if not keep.all():
        _check_blank(batch, np.flatnonzero(~keep), seq_col, target_col)
    missing = keep & ~np.isfinite(targets)
    if missing.any() and not drop_missing:
        raise NotStreamable("a missing or non-finite target")
    keep &= ~missing
    group_index = group_labels = None
    if group_col is not None:
        encoded = batch.column(group_col).dictionary_encode()
        group_index = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        group_labels = encoded.dictionary.to_pylist()
    if not keep.all():
        codes = codes[np.repeat(keep, lengths)]
        lengths, targets, lines = lengths[keep], targets[keep], lines[keep]
        group_index = group_index[keep] if group_index is not None else None
    return TableChunk(codes, lengths, targets, lines, group_index, group_labels), int(missing.sum())


def _check_blank(batch, rows: np.ndarray, seq_col: str, target_col: str) -> None:
    """Rows with an empty sequence must be blank, every field empty or spaces, for ``iter_table``
    to skip them; it reports any other as an empty sequence."""
    for row in rows.tolist():
        for col in batch.schema.names:
            value = batch.column(col)[row].as_py()
            if col == target_col and value is not None or col not in (seq_col, target_col) and value.strip():
                raise NotStreamable("an empty sequence")
