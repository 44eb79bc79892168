"""Every entry point fails cleanly (issue 36): bad configs and specs, paths that are not what they
should be, stale state left by killed processes, wrong DREAM submissions.

Each case asserts the exit code, the one ``error:`` line naming what was found and where, and
that nothing was created or changed. No model is trained here (see test_cli_failures_io.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import assert_one_error, invoke, snapshot
from promoterlab.config import RunConfig
from promoterlab.data.simulate import write_library

BOM = "\ufeff"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return write_library(tmp_path_factory.mktemp("lib") / "lib.txt", n=300, seed=3)


# --- YAML and config errors name the file, the line, the section and the key ------------------------


@pytest.mark.parametrize("text, fragments", [
    ("data: [1, 2\n", ["cfg.yaml:2", "not valid YAML"]),
    ("data: !!python/object/apply:os.system ['touch {marker}']\n",
     ["cfg.yaml:1", "the tag !!python/object/apply:os.system is not allowed"]),
])
def test_a_config_or_spec_that_is_not_plain_yaml_is_one_line(library, tmp_path, text, fragments):
    marker = tmp_path / "executed"
    config = tmp_path / "cfg.yaml"
    config.write_text(text.format(marker=marker))
    before = snapshot(tmp_path)
    assert_one_error(invoke("train", library, "--config", config, "--output", tmp_path / "run"), 2, *fragments)
    assert_one_error(invoke("sweep", config, "--output", tmp_path / "runs"), 2, *fragments)
    assert_one_error(invoke("tune", config, "--trials", "1", "--output", tmp_path / "tune"), 2, *fragments)
    assert not marker.exists() and snapshot(tmp_path) == before


@pytest.mark.parametrize("text, fragments", [
    ("data: lib.txt\n", ["data must be a mapping", "data: {path: lib.txt}", "not the text 'lib.txt'"]),
    ("data: {bogus_key: 3}\n", ["data has no setting 'bogus_key'", "the data settings are", "seq_col"]),
    ("data: {seq_coll: seq}\n", ["data has no setting 'seq_coll'", "did you mean 'seq_col'?"]),
    ("epochs: three\n", ["unknown top-level key 'epochs'", "belongs in the train section"]),
    ("train: {epochs: three}\n", ["train.epochs must be an integer >= 1 or auto, got 'three'"]),
    ("model: {width: wide}\n", ["model.width must be a number, not the text 'wide'"]),
    ("data: {drop_missing: maybe}\n", ["data.drop_missing must be true or false"]),
    ("seed: abc\n", ["seed must be an integer"]),
    ("- data\n- train\n", ["a config is a mapping"]),
])
def test_config_errors_name_the_key_its_section_and_the_file(library, tmp_path, text, fragments):
    config = tmp_path / "cfg.yaml"
    config.write_text(text)
    before = snapshot(tmp_path)
    line = assert_one_error(invoke("train", library, "--config", config, "--output", tmp_path / "run"), 2,
                            str(config), *fragments)
    assert "__init__" not in line and "argument after **" not in line
    assert snapshot(tmp_path) == before


def test_config_checks_keep_yaml_numbers_for_text_fields_and_name_keys_in_the_api():
    config = RunConfig.from_dict({"train": {"precision": 32, "devices": 1}, "data": {"store": False}})
    assert (config.train.precision, config.data.store) == ("32", "off")
    with pytest.raises(ValueError, match=r"^train has no setting 'max_epochs'; did you mean 'epochs'\?$"):
        RunConfig.from_dict({"train": {"max_epochs": 3}})
    with pytest.raises(ValueError, match=r"^x\.yaml: model has no setting 'hidden'"):
        RunConfig.from_dict({"model": {"hidden": 3}}, source="x.yaml")


def test_a_spec_names_an_unknown_base_key_and_a_list_where_a_mapping_belongs(library, tmp_path):
    spec = tmp_path / "spec.yaml"
    for text, fragment in ((f"base: {{nonsense: 1, data: {{path: {library}}}}}\naxes: {{seed: [0]}}\n",
                            "base: unknown top-level key 'nonsense'"),
                           ("base: {nonsense: 1}\naxes: {seed: [0]}\n", "base: unknown top-level key 'nonsense'"),
                           (f"base: {{data: {{path: {library}}}}}\naxes: [seed]\n", "axes must be a mapping"),
                           (f"base: {{data: {{path: {library}}}}}\naxes: {{seed: [0]}}\ntest: {{pth: t.txt}}\n",
                            "test has no setting 'pth'")):
        spec.write_text(text)
        before = snapshot(tmp_path)
        assert_one_error(invoke("sweep", spec, "--output", tmp_path / "runs"), 2, str(spec), fragment)
        assert snapshot(tmp_path) == before


# --- paths: what was found, in words, with the option or variable that named it ----------------------


def test_path_errors_say_what_was_found_and_name_the_option(library, tmp_path, monkeypatch):
    folder, afile = tmp_path / "adir", tmp_path / "afile"
    folder.mkdir()
    afile.write_text("x")
    before = snapshot(tmp_path)
    assert_one_error(invoke("evaluate", tmp_path / "run", folder), 2, f"{folder}: is a directory")
    assert_one_error(invoke("predict", tmp_path / "run", folder, "-o", tmp_path / "p.tsv"), 2, "is a directory")
    assert_one_error(invoke("train", library, "--output", afile / "run"), 2, f"-o/--output {afile / 'run'}",
                     f"{afile} is a file, not a directory")
    assert_one_error(invoke("train", library, "--config", folder, "--output", tmp_path / "run"), 2,
                     f"--config {folder}: is a directory")
    assert_one_error(invoke("data", "encode", library, "-o", afile / "store"), 2, "--output",
                     f"{afile} is a file, not a directory")
    assert_one_error(invoke("explain", tmp_path / "run", library, "--output", afile), 2, "--output",
                     "exists and is not a directory")
    assert_one_error(invoke("marginalize", tmp_path / "run", "TATA", "--output", afile / "m"), 2, "--output",
                     "is a file, not a directory")
    assert_one_error(invoke("train", library, "--store", tmp_path / "nostore", "--output", tmp_path / "run"), 2,
                     f"--store {tmp_path / 'nostore'}: directory not found")
    assert_one_error(invoke("data", "fetch", "dream2022", "--dir", afile / "x", "--no-progress"), 2,
                     f"--dir {afile / 'x'}: {afile} is a file, not a directory")
    monkeypatch.setenv("PROMOTERLAB_DATA", str(afile / "data"))
    assert_one_error(invoke("data", "fetch", "dream2022", "--no-progress"), 2,
                     f"PROMOTERLAB_DATA {afile / 'data' / 'dream2022'}: {afile} is a file, not a directory")
    assert_one_error(invoke("dream", "predict", tmp_path / "run", "-o", tmp_path / "s.json"), 2,
                     "the test file in PROMOTERLAB_DATA", "test file not found")
    monkeypatch.setenv("PROMOTERLAB_STORE_DIR", str(afile / "stores"))
    assert_one_error(invoke("train", library, "--output", tmp_path / "run", "--store", "on", "--ensemble", "1"), 2,
                     f"PROMOTERLAB_STORE_DIR={afile / 'stores'}", f"{afile} is a file, not a directory")
    assert snapshot(tmp_path) == before


def test_a_store_built_from_another_file_names_that_file(library, tmp_path):
    other = write_library(tmp_path / "other.txt", n=300, seed=4)
    assert invoke("data", "encode", library, "-o", tmp_path / "st1").exit_code == 0
    before = snapshot(tmp_path)
    line = assert_one_error(invoke("train", other, "--store", tmp_path / "st1", "--output", tmp_path / "run",
                                   "--ensemble", "1"), 2, str(tmp_path / "st1"),
                            f"built from another file, {library.resolve()}, not {other}")
    assert "changed since" not in line and snapshot(tmp_path) == before


# --- partial states: killed processes leave nothing that blocks or lingers ------------------------------


def test_the_next_encode_removes_the_temp_folder_of_a_killed_one(library, tmp_path):
    from promoterlab.data import store_build

    code = ("import sys, time; from promoterlab.data import store_build as sb\n"
            "sb._build = lambda *a, **k: (print('building', flush=True), time.sleep(120))\n"
            "sb.build_store(sys.argv[1], sys.argv[2])\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(library), str(tmp_path / "stk")],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "building"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    killed = list(tmp_path.glob(".stk.*.tmp"))
    assert len(killed) == 1 and f".stk.{child.pid}@" in killed[0].name
    old = tmp_path / ".stk.123.0123abcd.tmp"  # a name without a host, silent for a day
    fresh = tmp_path / f".stk.{os.getpid()}@{store_build._HOST}.89abcdef.tmp"  # a live build
    for folder in (old, fresh):
        folder.mkdir()
    os.utime(old, (time.time() - 86_400, time.time() - 86_400))
    result = invoke("data", "encode", library, "-o", tmp_path / "stk")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".stk")) == [fresh.name]


def test_a_killed_sweep_run_leaves_a_lock_that_does_not_block_a_rerun(tmp_path):
    from promoterlab.experiments.sweep import _locked

    code = ("import sys, time; from pathlib import Path; from promoterlab.experiments.sweep import _locked\n"
            "with _locked(Path(sys.argv[1])) as got:\n    print(got, flush=True); time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "True"
    with _locked(tmp_path) as acquired:
        assert acquired is False  # held by the child
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert (tmp_path / ".lock").exists()  # left behind, but not held by anyone
    with _locked(tmp_path) as acquired:
        assert acquired is True


@pytest.mark.parametrize("storage, fragment", [
    ("sqlite:////nonexistent-folder/x.db", "directory /nonexistent-folder does not exist"),
    ("postgresql://user:secret@127.0.0.1:1/db", "cannot open it"),
])
def test_tune_with_a_storage_it_cannot_open_leaves_no_folder(library, tmp_path, storage, fragment):
    if storage.startswith("postgresql"):
        pytest.importorskip("psycopg")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {{data: {{path: {library}}}}}\naxes: {{seed: [0]}}\n"
                    "search: {model.width: {choices: [0.0625]}}\n")
    before = snapshot(tmp_path)
    line = assert_one_error(invoke("tune", spec, "--trials", "1", "--output", tmp_path / "tune", "--storage", storage),
                            2, "storage", fragment)
    assert "secret" not in line and snapshot(tmp_path) == before


# --- readers accept a byte-order mark ----------------------------------------------------------------


def test_every_reader_accepts_a_utf8_byte_order_mark(library, tmp_path):
    from promoterlab.data.readers import read_seq_values, read_sequences, read_table
    from promoterlab.evaluation.dream import load_predictions
    from promoterlab.experiments.spec import load_spec
    from promoterlab.interpret.variants import iter_variant_pairs

    rows = library.read_text().splitlines()[:5]
    seqs = [row.split("\t")[0] for row in rows]
    texts = {"dream.txt": "\n".join(rows) + "\n", "table.tsv": "seq\texpr\n" + "\n".join(rows) + "\n",
             "in.fa": "".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)),
             "pairs.tsv": "id\tref\talt\n" + "".join(f"v{i}\t{s}\t{s[::-1]}\n" for i, s in enumerate(seqs)),
             "sub.json": json.dumps({"0": 1.5, "1": 2.5}), "spec.yaml": f"base: {{data: {{path: {library}}}}}\n"
                                                                        "axes: {seed: [0]}\n"}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        (tmp_path / f"bom-{name}").write_text(BOM + text)

    def read_all(name: str) -> object:
        path = tmp_path / name
        if name.endswith("pairs.tsv"):
            return [chunk.drop(columns="line").to_dict() for chunk in iter_variant_pairs(path)]
        if name.endswith(".json"):
            return load_predictions(path)
        if name.endswith(".yaml"):
            return {**load_spec(path).to_dict(), "name": None}
        table = read_sequences(path) if name.endswith(".fa") else read_table(path)
        return table.to_dict()

    for name in texts:
        assert read_all(f"bom-{name}") == read_all(name), name
    assert read_seq_values(tmp_path / "bom-dream.txt").equals(read_seq_values(tmp_path / "dream.txt"))


def test_repeated_ids_are_found_across_chunks_with_their_first_line(tmp_path, capsys):
    from promoterlab.data.readers import DataError, iter_sequences

    names = ["a", "b", "c", "d", "e", "b", "f", "a", "g", "g"]  # 3 repeats: lines 11 (b), 15 (a), 19 (g)
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{name}\nACGT\n" for name in names))
    for chunk_rows in (None, 1, 2, 3):
        assert sum(len(chunk) for chunk in iter_sequences(fasta, chunk_rows=chunk_rows)) == 10
        warning = capsys.readouterr().err.strip()
        assert warning == (f"warning: {fasta}:11: id 'b' repeats the id of line 3; 3 row(s) repeat an earlier "
                           "id, so the output has several rows with one id (--strict refuses such files)")
        with pytest.raises(DataError, match=r"in\.fa:11: id 'b' repeats the id of line 3"):
            list(iter_sequences(fasta, chunk_rows=chunk_rows, strict=True))
    table = tmp_path / "in.tsv"
    table.write_text("name\tseq\n" + "".join(f"{name}\tACGT\n" for name in "xyx"))
    assert len(list(iter_sequences(table, id_col="name"))) == 1
    assert "in.tsv:4: id 'x' repeats the id of line 2; 1 row(s)" in capsys.readouterr().err
    assert len(list(iter_sequences(table))) == 1 and capsys.readouterr().err == ""  # ids are row numbers


# --- DREAM: a wrong submission is an error, not a silent score --------------------------------------


@pytest.fixture
def leaderboard(tmp_path) -> Path:
    folder = tmp_path / "public_leaderboard_ids"
    folder.mkdir()
    (folder / "high_exp_indices.json").write_text(json.dumps({"0": 1.0, "1": 2.0, "2": 3.0}))
    (folder / "low_exp_indices.json").write_text(json.dumps({"3": 1.0, "4": 3.0, "5": 2.0}))
    return folder


def test_dream_score_refuses_unknown_positions_and_a_submission_with_nothing_to_score(leaderboard, tmp_path):
    good = {str(p): float(p % 4) for p in range(6)}
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert invoke("dream", "score", tmp_path / "good.json", leaderboard, "--json").exit_code == 0
    unknown = {**good, **{str(p): 1.0 for p in (71_103, 71_104, 80_000, 90_000, 99_999, 123_456)}}
    (tmp_path / "unknown.json").write_text(json.dumps(unknown))
    assert_one_error(invoke("dream", "score", tmp_path / "unknown.json", leaderboard), 2,
                     str(tmp_path / "unknown.json"), "6 of its 12 positions are not in the test set of 71,103",
                     "71103, 71104, 80000, 90000, 99999, ...")
    (tmp_path / "none.json").write_text(json.dumps({"10": 1.0, "11": 2.0}))
    result = invoke("dream", "score", tmp_path / "none.json", leaderboard, "--json")
    assert_one_error(result, 2, "none of its 2 predictions", "nothing to score")
    assert result.stdout == ""


def test_dream_predict_refuses_a_test_file_whose_ids_are_not_positions(tmp_path, monkeypatch):
    from promoterlab import api

    def fake_predictions(run_dir, path, *args, **kwargs):
        from promoterlab.data.readers import read_sequences

        frame = read_sequences(path)
        yield frame.assign(prediction=1.0)[["id", "seq", "prediction"]]

    monkeypatch.setattr(api, "iter_predictions", fake_predictions)
    from test_interpret import saved_run

    saved_run(tmp_path / "run")
    for name, text, fragment in (("names.fa", ">a\nACGT\n>b\nACGA\n", "id 'a' is not a test-set position"),
                                 ("twice.fa", ">0\nACGT\n>0\nACGA\n", "1 position(s) appear twice")):
        (tmp_path / name).write_text(text)
        before = snapshot(tmp_path)
        result = invoke("dream", "predict", tmp_path / "run", "--test", tmp_path / name, "-o",
                        tmp_path / "sub.json", "--no-progress")
        assert result.exit_code == 2 and result.stderr.splitlines()[-1].startswith("error: --test")
        assert fragment in result.stderr and snapshot(tmp_path) == before


# --- marginalize: the backgrounds are predicted once, the positions in shared batches ------------------


def test_marginalize_predicts_the_backgrounds_once_and_positions_in_shared_batches():
    from promoterlab.interpret.marginalize import marginalize_positions

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.batches = []

        def forward(self, x):
            self.batches.append(len(x))
            return x[:, 0].sum(dim=1, keepdim=True)  # the A count

    X = torch.nn.functional.one_hot(torch.randint(1, 4, (2, 40)), 4).permute(0, 2, 1).float()  # no A
    model = Counting()
    table = marginalize_positions(model, X, "AAA", range(0, 38), batch_size=256)
    assert len(table) == 76
    assert (table.loc[table["strand"] == "+", "mean"] == 3.0).all()  # AAA adds three As
    assert (table.loc[table["strand"] == "-", "mean"] == 0.0).all()  # TTT adds none
    assert model.batches == [2, 152]  # backgrounds once, then 76 sites x 2 backgrounds in one batch
