"""README's chain of commands, each on the previous one's output, for a single run and for the
default output of ``train`` (a 3-model ensemble): train -> predict -> evaluate -> explain ->
variants -> motifs -> marginalize -> dream predict -> load_run -> train --config (resume).
Every step must succeed and write its documented files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import promoterlab
from conftest import invoke
from promoterlab.data.simulate import simulate_library, write_library
from promoterlab.models.ensemble import EnsembleModel

TINY = ("--width", "0.0625", "--epochs", "1", "--batch-size", "64", "--accelerator", "cpu", "--devices", "1",
        "--precision", "32", "--no-progress")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    library = write_library(folder / "library.txt", n=1200, seed=3)
    seqs = simulate_library(6, seed=11)["seq"].tolist()
    (folder / "promoters.fa").write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(seqs)))
    ref, alt = seqs[0], seqs[0][:40] + ("A" if seqs[0][40] != "A" else "C") + seqs[0][41:]
    (folder / "variants.tsv").write_text(f"id\tref\talt\nv1\t{ref}\t{alt}\nv2\t{seqs[1]}\t{seqs[2]}\n")
    (folder / "test_sequences.txt").write_text("".join(f"{s}\t0\n" for s in seqs))
    return folder, library


@pytest.fixture(scope="module", params=["single", "ensemble"])
def trained(request, inputs):
    folder, library = inputs
    out = folder / request.param
    extra = ("--ensemble", "1") if request.param == "single" else ()
    result = invoke("train", library, "--output", out, *TINY, *extra)
    assert result.exit_code == 0, result.output
    return request.param, out, result


def test_train_holds_out_a_test_set_and_reports_it(trained):
    kind, out, result = trained
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test"]
    assert test["source"] == "held-out split" and test["n"] == 240  # a fifth of 1,200 rows (a tenth is under 256)
    assert test["pearson_ci95"][0] <= test["pearson"] <= test["pearson_ci95"][1]
    lines = result.stderr.splitlines()
    assert any("test Pearson" in line for line in lines[-2:]) and any(line.startswith("took ") for line in lines[-2:])
    for name in ("config.yaml", "summary.json", "curves.png", "val_scatter.png", "README.md", "split.npz",
                 "test_predictions.tsv"):
        assert (out / name).is_file(), name
    card = (out / "README.md").read_text()
    assert "test Pearson" in card and "promoterlab predict" in card
    if kind == "ensemble":
        assert summary["n_models"] == 3 and len(summary["members_test_pearson"]) == 3
        assert sorted(p.name for p in out.glob("seed=*")) == ["seed=0", "seed=1", "seed=2"]
        assert "ensemble of 3 models" in card and "sd" in pd.read_csv(out / "test_predictions.tsv", sep="\t")
        assert "training an ensemble of 3 models" in result.stderr
    else:
        assert (out / "model.pt").is_file() and summary["train_size"] == 720  # 1,200 - 240 test - 240 val


def test_the_chain_of_commands_works_on_the_output_of_train(trained, inputs, tmp_path):
    kind, out, _ = trained
    folder, library = inputs
    said = "an ensemble of 3 models" if kind == "ensemble" else "one model"

    result = invoke("predict", out, folder / "promoters.fa", "-o", tmp_path / "pred.tsv")
    assert result.exit_code == 0, result.output
    assert said in result.stderr
    pred = pd.read_csv(tmp_path / "pred.tsv", sep="\t")
    assert len(pred) == 6 and ({"sd", "n_models"} <= set(pred) if kind == "ensemble" else "sd" not in pred)

    result = invoke("evaluate", out, library, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 1200
    result = invoke("evaluate", out, "--split", "test", "--json", "--scatter", tmp_path / "test.png")
    assert result.exit_code == 0, result.output
    held_out = json.loads(result.stdout)
    summary = json.loads((out / "summary.json").read_text())
    assert held_out["n"] == 240  # a fifth of 1,200 rows (a tenth would be under 256)
    assert (tmp_path / "test.png").read_bytes().startswith(b"\x89PNG")
    assert held_out["pearson"] == pytest.approx(summary["test"]["pearson"], abs=1e-3)

    result = invoke("explain", out, folder / "promoters.fa", "-o", tmp_path / "explained", "--max-plots", "2",
                    "--precision", "32", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "explained" / "attributions.npz").is_file()
    assert len(list((tmp_path / "explained").glob("*.png"))) == 2

    result = invoke("variants", out, folder / "variants.tsv", "-o", tmp_path / "effects.tsv", "--no-progress")
    assert result.exit_code == 0, result.output
    effects = pd.read_csv(tmp_path / "effects.tsv", sep="\t")
    assert list(effects["id"]) == ["v1", "v2"] and ("delta_sd" in effects) == (kind == "ensemble")

    result = invoke("motifs", out, folder / "promoters.fa", "-o", tmp_path / "motifs", "--method", "ism",
                    "--precision", "32", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "motifs" / "seqlets.tsv").is_file() and (tmp_path / "motifs" / "motifs.tsv").is_file()

    result = invoke("marginalize", out, "TATAAA", "-o", tmp_path / "tata", "--n-background", "2",
                    "--precision", "32", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tata" / "marginalize.tsv").is_file() and (tmp_path / "tata" / "marginalize.png").is_file()

    result = invoke("dream", "predict", out, "--test", folder / "test_sequences.txt", "-o", tmp_path / "sub.json",
                    "--no-progress")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads((tmp_path / "sub.json").read_text())) == [str(i) for i in range(6)]

    result = invoke("report", out, "-o", tmp_path / "report.md")
    assert result.exit_code == 0, result.output
    assert "test" in (tmp_path / "report.md").read_text().lower()

    model, config = promoterlab.load_run(out)
    assert isinstance(model, EnsembleModel) == (kind == "ensemble")
    values = promoterlab.predict(model, pred["seq"].tolist(), layout=config.data.layout, precision="32")
    np.testing.assert_allclose(values, pred["prediction"], atol=2e-2)  # predict's default precision is auto


def test_train_config_resumes_the_finished_run_without_training_again(trained):
    kind, out, _ = trained
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["ensemble"] == (3 if kind == "ensemble" else 1)
    before = json.loads((out / "summary.json").read_text())
    result = invoke("train", "--config", out / "config.yaml", "--output", out, "--no-progress")
    assert result.exit_code == 0, result.output
    after = json.loads((out / "summary.json").read_text())
    assert after["test"] == before["test"]
