"""DREAM 2022 scoring: real public-leaderboard data, a hand-computed case, input errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from scipy.stats import rankdata
from typer.testing import CliRunner

from promoterlab.cli.data import dream_app
from promoterlab.evaluation.dream import (
    WEIGHTS,
    DreamDataError,
    load_predictions,
    load_truth,
    score,
    write_submission,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TEST_DIR = SHARED / "dream2022" / "test"
LEADERBOARD = TEST_DIR / "public_leaderboard_ids"
MEASURED = TEST_DIR / "public_test_data_with_MAUDE_expression.txt"
PUBLIC_N = {"all": 9045, "high": 96, "low": 99, "yeast": 208, "random": 733, "challenging": 195,
            "SNV": 4670, "motif_perturbation": 328, "motif_tiling": 263}

needs_shared = pytest.mark.skipif(not LEADERBOARD.is_dir() or not MEASURED.is_file(),
                                  reason="../shared/data/dream2022 not available")


@pytest.fixture(scope="module")
def json_truth():
    return load_truth(LEADERBOARD)


@pytest.fixture(scope="module")
def csv_truth():
    return load_truth(MEASURED)


@needs_shared
def test_self_score_is_one_with_json_truth(json_truth):
    result = score(load_predictions(LEADERBOARD / "ground.json"), json_truth)
    assert result.pearson_score == pytest.approx(1.0, abs=1e-12)
    assert result.spearman_score == pytest.approx(1.0, abs=1e-12)
    assert {s.name: s.n for s in result.subsets} == PUBLIC_N
    assert all(s.no_truth == 0 and s.no_prediction == 0 for s in result.subsets)


@needs_shared
def test_self_score_is_one_with_measured_file_and_subset_csvs(csv_truth):
    result = score(dict(csv_truth.values), csv_truth)
    assert result.pearson_score == pytest.approx(1.0, abs=1e-12)
    assert result.spearman_score == pytest.approx(1.0, abs=1e-12)
    assert {s.name: s.n for s in result.subsets} == PUBLIC_N
    assert result.subset("high").no_truth == 968 - 96  # the private positions have no value
    assert any("62058 of 71103 rows" in note for note in result.notes)
    snv_note = next(note for note in result.notes if note.startswith("SNV:"))
    assert "4670 pairs taken from SNVs_exp_indices.json" in snv_note and "4670 of them measured" in snv_note


@needs_shared
def test_json_and_csv_truth_agree(json_truth, csv_truth):
    pred = load_predictions(LEADERBOARD / "sample_submission.json")
    a, b = score(pred, json_truth), score(pred, csv_truth)
    for x, y in zip(a.subsets, b.subsets):
        assert (x.name, x.n) == (y.name, y.n)
        assert x.pearson == pytest.approx(y.pearson, abs=1e-12)
        assert x.spearman == pytest.approx(y.spearman, abs=1e-12)
    assert a.pearson_score == pytest.approx(b.pearson_score, abs=1e-12)


@needs_shared
def test_shuffled_predictions_score_near_zero(json_truth, csv_truth):
    # The public motif-tiling pairs share only 3 reference sequences, so one shuffle's
    # Spearman score varies (sd about 0.02); the mean of five is tested.
    positions = sorted(json_truth.values)
    values = np.array([json_truth.values[p] for p in positions])
    for truth in (json_truth, csv_truth):
        results = [score(dict(zip(positions, np.random.default_rng(seed).permutation(values))), truth)
                   for seed in range(5)]
        assert all(0 <= r.pearson_score < 0.05 for r in results)
        assert abs(np.mean([r.spearman_score for r in results])) < 0.05


# A tiny leaderboard with r and rho chosen to be computable by hand (see the comments).
TINY = {
    "high_exp_indices.json": {"0": 1, "1": 2, "2": 3},
    "low_exp_indices.json": {"3": 1, "4": 2, "5": 3},
    "yeast_exp_indices.json": {"6": 1, "7": 2, "8": 3},
    "random_exp_indices.json": {"9": 1, "10": 2, "11": 3},
    "challenging_exp_indices.json": {"12": 1, "13": 2, "14": 3, "15": 4},
    "SNVs_exp_indices.json": {"20,21": [3, 1], "22,23": [1, 2], "24,25": [5, 2], "26,27": [1, 1]},
    "motif_perturbation_exp_indices.json": {"30,31": [1, 0], "32,33": [2, 0], "34,35": [3, 0]},
    "motif_tiling_exp_indices.json": {"40,41": [1, 0], "42,41": [2, 0], "43,41": [3, 0]},
}
TINY_PRED = {
    0: 1, 1: 3, 2: 2,            # high: centred (-1,0,1)·(-1,1,0) = 1 over 2 -> r = rho = 0.5
    3: 3, 4: 2, 5: 1,            # low: reversed -> r = rho = -1
    6: 2, 7: 4, 8: 6,            # yeast: 2x -> r = rho = 1
    9: 1, 10: 2, 11: 30,         # random: cov 29, norms 2 and 542 -> r^2 = 841/1084, rho = 1
    12: 10, 13: 20, 14: 30,      # challenging: 15 has no prediction -> n = 3, r = 1
    20: 2, 21: 0, 22: 0, 23: 1, 24: 3, 25: 0, 26: 5,  # SNV diffs (2,-1,3) as measured; 27 absent
    30: 1, 31: 0, 32: 3, 33: 0, 34: 2, 35: 0,         # motif perturbation diffs (1,3,2) -> 0.5
    40: 3, 41: 0, 42: 2, 43: 1,                        # motif tiling diffs (3,2,1) -> -1
}
TINY_R = {"high": 0.5, "low": -1.0, "yeast": 1.0, "random": 29 / math.sqrt(1084), "challenging": 1.0,
          "SNV": 1.0, "motif_perturbation": 0.5, "motif_tiling": -1.0}
TINY_RHO = {"high": 0.5, "low": -1.0, "yeast": 1.0, "random": 1.0, "challenging": 1.0,
            "SNV": 1.0, "motif_perturbation": 0.5, "motif_tiling": -1.0}


def _tiny_values() -> dict[int, float]:
    values = {}
    for content in TINY.values():
        for key, value in content.items():
            pairs = zip(map(int, key.split(",")), value) if "," in key else [(int(key), value)]
            values.update(pairs)
    return values


@pytest.fixture
def tiny_leaderboard(tmp_path):
    folder = tmp_path / "public_leaderboard_ids"
    folder.mkdir()
    for name, content in TINY.items():
        (folder / name).write_text(json.dumps(content))
    return folder


def _expected_all() -> tuple[float, float]:
    values = _tiny_values()
    used = [p for p in sorted(values) if p in TINY_PRED]
    truth, pred = np.array([values[p] for p in used]), np.array([TINY_PRED[p] for p in used], float)
    return float(np.corrcoef(truth, pred)[0, 1]), float(np.corrcoef(rankdata(truth), rankdata(pred))[0, 1])


def _check_tiny(result) -> None:
    r_all, rho_all = _expected_all()
    rows = {s.name: s for s in result.subsets}
    assert rows["all"].n == 34 - 2 and rows["all"].no_prediction == 2  # 15 and 27 unpredicted
    assert rows["all"].pearson == pytest.approx(r_all, abs=1e-12)
    for name, r in TINY_R.items():
        assert rows[name].pearson == pytest.approx(r, abs=1e-12), name
        assert rows[name].spearman == pytest.approx(TINY_RHO[name], abs=1e-12), name
    assert (rows["challenging"].n, rows["challenging"].no_prediction) == (3, 1)
    assert (rows["SNV"].n, rows["SNV"].no_prediction) == (3, 1)  # pair 26,27 lacks a side
    pearson = (r_all ** 2 + 0.3 * 0.25 + 0.3 + 0.3 + 0.3 * 841 / 1084 + 0.5 + 1.25 + 0.3 * 0.25 + 0.4) / 4.65
    spearman = (rho_all + 0.3 * 0.5 - 0.3 + 0.3 + 0.3 + 0.5 + 1.25 + 0.3 * 0.5 - 0.4) / 4.65
    assert result.pearson_score == pytest.approx(pearson, abs=1e-12)
    assert result.spearman_score == pytest.approx(spearman, abs=1e-12)
    assert sum(WEIGHTS.values()) == pytest.approx(4.65)


def test_hand_computed_case_with_json_truth(tiny_leaderboard):
    _check_tiny(score(TINY_PRED, load_truth(tiny_leaderboard)))


def test_hand_computed_case_with_measured_file_and_csvs(tiny_leaderboard, tmp_path):
    values = _tiny_values()
    measured = tmp_path / "measured.txt"
    measured.write_text("".join(f"ACGT\t{values.get(p, 'nan')}\n" for p in range(44)))
    ids = tmp_path / "test_subset_ids"
    ids.mkdir()
    for name, csv in (("high", "high_exp_seqs.csv"), ("low", "low_exp_seqs.csv"),
                      ("yeast", "yeast_seqs.csv"), ("random", "all_random_seqs.csv"),
                      ("challenging", "challenging_seqs.csv")):
        keys = list(TINY[f"{name}_exp_indices.json"]) * 2  # duplicates are counted once
        (ids / csv).write_text("tag,pos,exp\n" + "".join(f"t,{k},\n" for k in keys))
    for name, csv in (("motif_perturbation", "motif_perturbation_seqs.csv"),
                      ("motif_tiling", "motif_tiling_seqs.csv")):
        rows = [k.split(",") for k in TINY[f"{name}_exp_indices.json"]]
        (ids / csv).write_text("alt_pos,ref_pos\n" + "".join(f"{a},{r}\n" for a, r in rows))
    result = score(TINY_PRED, load_truth(measured))  # SNV pairs come from the leaderboard JSON
    _check_tiny(result)
    assert any(n.startswith("SNV: no all_SNVs_seqs.csv") and "4 pairs" in n and "4 of them" in n
               for n in result.notes)
    assert result.subset("high").no_truth == 0


def test_prediction_formats_agree(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"0": 0.5, "2": -1.25}))
    (tmp_path / "b.tsv").write_text("id\tseq\tprediction\n0\tACGT\t0.5\n2\tACGA\t-1.25\n")
    (tmp_path / "c.txt").write_text("ACGT\t0.5\nACGA\t7\nACGA\t-1.25\n")
    assert load_predictions(tmp_path / "a.json") == load_predictions(tmp_path / "b.tsv") == {0: 0.5, 2: -1.25}
    assert load_predictions(tmp_path / "c.txt") == {0: 0.5, 1: 7.0, 2: -1.25}


@pytest.mark.parametrize("name, text, where, problem", [
    ("p.tsv", "id\tseq\tprediction\n0\tA\t1\nx7\tA\t2\n", "p.tsv:3", "'x7' is not a test-set position"),
    ("p.tsv", "id\tseq\tprediction\n0\tA\t1\n0\tA\t2\n", "p.tsv:3", "position 0 appears twice"),
    ("p.tsv", "id\tseq\tprediction\n0\tA\tabc\n", "p.tsv:2", "prediction is 'abc', not a number"),
    ("p.tsv", "id\tseq\tprediction\n0\tA\n", "p.tsv:2", "expected 3 tab-separated fields"),
    ("p.json", '{"0": 1.0,\n "1": }', "p.json:2", "not valid JSON"),
    ("p.json", '{"0": NaN}', "p.json", "prediction for '0' is missing"),
])
def test_bad_predictions_name_file_and_line(tmp_path, name, text, where, problem):
    (tmp_path / name).write_text(text)
    with pytest.raises(DreamDataError, match=re.escape(problem)) as info:
        load_predictions(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / where)) and problem in str(info.value)


def test_bad_truth_names_file_and_line(tmp_path, tiny_leaderboard):
    measured = tmp_path / "m.txt"
    measured.write_text("ACGT\t1.0\nACGT\toops\n")
    with pytest.raises(DreamDataError, match=r"m\.txt:2: expression is 'oops', not a number"):
        load_truth(measured)
    measured.write_text("ACGT\t1.0\n")
    (tmp_path / "test_subset_ids").mkdir()
    (tmp_path / "test_subset_ids" / "high_exp_seqs.csv").write_text("tag,position\nt,1\n")
    with pytest.raises(DreamDataError, match=r"high_exp_seqs\.csv:1: needs column\(s\) pos"):
        load_truth(measured)
    with pytest.raises(DreamDataError, match="no such file"):
        load_truth(tmp_path / "absent")


def test_write_submission_round_trip_and_atomicity(tmp_path):
    out = tmp_path / "sub" / "submission.json"
    write_submission(out, np.array([0.25, -1.5, 2.0], dtype=np.float32))
    assert load_predictions(out) == {0: 0.25, 1: -1.5, 2: 2.0}
    with pytest.raises(ValueError, match="position 1 is nan"):
        write_submission(tmp_path / "bad.json", [0.1, float("nan")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(dream_app, name="dream")
    return app


def test_cli_score_json_and_errors(tiny_leaderboard, tmp_path):
    pred = tmp_path / "pred.json"
    write_submission(pred, {k: float(v) for k, v in TINY_PRED.items()})
    runner = CliRunner()
    result = runner.invoke(_app(), ["dream", "score", str(pred), str(tiny_leaderboard), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["subsets"][1]["name"] == "high" and data["subsets"][1]["n"] == 3
    table = runner.invoke(_app(), ["dream", "score", str(pred), str(tiny_leaderboard)])
    assert table.exit_code == 0 and "Pearson score" in table.stdout and "SNV (alt-ref)" in table.stdout
    (tmp_path / "bad.tsv").write_text("id\tseq\tprediction\nzero\tA\t1\n")
    result = runner.invoke(_app(), ["dream", "score", str(tmp_path / "bad.tsv"), str(tiny_leaderboard)])
    assert result.exit_code == 2 and "bad.tsv:2" in result.stderr


def test_cli_predict_writes_submission(tmp_path, monkeypatch):
    from promoterlab import api
    from test_interpret import saved_run

    saved_run(tmp_path / "run")
    seqs = ["ACGTAC", "TTTT", "GGGCCA"]
    test = tmp_path / "test_sequences.txt"
    test.write_text("".join(f"{s}\t0\n" for s in seqs))
    calls = {}

    def fake_iter_predictions(run_dir, path, seq_col=None, id_col=None, batch_size=256, device="cpu",
                              progress=False, precision="auto", interval=None):
        calls["run_dir"], calls["device"], calls["batch_size"] = str(run_dir.path), device, batch_size
        from promoterlab.data.readers import read_sequences
        frame = read_sequences(path)
        yield frame.assign(prediction=[len(s) / 10 for s in frame["seq"]])[["id", "seq", "prediction"]]

    monkeypatch.setattr(api, "iter_predictions", fake_iter_predictions)
    out = tmp_path / "submission.json"
    result = CliRunner().invoke(_app(), ["dream", "predict", str(tmp_path / "run"), "--test", str(test),
                                         "-o", str(out), "--batch-size", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "the DREAM test set has 71103" in result.stderr
    assert json.loads(out.read_text()) == pytest.approx({"0": 0.6, "1": 0.4, "2": 0.6})
    assert calls == {"run_dir": str(tmp_path / "run"), "device": "cpu", "batch_size": 2}
