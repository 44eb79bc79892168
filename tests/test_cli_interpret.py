"""The interpretation commands: explain, variants, motifs, marginalize (issue 14).

Each bad input is an exit code 2 with one ``error:`` line naming the file, the line and the
problem, and nothing written. The run is a tiny untrained LegNet saved as a run directory.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_error, invoke
from promoterlab.evaluation.predict import predict
from promoterlab.runs import load_run
from test_interpret import LAYOUT, dream_like, saved_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return saved_run(tmp_path_factory.mktemp("interpret") / "run")


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "in.fa"
    seqs = dream_like(3, seed=7)
    path.write_text("".join(f">s{i}\n{seq}\n" for i, seq in enumerate(seqs)))
    return path


# --- explain --------------------------------------------------------------------------------------


def test_explain_writes_attributions_per_insert_and_pictures(run, fasta, tmp_path):
    out = tmp_path / "explained"
    result = invoke("explain", run, fasta, "-o", out, "--max-plots", "2", "--precision", "32")
    assert result.exit_code == 0, result.output
    assert "explain (ism)" in result.stderr  # the progress bar
    saved = np.load(out / "attributions.npz")
    assert list(saved["ids"]) == ["s0", "s1", "s2"] and str(saved["method"]) == "ism"
    assert saved["attributions"].shape == (3, 93, 4) and saved["ism"].shape == (3, 93, 4)
    assert all(len(insert) == 93 for insert in saved["inserts"])
    model, config = load_run(run)
    seqs = [line for line in fasta.read_text().splitlines() if not line.startswith(">")]
    np.testing.assert_allclose(saved["prediction"], predict(model, seqs, layout=LAYOUT, precision="32"), atol=1e-5)
    # ISM: 0 at the base that is there, three substitutions per position.
    ism = saved["ism"]
    at_base = np.take_along_axis(ism, np.array([["ACGT".index(b) for b in s] for s in saved["inserts"]])[..., None], 2)
    assert np.all(at_base == 0) and np.count_nonzero(ism) > 0.9 * 3 * 93 * 3
    assert sorted(p.name for p in out.glob("*.png")) == ["0001_s0.png", "0002_s1.png"]


def test_explain_deepliftshap_and_chosen_ids(run, fasta, tmp_path):
    out = tmp_path / "lifted"
    result = invoke("explain", run, fasta, "-o", out, "--method", "deepliftshap", "--ids", "s2,s0",
                    "--shuffles", "3", "--max-plots", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    saved = np.load(out / "attributions.npz")
    assert list(saved["ids"]) == ["s0", "s2"] and str(saved["method"]) == "deepliftshap"
    assert np.isfinite(saved["ism"][0]).all() and np.isnan(saved["ism"][1]).all()  # ISM only for the plot
    assert [p.name for p in out.glob("*.png")] == ["0001_s0.png"]


@pytest.mark.parametrize("args, fragments", [
    (["--method", "shap"], ["--method must be one of ism, deepliftshap"]),
    (["--ids", "s0,nope"], ["no sequence with id nope"]),
    (["--precision", "17"], ["--precision must be one of auto, 32, bf16, 16"]),
    (["--precision", "16"], ["--precision 16 (fp16 mixed) runs on a GPU only"]),
])
def test_explain_refuses_bad_options(run, fasta, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_error(invoke("explain", run, fasta, "-o", out, "--no-progress", *args), *fragments)
    assert not out.exists()


def test_explain_names_the_line_of_a_bad_sequence(run, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>b\nACGU\n")
    assert_error(invoke("explain", run, bad, "-o", tmp_path / "out"), f"{bad}:4", "'U'")
    assert_error(invoke("explain", tmp_path / "norun", bad, "-o", tmp_path / "out"), "norun: no such run folder")
    assert not (tmp_path / "out").exists()


# --- variants -------------------------------------------------------------------------------------


def test_variants_streams_deltas_for_pairs_and_substitutions(run, tmp_path):
    refs = dream_like(4, seed=3)
    alts = [r[:40] + ("G" if r[40] != "G" else "T") + r[41:] for r in refs]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("id\tref\talt\n" + "".join(f"v{i}\t{r}\t{a}\n" for i, (r, a) in enumerate(zip(refs, alts))))
    subs = tmp_path / "subs.tsv"
    subs.write_text("id\tseq\tpos\talt\n" + "".join(f"v{i}\t{r}\t41\t{a[40]}\n" for i, (r, a) in
                                                    enumerate(zip(refs, alts))))
    out_pairs, out_subs, plot = tmp_path / "pairs_out.tsv", tmp_path / "subs_out.tsv", tmp_path / "ranked.png"
    result = invoke("variants", run, pairs, "-o", out_pairs, "--plot", plot, "--precision", "32")
    assert result.exit_code == 0, result.output
    assert invoke("variants", run, subs, "-o", out_subs, "--precision", "32").exit_code == 0
    assert out_pairs.read_text() == out_subs.read_text() and plot.stat().st_size > 0
    lines = out_pairs.read_text().splitlines()
    assert lines[0] == "id\tref_pred\talt_pred\tdelta" and len(lines) == 5
    model, _ = load_run(run)
    expected = predict(model, alts, layout=LAYOUT, precision="32") - predict(model, refs, layout=LAYOUT,
                                                                             precision="32")
    np.testing.assert_allclose([float(line.split("\t")[3]) for line in lines[1:]], expected, atol=1e-4)


REF = dream_like(1, seed=9)[0]


@pytest.mark.parametrize("text, line, problem", [
    ("id\tref\talt\nv\t" + REF + "\t" + REF[:-1] + "\n", 2, "unequal context: ref is 110 bp and alt 109 bp"),
    ("id\tref\talt\nv\t" + REF + "\tA" + REF[1:] + "\n", 2, "unequal context: only ref begins with the left adapter"),
    ("id\tref\talt\nv\t" + REF + "\t" + REF[:-1] + "X\n", 2, "alt has character 'X'"),
    ("id\tref\talt\nv\t" + REF + "\t" + REF + "\nw\tAC-T\tACGT\n", 3, "ref has character '-'"),
    ("id\tseq\tpos\talt\nv\t" + REF + "\t0\tA\n", 2, "pos 0 is out of range: a base can replace positions 1..110"),
    ("id\tseq\tpos\talt\nv\t" + REF + "\t110\tAC\n", 2, "pos 110 is out of range: 2 bases can replace positions "
                                                         "1..109"),
    ("id\tseq\tpos\talt\nv\t" + REF + "\tfive\tA\n", 2, "pos 'five' is not an integer"),
    ("id\tseq\tpos\talt\nv\t" + REF + "\t3\tZ\n", 2, "alt has character 'Z'"),
    ("id\tref\talt\nv\t" + REF + "\n", 2, "expected 3 tab-separated fields as in the header, found 2"),
    ("id\tref\talt\n\t" + REF + "\t" + REF + "\n", 2, "id is empty"),
    ("name\tsequence\tvariant\nv\tA\tC\n", 1, "expected a header naming the columns id, ref, alt"),
    ("id\tref\talt\nv\t" + "A" * 151 + "\t" + "C" * 151 + "\n", 2, "longer than the model length 150"),
])
def test_variants_bad_rows_name_file_and_line(run, tmp_path, text, line, problem):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(text)
    out = tmp_path / "out.tsv"
    assert_error(invoke("variants", run, pairs, "-o", out, "--no-progress"), f"{pairs}:{line}", problem)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["pairs.tsv"]


def test_variants_refuses_empty_files_and_unsafe_outputs(run, tmp_path):
    empty, header = tmp_path / "empty.tsv", tmp_path / "header.tsv"
    empty.write_text("")
    header.write_text("id\tref\talt\n")
    assert_error(invoke("variants", run, empty, "-o", tmp_path / "o.tsv"), str(empty), "file is empty")
    assert_error(invoke("variants", run, header, "-o", tmp_path / "o.tsv"), "header but no variant rows")
    assert_error(invoke("variants", run, header, "-o", header), "is also an input")
    assert_error(invoke("variants", run, header, "-o", tmp_path / "o.tsv", "--plot", tmp_path / "p.txt"),
                 "give a .png, .svg or .pdf file")
    assert not (tmp_path / "o.tsv").exists()


# --- motifs and marginalize -----------------------------------------------------------------------


def test_motifs_writes_its_tables(run, tmp_path):
    library = tmp_path / "lib.txt"
    library.write_text("".join(f"{s}\t1.0\n" for s in dream_like(12, seed=11)))
    out = tmp_path / "motifs"
    result = invoke("motifs", run, library, "-o", out, "--method", "ism", "--min-seqlets", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    seqlets = (out / "seqlets.tsv").read_text().splitlines()
    assert seqlets[0] == "id\tstart\tend\tattribution\tp_value\tsign\tmotif" and len(seqlets) > 1
    starts_ends = [(int(r.split("\t")[1]), int(r.split("\t")[2])) for r in seqlets[1:]]
    assert all(1 <= s <= e <= 93 for s, e in starts_ends)  # on the insert, 1-based
    table = (out / "motifs.tsv").read_text().splitlines()
    assert table[0].split("\t") == ["motif", "sign", "n_seqlets", "consensus", "best_match", "p_value",
                                    "similarity", "match"]
    assert len(list(out.glob("*.png"))) == len(table) - 1
    assert_error(invoke("motifs", run, library, "-o", tmp_path / "m2", "--cluster-p", "0"), "--cluster-p")


def test_marginalize_writes_effects_by_position_and_strand(run, tmp_path):
    out = tmp_path / "marg"
    result = invoke("marginalize", run, "TATA", "-o", out, "--n-background", "4", "--no-progress")
    assert result.exit_code == 0, result.output
    rows = (out / "marginalize.tsv").read_text().splitlines()
    assert rows[0] == "position\tstrand\tmean\tsd\tn"
    assert len(rows) == 1 + 2 * (80 - 8 + 1)  # every start of the 8 bp site in the random 80-mer, two strands
    assert rows[1].split("\t")[:2] == ["1", "+"] and (out / "marginalize.png").stat().st_size > 0
    assert_error(invoke("marginalize", run, "TATA-box", "-o", tmp_path / "m2"), "neither a known motif")
    background = tmp_path / "bg.txt"
    background.write_text(dream_like(1)[0] + "\t0\n" + "ACGT" * 10 + "\t0\n")
    assert_error(invoke("marginalize", run, "TATA", "-o", tmp_path / "m3", "--background", background),
                 f"{background}:2", "inserts of one length")
    assert not (tmp_path / "m2").exists() and not (tmp_path / "m3").exists()
