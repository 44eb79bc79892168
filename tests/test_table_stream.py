"""pyarrow's streaming reader of the store builder: the same rows, stores and errors as pandas."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from promoterlab.data.readers import DataError, iter_table
from promoterlab.data.store import ReadOptions
from promoterlab.data.store_build import build_store
from promoterlab.data.table_stream import NotStreamable, iter_table_codes
from promoterlab.sequence import LEFT_ADAPTER, Layout

DE_BOER_ADAPTER = "AACTGCATTTTTTTCACATC"


def dream_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Sequence and target text: the left adapter on 3 rows in 4, inserts of 1-133 bp, some N,
    some lower case; integer, 4-decimal and 17-digit targets."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        insert = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=rng.integers(1, 134)))
        seq = (LEFT_ADAPTER if i % 4 else "") + insert
        seq = seq.lower() if i % 7 == 0 else seq
        value = [str(rng.integers(0, 18)), f"{rng.uniform(0, 17):.4f}", repr(float(rng.uniform(0, 17)))][i % 3]
        rows.append((seq, value))
    return rows


def dream_text(n: int = 300, seed: int = 0) -> str:
    return "".join(f"{seq}\t{value}\n" for seq, value in dream_rows(n, seed))


def grouped_text(sep: str, n: int = 300, names: tuple[str, ...] = ("id", "sequence", "expression", "family")) -> str:
    rows = dream_rows(n, seed=1)
    head = sep.join(names) + "\n"
    return head + "".join(sep.join([f"r{i}", seq, value, f"g{i % 37}"]) + "\n" for i, (seq, value) in enumerate(rows))


SEQ = LEFT_ADAPTER + "ACGT" * 20
# files that pyarrow reads itself: (text, read options)
STREAMED = {
    "dream.txt": (dream_text(), ReadOptions()),
    "crlf.txt": (dream_text().replace("\n", "\r\n"), ReadOptions()),
    "cr.txt": (dream_text().replace("\n", "\r"), ReadOptions()),
    "blank_lines.txt": (f"{SEQ}\t1\n\n{SEQ[:-3]}\t2.5\n\t\n\r\n{SEQ}\t3\n\n\n", ReadOptions()),
    "no_final_newline.txt": (f"{SEQ}\t1\n{SEQ}\t2", ReadOptions()),
    "missing_dropped.txt": (f"{SEQ}\t1\n{SEQ}\tnan\n{SEQ}\t\n{SEQ}\t-inf\n{SEQ}\t4\n", ReadOptions(drop_missing=True)),
    "grouped.tsv": (grouped_text("\t"), ReadOptions(group_col="family")),
    "byte_order_mark.tsv": ("\ufeff" + grouped_text("\t"), ReadOptions()),
    "grouped.csv": (grouped_text(","), ReadOptions(group_col="family")),
    "named.csv": (grouped_text(",", names=("a", "b", "c", "d")), ReadOptions(seq_col="b", target_col="c",
                                                                             group_col="d")),
}
# files left to pandas: quoting, spaces, a whitespace-only line, text that is not a number
PANDAS = {
    "quoted.csv": (f'"seq","expr"\n"{SEQ}",1\n"{SEQ}",2\n', ReadOptions()),
    "quoted_note.csv": (f'seq,expr,note\n{SEQ},1,"a, b"\n{SEQ},2,c\n', ReadOptions()),
    "spaces.txt": (f"{SEQ}\t1\n {SEQ} \t2\n", ReadOptions()),
    "whitespace_line.txt": (f"{SEQ}\t1\n   \n{SEQ}\t2\n", ReadOptions()),
    "NA_dropped.tsv": (f"seq\tel_combined\n{SEQ}\t1\n{SEQ}\tNA\n", ReadOptions(drop_missing=True)),
}
# invalid files: the error of iter_table, whichever reader starts
ERRORS = {
    "bad_char.txt": (dream_text(50) + f"{SEQ}X\t3\n", ":51: sequence has character 'X'"),
    "bad_target.txt": (dream_text(50) + f"{SEQ}\tnope\n", ":51: target 'nope' is not a number"),
    "missing_target.txt": (dream_text(50) + f"{SEQ}\tnan\n", ":51: missing target"),
    "empty_sequence.txt": (dream_text(50) + "\t3\n", ":51: empty sequence"),
    "too_long.txt": (dream_text(50) + "A" * 151 + "\t3\n", ":51: sequence of 151 bp"),
}


def write(path, text: str, gz: bool):
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def store_bytes(store) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(store.path.iterdir())}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", [*STREAMED, *PANDAS])
def test_both_readers_write_the_same_store(tmp_path, name, gz):
    text, read = {**STREAMED, **PANDAS}[name]
    path = write(tmp_path / name, text, gz)
    if name in STREAMED:
        assert sum(len(chunk.lengths) for chunk in iter_table_codes(path, read)) > 0
    else:
        with pytest.raises(NotStreamable):
            list(iter_table_codes(path, read))
    streamed = build_store(path, tmp_path / "auto", read=read)
    reference = build_store(path, tmp_path / "pandas", read=read, reader="pandas")
    assert store_bytes(streamed) == store_bytes(reference)  # arrays, group labels and header
    frame = next(iter_table(path, read.seq_col, read.target_col, drop_missing=read.drop_missing))
    assert len(streamed) == len(frame) > 0


@pytest.mark.parametrize("layout", [Layout(left_adapter=""), Layout(left_adapter=DE_BOER_ADAPTER, seq_len=160),
                                    Layout(seq_len=200)])
def test_same_store_with_other_layouts(tmp_path, layout):
    path = write(tmp_path / "t.txt", dream_text(400, seed=3), gz=False)
    streamed = build_store(path, tmp_path / "auto", layout)
    assert store_bytes(streamed) == store_bytes(build_store(path, tmp_path / "pandas", layout, reader="pandas"))
    assert np.asarray(streamed.adapter).any() == bool(layout.left_adapter == LEFT_ADAPTER)


def test_blocks_keep_rows_and_lines(tmp_path):
    """Many small blocks, blank lines among them: the rows, lines and values of iter_table."""
    lines = dream_text(2000, seed=4).splitlines(keepends=True)
    for at in (5, 700, 701, 1500):
        lines[at] = "\n"
    path = write(tmp_path / "t.txt", "".join(lines), gz=False)
    chunks = list(iter_table_codes(path, block_bytes=4096))
    assert len(chunks) > 40
    frame = next(iter_table(path))
    np.testing.assert_array_equal(np.concatenate([c.lines for c in chunks]), frame["line"])
    np.testing.assert_array_equal(np.concatenate([c.targets for c in chunks]), frame["target"])
    np.testing.assert_array_equal(np.concatenate([c.lengths for c in chunks]), frame["seq"].str.len())
    codes = np.concatenate([c.codes for c in chunks])
    assert bytes(np.frombuffer(b"ACGTN", np.uint8)[codes]) == "".join(frame["seq"]).upper().encode()


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ERRORS)
def test_errors_name_the_line_as_before(tmp_path, name, gz):
    text, message = ERRORS[name]
    path = write(tmp_path / name, text, gz)
    with pytest.raises(DataError) as streamed:
        build_store(path, tmp_path / "auto")
    with pytest.raises(DataError) as reference:
        build_store(path, tmp_path / "pandas", reader="pandas")
    assert str(streamed.value) == str(reference.value)
    assert f"{path}{message}" in str(streamed.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing half-written


def test_damaged_gzip_is_named(tmp_path):
    path = tmp_path / "t.txt.gz"
    path.write_bytes(gzip.compress(dream_text(200).encode() * 50)[:10_000])
    with pytest.raises(DataError, match=r"t\.txt\.gz: damaged or truncated gzip file"):
        build_store(path, tmp_path / "s")
