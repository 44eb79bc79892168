"""Every reader error names the file, the line and the problem."""

from __future__ import annotations

import gzip
import re

import pytest
from typer.testing import CliRunner

from promoterlab.cli import app
from promoterlab.data.dataset import encode_sequences, load_split
from promoterlab.config import DataConfig
from promoterlab.data.readers import DataError, read_fasta, read_sequences, read_table
from promoterlab.sequence import Layout

SEQ = "TGCATTTTTTTCACATC" + "ACGT" * 20 + "GGTTACGGCTGTT"


def write(path, text):
    path.write_text(text)
    return path


def test_dream_text_format(tmp_path):
    frame = read_table(write(tmp_path / "d.txt", f"{SEQ}\t5\n{SEQ.lower()}\t7.5\n"))
    assert frame["seq"].tolist() == [SEQ, SEQ.lower()]
    assert frame["target"].tolist() == [5.0, 7.5]
    assert frame["line"].tolist() == [1, 2]


def test_tsv_and_csv_with_named_columns_and_gzip(tmp_path):
    tsv = write(tmp_path / "t.tsv", f"name\tsequence\tlevel\tfam\na\t{SEQ}\t1.5\tg1\nb\tACGT\t2\tg2\n")
    frame = read_table(tsv, seq_col="sequence", target_col="level", group_col="fam", id_col="name")
    assert frame["target"].tolist() == [1.5, 2.0]
    assert frame["group"].tolist() == ["g1", "g2"] and frame["id"].tolist() == ["a", "b"]
    gz = tmp_path / "t.csv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(f"seq,expr\n{SEQ},3\n")
    assert read_table(gz)["target"].tolist() == [3.0]


@pytest.mark.parametrize(
    "text, line, problem",
    [
        (f"{SEQ}\t5\nACGTXACGT\t3\n", 2, "character 'X'"),
        (f"{SEQ}\t5\n{SEQ}\t\n", 2, "missing target"),
        (f"{SEQ}\t5\n{SEQ}\t4\n{SEQ}\tabc\n", 3, "target 'abc' is not a number"),
        (f"seq\texpr\n{SEQ}\t1\n\t2\n", 3, "empty sequence"),
        (f"seq\texpr\n{SEQ}\tNA\n", 2, "missing target"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, text, line, problem):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataError, match=re.escape(problem)) as err:
        read_table(path)
    assert err.value.line == line
    assert problem in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_empty_file_and_missing_columns(tmp_path):
    with pytest.raises(DataError, match="file is empty"):
        read_table(write(tmp_path / "empty.txt", "\n\n"))
    with pytest.raises(DataError, match="no column 'level'"):
        read_table(write(tmp_path / "h.tsv", f"seq\texpr\n{SEQ}\t1\n"), target_col="level")
    with pytest.raises(DataError, match="--target-col"):
        read_table(write(tmp_path / "h2.tsv", f"seq\tvalue\n{SEQ}\t1\n"))


def test_drop_missing_reports_count(tmp_path, capsys):
    path = write(tmp_path / "d.txt", f"{SEQ}\t5\n{SEQ}\tnan\n{SEQ}\tx\n{SEQ}\t2\n")
    frame = read_table(path, drop_missing=True)
    assert frame["target"].tolist() == [5.0, 2.0]
    assert frame["line"].tolist() == [1, 4]
    captured = capsys.readouterr()
    assert "dropped 2 rows" in captured.err and captured.out == ""  # stdout stays clean for piped output


def test_sequence_too_long_for_the_model(tmp_path):
    long = "A" * 151
    path = write(tmp_path / "long.txt", f"{SEQ}\t5\n{long}\t3\n")
    with pytest.raises(DataError, match=r"long.txt:2: sequence of 151 bp .* longer than the model length 150"):
        load_split(DataConfig(path=str(path), val_size=1), seed=0)
    # a leading adapter does not count: 17 + 150 bp is fine
    assert encode_sequences(["TGCATTTTTTTCACATC" + "C" * 150], Layout(150, "TGCATTTTTTTCACATC", "")).shape == (1, 150)


def test_fasta(tmp_path):
    path = write(tmp_path / "s.fa", ">one first\nACGT\nacgt\n\n>two\nNNNA\n")
    frame = read_fasta(path)
    assert frame["id"].tolist() == ["one", "two"] and frame["seq"].tolist() == ["ACGTacgt", "NNNA"]
    assert read_sequences(path)["id"].tolist() == ["one", "two"]
    with pytest.raises(DataError, match=r"bad.fa:3: sequence has character 'Z'"):
        read_fasta(write(tmp_path / "bad.fa", ">a\nACGT\nACZT\n"))
    with pytest.raises(DataError, match=r"nohead.fa:1: sequence before the first '>'"):
        read_fasta(write(tmp_path / "nohead.fa", "ACGT\n"))
    with pytest.raises(DataError, match=r"empty.fa:1: record 'a' has an empty sequence"):
        read_fasta(write(tmp_path / "empty.fa", ">a\n>b\nAC\n"))


def test_prediction_input_ignores_targets(tmp_path):
    frame = read_sequences(write(tmp_path / "p.txt", f"{SEQ}\tnan\n{SEQ}\t0\n"))
    assert frame["id"].tolist() == ["0", "1"] and "target" not in frame


def test_cli_reports_bad_input_with_nonzero_exit(tmp_path):
    path = write(tmp_path / "bad.txt", f"{SEQ}\t5\nACGU\t3\n")
    result = CliRunner().invoke(app, ["train", str(path), "--output", str(tmp_path / "run"), "--val-size", "1"])
    assert result.exit_code == 2
    assert f"{path}:2: sequence has character 'U'" in result.output
    assert not (tmp_path / "run" / "model.pt").exists()
    result = CliRunner().invoke(app, ["train", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_seq_values_keep_every_row_in_order(tmp_path):
    from promoterlab.data.readers import read_seq_values

    path = tmp_path / "measured.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(f"seq\texpr\n{SEQ}\t1.5\n{SEQ.lower()}\tnan\n{SEQ}\t\n{SEQ}\toops\n")
    rows = read_seq_values(path)
    assert rows["value"].tolist() == ["1.5", "nan", "", "oops"]  # the caller decides what a value means
    assert rows["line"].tolist() == [2, 3, 4, 5] and rows["seq"].iloc[1] == SEQ.lower()
    with pytest.raises(DataError, match=r"bad.txt:2: expected 'seq<TAB>value', found 3 field"):
        read_seq_values(write(tmp_path / "bad.txt", f"{SEQ}\t1\n{SEQ}\t1\t2\n"))
    with pytest.raises(DataError, match=r"dna.txt:2: sequence has character 'X'"):
        read_seq_values(write(tmp_path / "dna.txt", "ACGT\t1\nACGX\t1\n"))
    with pytest.raises(DataError, match="file is empty"):
        read_seq_values(write(tmp_path / "empty.txt", ""))
