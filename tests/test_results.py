"""Aggregated results, paired comparisons, figures and reports of synthetic run folders."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.experiments.bootstrap import pearson_weighted
from promoterlab.experiments.figures import write_figures
from promoterlab.experiments.progress import sweep_progress
from promoterlab.experiments.report import convergence_table, stopping_check, write_report
from promoterlab.experiments.results import (collect_runs, collect_sweeps, fit_label, paired_comparison, seed_deltas,
                                             summarise, write_tables)
from promoterlab.models import model_config

N_TEST = 400
# Final-epoch (train, val) Pearson per model; the validation Pearson rises by 0.01 per seed.
# legnet: gap 0.25, overfit; legnet-dilated: gap 0.01 and still improving, underfit; legnet-lstm: gap 0.05.
FINAL = {"legnet": (0.95, 0.70), "legnet-dilated": (0.80, 0.79), "legnet-lstm": (0.80, 0.75)}
# Test predictions: target + noise of this SD (dilated clearly better, lstm as good as legnet).
NOISE = {"legnet": 1.0, "legnet-dilated": 0.3, "legnet-lstm": 1.0}


def write_run(run_dir: Path, model: str, train_size: int, seed: int, *, axes: bool = True, test: bool = True,
              finished: bool = True, epochs: int = 4, max_epochs: int | str = "auto",
              dream: tuple[float, float] | None = None) -> None:
    """A synthetic run folder; with an integer ``max_epochs`` it trained with early stopping
    (patience 3) and stopped early unless ``epochs == max_epochs``."""
    run_dir.mkdir(parents=True)
    config = RunConfig(data=DataConfig(path="library.txt", train_size=train_size, val_size=200),
                       model=model_config(model, width=0.125), seed=seed,
                       train=TrainConfig(epochs=max_epochs, patience=None if max_epochs == "auto" else 3))
    config.save(run_dir / "config.yaml")
    train_final, val_final = FINAL[model]
    val_final += 0.01 * seed
    ramp = np.linspace(0.5, 1.0, epochs)
    val = val_final * ramp
    if model == "legnet":  # peaks at epoch 2, then declines
        val = np.array([0.6, val_final + 0.02, val_final + 0.01, *[val_final] * (epochs - 3)])[:epochs]
    history = pd.DataFrame({
        "epoch": np.arange(1, epochs + 1), "train_loss": 1.0 - 0.5 * ramp, "train_pearson": train_final * ramp,
        "val_loss": 1.1 - 0.4 * ramp, "val_pearson": val, "val_spearman": val - 0.02, "lr": 0.001,
        "seconds": 2.0})
    history.to_csv(run_dir / "metrics.csv", index=False)
    if axes:
        (run_dir / "axes.json").write_text(json.dumps({"model": model, "train_size": train_size, "seed": seed}))
    if not finished:
        return
    best = int(np.argmax(val))
    summary = {"best_val_pearson": float(val[best]), "best_val_spearman": float(val[best] - 0.02),
               "best_epoch": best + 1, "epochs": epochs, "train_seconds": 10.0 + seed, "params": 1000,
               "train_size": train_size, "val_size": 200, "batch_size": 64, "seed": seed,
               "stopped_early": max_epochs != "auto" and epochs < max_epochs}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if test:
        target = np.random.default_rng(99).normal(size=N_TEST)
        noise = np.random.default_rng([seed, train_size, len(model)]).normal(scale=NOISE[model], size=N_TEST)
        frame = pd.DataFrame({"index": range(N_TEST), "target": target, "prediction": target + noise})
        frame.to_csv(run_dir / "test_predictions.tsv", sep="\t", index=False)
        r = stats.pearsonr(frame["prediction"], frame["target"]).statistic
        (run_dir / "test_metrics.json").write_text(json.dumps({"pearson": r, "spearman": r, "mse": 1.0, "n": N_TEST}))
    if dream:
        (run_dir / "dream_score.json").write_text(json.dumps({"pearson_score": dream[0], "spearman_score": dream[1]}))


def write_sweep(root: Path, models: list[str], sizes: list[int], seeds: list[int], **options) -> Path:
    for model in models:
        for size in sizes:
            for seed in seeds:
                write_run(root / f"model={model}__train_size={size}__seed={seed}", model, size, seed, **options)
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("sweep"), list(FINAL), [100, 200], [0, 1, 2])


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    """Few runs, for the figures and the report (plotting is the slow part)."""
    return write_sweep(tmp_path_factory.mktemp("small"), ["legnet", "legnet-dilated"], [100, 200], [0, 1])


def test_collect_runs_reads_every_finished_run(sweep):
    runs = collect_runs(sweep)
    assert len(runs) == 18
    row = runs[(runs["model"] == "legnet") & (runs["train_size"] == 200) & (runs["seed"] == 1)].iloc[0]
    assert row["best_val_pearson"] == pytest.approx(0.73) and row["best_epoch"] == 2 and row["epochs"] == 4
    assert row["pearson_gap"] == pytest.approx(0.95 - 0.71)
    assert row["loss_gap"] == pytest.approx(0.5 - 0.7)
    assert 0.6 < row["test_pearson"] < 0.8
    assert list(runs.columns[:5]) == ["run", "run_dir", "model", "train_size", "seed"]


def test_summary_statistics_and_fit_labels(sweep):
    summary = summarise(collect_runs(sweep))
    assert len(summary) == 6
    assert summary[["model", "train_size"]].values.tolist() == [
        ["legnet", 100], ["legnet", 200], ["legnet-dilated", 100], ["legnet-dilated", 200],
        ["legnet-lstm", 100], ["legnet-lstm", 200]]
    row = summary[(summary["model"] == "legnet-lstm") & (summary["train_size"] == 100)].iloc[0]
    values = [0.75, 0.76, 0.77]
    sd = math.sqrt(sum((v - 0.76) ** 2 for v in values) / 2)
    assert row["n_seeds"] == 3
    assert row["val_pearson_mean"] == pytest.approx(0.76)
    assert row["val_pearson_sd"] == pytest.approx(0.01)
    assert row["val_pearson_ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert row["pearson_gap_mean"] == pytest.approx(0.80 - 0.76)
    assert row["train_seconds_mean"] == pytest.approx(11.0)
    assert not math.isnan(row["test_pearson_ci95"])
    labels = summary.groupby("model")["fit"].unique().map(list).to_dict()
    assert labels == {"legnet": ["overfit"], "legnet-dilated": ["underfit"], "legnet-lstm": ["balanced"]}

    single = summarise(collect_runs(sweep).query("seed == 0"))
    assert single["n_seeds"].eq(1).all() and single["val_pearson_sd"].isna().all()
    assert single["val_pearson_ci95"].isna().all()


def test_fit_rule_edges():
    assert fit_label(0.11, 1.0) == "overfit"
    assert fit_label(0.01, 1.0) == "underfit"
    assert fit_label(0.01, 0.0) == "balanced"
    assert fit_label(0.05, 1.0) == "balanced"


def test_paired_bootstrap_finds_the_better_model_only(sweep):
    runs = collect_runs(sweep)
    comparison = paired_comparison(runs, n_boot=500)
    assert len(comparison) == 4 and set(comparison["basis"]) == {"test bootstrap"}
    assert comparison["n_pairs"].eq(3).all()
    verdicts = comparison.groupby("model")["verdict"].unique().map(list).to_dict()
    assert verdicts == {"legnet-dilated": ["better"], "legnet-lstm": ["no difference"]}

    row = comparison[(comparison["model"] == "legnet-dilated") & (comparison["train_size"] == 100)].iloc[0]

    def r(model: str, seed: int) -> float:
        frame = pd.read_csv(sweep / f"model={model}__train_size=100__seed={seed}" / "test_predictions.tsv", sep="\t")
        return stats.pearsonr(frame["prediction"], frame["target"]).statistic

    diffs = [r("legnet-dilated", seed) - r("legnet", seed) for seed in range(3)]
    assert row["delta"] == pytest.approx(np.mean(diffs))
    assert row["ci_low"] < row["delta"] < row["ci_high"] and row["ci_low"] > 0.1
    assert row["seeds_better"] == "3/3"


def test_weighted_pearson_equals_pearson_of_a_resample():
    rng = np.random.default_rng(0)
    target, preds = rng.normal(size=50), rng.normal(size=(50, 3))
    picks = rng.integers(0, 50, size=50)
    counts = np.bincount(picks, minlength=50)[None, :].astype(float)
    expected = [stats.pearsonr(preds[picks, k], target[picks]).statistic for k in range(3)]
    np.testing.assert_allclose(pearson_weighted(counts, preds, target)[0], expected)


def test_comparison_without_test_predictions_uses_val_seeds(tmp_path):
    write_sweep(tmp_path, ["legnet", "legnet-lstm"], [100], [0, 1, 2], test=False)
    runs = collect_runs(tmp_path)
    row = paired_comparison(runs).iloc[0]
    # Every seed's difference is 0.75 - 0.72 = 0.03, so the interval has no width.
    assert row["basis"] == "val seeds" and row["delta"] == pytest.approx(0.03)
    assert row["ci_low"] == pytest.approx(0.03) and row["verdict"] == "better"
    assert "test_pearson_mean" not in summarise(runs)
    empty = paired_comparison(runs, baseline="legnet-embed")
    assert empty.empty and {"model", "train_size", "delta", "verdict", "basis"} <= set(empty.columns)


def test_unfinished_runs_are_skipped_and_axes_fall_back_to_the_config(tmp_path):
    write_run(tmp_path / "sweep" / "a", "legnet", 100, 3, axes=False, test=False)
    write_run(tmp_path / "sweep" / "b", "legnet-lstm", 100, 3, axes=False, test=False, finished=False)
    runs = collect_runs(tmp_path)
    assert runs["run"].tolist() == ["sweep/a"]
    assert runs[["model", "train_size", "seed"]].values.tolist() == [["legnet", 100, 3]]
    assert math.isnan(runs["test_pearson"].iloc[0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no finished run"):
        collect_runs(tmp_path / "empty")
    with pytest.raises(ValueError, match="no finished run"):
        collect_runs(tmp_path / "sweep" / "b")


def test_tables_are_written_as_csv_and_markdown(sweep, tmp_path):
    runs = collect_runs(sweep)
    summary, comparison = summarise(runs), paired_comparison(runs, n_boot=200)
    paths = write_tables(summary, comparison, tmp_path)
    assert sorted(p.name for p in paths) == ["comparison.csv", "comparison.md", "summary.csv", "summary.md"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "summary.csv"), summary, check_dtype=False)
    lines = (tmp_path / "summary.md").read_text().splitlines()
    assert len(lines) == 2 + len(summary) and re.sub(" +", " ", lines[2]).startswith("| legnet | 100 | 3 | 0.7300 |")
    align = lines[1].strip("|").split("|")  # model (text) left-aligned, train_size and n_seeds right-aligned
    assert align[0].startswith(":-") and align[1].endswith("-:") and align[2].endswith("-:")
    assert len({len(line) for line in lines}) == 1  # columns padded to one width
    assert "nan" not in (tmp_path / "summary.md").read_text()


def test_figures_are_written_as_png_and_svg(small_sweep, tmp_path):
    runs = collect_runs(small_sweep)
    paths = write_figures(runs, summarise(runs), tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    for stem in ["size_curve_val", "size_curve_test", "models_bar_val", "models_bar_test",
                 "overlay_model__train_size=100", "overlay_train_size__model=legnet-dilated", "runs_legnet",
                 "scatter_legnet", "scatter_legnet-dilated", "curves/model=legnet__train_size=100__seed=0"]:
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
    for path in paths:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert matplotlib.image.imread(path).ndim == 3
    without_curves = write_figures(runs, summarise(runs), tmp_path / "lean", run_curves=False)
    assert len(without_curves) == len(paths) - 2 * len(runs) and not (tmp_path / "lean" / "curves").exists()


def test_html_report_is_self_contained(small_sweep, tmp_path):
    html_path = write_report(small_sweep, tmp_path / "html" / "report.html")
    text = html_path.read_text()
    assert "data:image/png;base64," in text and "<table" in text
    assert "<td>legnet-dilated</td>" in text and "<td>underfit</td>" in text and "<td>better</td>" in text
    assert str(small_sweep) in text and "overfit: final train" in text
    assert (tmp_path / "html" / "summary.csv").exists() and (tmp_path / "html" / "comparison.md").exists()
    assert not list((tmp_path / "html").glob("*_figures"))


def test_markdown_report_links_its_figures(tmp_path):
    sweep = write_sweep(tmp_path / "runs", ["legnet", "legnet-dilated"], [100], [0])
    md_path = write_report(sweep, tmp_path / "md" / "report.md")
    text = md_path.read_text()
    squeezed = re.sub(" +", " ", text)
    assert "| legnet-dilated | 100 | 1 |" in squeezed and "| legnet-dilated | legnet | 1 |" in squeezed
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"report_figures/models_bar_val.png", "report_figures/scatter_legnet-dilated.png"} <= set(links)
    assert all((md_path.parent / link).is_file() for link in links)
    assert (md_path.parent / "report_figures" / "models_bar_val.svg").stat().st_size > 0
    assert (md_path.parent / "summary.md").exists()
    with pytest.raises(ValueError, match=".html or .md"):
        write_report(sweep, tmp_path / "report.pdf")


def test_two_sweeps_in_one_folder_are_refused(tmp_path):
    write_sweep(tmp_path / "small", ["legnet"], [100], [0])
    write_sweep(tmp_path / "full", ["legnet"], [100], [0])
    with pytest.raises(ValueError, match="same axis values and seed"):
        collect_runs(tmp_path)
    assert len(collect_runs(tmp_path / "full")) == 1


def test_model_axis_compares_the_values_of_any_axis(tmp_path):
    from typer.testing import CliRunner

    from promoterlab.cli import app

    # rho 0.2 runs get the dilated model's accurate test predictions, rho 0.0 the noisy legnet ones.
    for rho, model in ((0.0, "legnet"), (0.2, "legnet-dilated")):
        for seed in (0, 1):
            run_dir = tmp_path / f"model.rho={rho}__seed={seed}"
            write_run(run_dir, model, 100, seed)
            (run_dir / "axes.json").write_text(json.dumps({"model.rho": rho, "seed": seed}))
    comparison = paired_comparison(collect_runs(tmp_path), baseline="0", model_axis="model.rho")
    assert comparison[["model.rho", "baseline", "n_pairs", "verdict"]].values.tolist() == [[0.2, 0.0, 2, "better"]]
    result = CliRunner().invoke(app, ["results", str(tmp_path), "--model-axis", "model.rho", "--baseline", "0.0"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "comparison.csv")["verdict"].tolist() == ["better"]
    result = CliRunner().invoke(app, ["results", str(tmp_path), "--model-axis", "rho"])
    assert result.exit_code == 2 and "no axis 'rho'" in result.output


def test_convergence_is_recorded_per_run_and_cap_hits_are_counted(tmp_path):
    # legnet: seed 0 trained all 10 epochs (hit the cap), seeds 1-2 stopped early; lstm never hit it.
    for model, epochs_by_seed in (("legnet", (10, 6, 7)), ("legnet-lstm", (5, 8, 9))):
        for seed, epochs in enumerate(epochs_by_seed):
            write_run(tmp_path / f"model={model}__seed={seed}", model, 100, seed, epochs=epochs, max_epochs=10,
                      test=False)
    runs = collect_runs(tmp_path)
    legnet = runs[runs["model"] == "legnet"].set_index("seed")
    assert legnet["epochs"].tolist() == [10, 6, 7] and legnet["max_epochs"].tolist() == [10.0] * 3
    assert legnet["hit_cap"].tolist() == [True, False, False]
    assert legnet["best_epoch"].tolist() == [2, 2, 2]  # legnet's synthetic validation peaks at epoch 2
    summary = summarise(runs).set_index("model")
    assert summary.loc["legnet", "cap_hits"] == 1 and summary.loc["legnet-lstm", "cap_hits"] == 0
    assert summary.loc["legnet", "epochs_mean"] == pytest.approx(23 / 3)
    assert summary.loc["legnet-lstm", "best_epoch_mean"] == pytest.approx(22 / 3)  # still rising: best = last
    assert summary.loc["legnet", "seconds_per_epoch_mean"] == pytest.approx(np.mean([10 / 10, 11 / 6, 12 / 7]))
    table = convergence_table(runs).set_index("model")
    assert table.loc["legnet", "best_epochs"] == "2, 2, 2" and table.loc["legnet", "epochs"] == "10, 6, 7"
    assert table.loc["legnet", "max_epochs"] == 10
    assert table.loc["legnet", "cap_hits"] == "1/3" and table.loc["legnet-lstm", "cap_hits"] == "0/3"
    assert "plateau_epochs" not in table  # no plateau runs


def test_plateau_runs_record_where_validation_stopped_improving(tmp_path):
    # seed 0: plateau after epoch 5, cool-down epochs 6-9; seed 1: the cap of 10 began its cool-down
    for seed, cooldown in enumerate(({"first_epoch": 6, "epochs": 4, "reason": "plateau"},
                                     {"first_epoch": 7, "epochs": 4, "reason": "cap"})):
        run_dir = tmp_path / f"seed={seed}"
        write_run(run_dir, "legnet", 100, seed, test=False, epochs=9 + seed, max_epochs=10)
        summary = json.loads((run_dir / "summary.json").read_text())
        (run_dir / "summary.json").write_text(json.dumps({**summary, "cooldown": cooldown}))
    runs = collect_runs(tmp_path).set_index("seed")
    assert runs.loc[0, "plateau_epoch"] == 5 and math.isnan(runs.loc[1, "plateau_epoch"])
    assert runs["hit_cap"].tolist() == [False, True]
    table = convergence_table(collect_runs(tmp_path))
    assert table.loc[0, "plateau_epochs"] == "5, -" and table.loc[0, "cap_hits"] == "1/2"


def test_cap_of_runs_without_early_stopping_information(tmp_path):
    write_run(tmp_path / "a", "legnet", 100, 0, test=False, epochs=4, max_epochs=4)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    del summary["stopped_early"]  # written before the key existed: the configured epochs decide
    (tmp_path / "a" / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path / "b", "legnet", 200, 0, test=False, epochs=4)  # epochs "auto", no key: unknown
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    del summary["stopped_early"]
    (tmp_path / "b" / "summary.json").write_text(json.dumps(summary))
    runs = collect_runs(tmp_path).set_index("train_size")
    assert runs.loc[100, "hit_cap"] is True or runs.loc[100, "hit_cap"] == True  # noqa: E712
    assert runs.loc[200, "hit_cap"] is None and math.isnan(runs.loc[200, "max_epochs"])


def test_sweeps_of_two_datasets_are_compared_per_dataset(tmp_path):
    write_sweep(tmp_path / "native", ["legnet", "legnet-dilated"], [100, 200], [0, 1])
    write_sweep(tmp_path / "dream", ["legnet", "legnet-dilated"], [100], [0, 1], dream=(0.3, 0.5))
    with pytest.raises(ValueError, match="same axis values and seed"):
        collect_runs(tmp_path)
    runs = collect_sweeps({"native": tmp_path / "native", "DREAM": tmp_path / "dream"})
    assert list(runs.columns[:5]) == ["run", "run_dir", "dataset", "model", "train_size"]
    assert runs.groupby("dataset").size().to_dict() == {"DREAM": 4, "native": 8}
    assert "native/model=legnet__train_size=100__seed=0" in set(runs["run"])
    assert "DREAM/model=legnet__train_size=100__seed=0" in set(runs["run"])
    assert runs.loc[runs["dataset"] == "native", "dream_pearson_score"].isna().all()
    comparison = paired_comparison(runs, n_boot=200)
    assert comparison[["dataset", "train_size", "model"]].values.tolist() == [
        ["DREAM", 100, "legnet-dilated"], ["native", 100, "legnet-dilated"], ["native", 200, "legnet-dilated"]]
    summary = summarise(runs)
    assert len(summary) == 6 and summary.loc[summary["dataset"] == "DREAM", "dream_pearson_score_mean"].eq(0.3).all()
    with pytest.raises(ValueError, match="no sweep folders"):
        collect_sweeps({})
    with pytest.raises(ValueError, match="already has a column 'model'"):
        collect_sweeps({"native": tmp_path / "native"}, label="model")


def test_seed_deltas_pair_a_per_run_score_by_seed(tmp_path):
    write_sweep(tmp_path, ["legnet", "legnet-dilated", "legnet-lstm"], [100], [0, 1, 2], test=False)
    runs = collect_runs(tmp_path)
    offsets = {"legnet": 0.0, "legnet-dilated": 0.05, "legnet-lstm": -0.01}
    runs["dream_pearson_score"] = [0.3 + offsets[m] + 0.01 * s + (0.02 if m == "legnet-lstm" and s == 2 else 0)
                                   for m, s in zip(runs["model"], runs["seed"])]
    deltas = seed_deltas(runs, "dream_pearson_score").set_index("model")
    assert deltas.loc["legnet-dilated", "delta"] == pytest.approx(0.05)
    assert deltas.loc["legnet-dilated", "verdict"] == "better" and deltas.loc["legnet-dilated", "seeds_better"] == "3/3"
    diffs = np.array([-0.01, -0.01, 0.01])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    assert deltas.loc["legnet-lstm", "delta"] == pytest.approx(diffs.mean())
    assert deltas.loc["legnet-lstm", "ci_high"] == pytest.approx(diffs.mean() + half)
    assert deltas.loc["legnet-lstm", "seeds_better"] == "1/3"
    assert deltas.loc["legnet-lstm", "verdict"] == "no difference"
    assert set(deltas["basis"]) == {"seeds"} and set(deltas["metric"]) == {"dream_pearson_score"}
    assert seed_deltas(runs, "no_such_column").empty


def write_spec_yaml(folder: Path, axes: dict, test: dict | None = None) -> None:
    """The resolved spec a sweep writes into its folder (what the progress table reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(json.dumps({"name": "toy", "axes": axes, **({"test": test} if test else {})}))


def test_sweep_progress_names_what_is_missing(tmp_path):
    write_spec_yaml(tmp_path, {"model": ["legnet", "legnet-lstm"], "train_size": [100, 200], "seed": [0]},
                    test={"path": "test.tsv"})
    write_run(tmp_path / "model=legnet__train_size=100__seed=0", "legnet", 100, 0)
    write_run(tmp_path / "model=legnet__train_size=200__seed=0", "legnet", 200, 0, test=False)
    write_run(tmp_path / "model=legnet-lstm__train_size=100__seed=0", "legnet-lstm", 100, 0, finished=False, epochs=3)
    progress = sweep_progress(tmp_path)
    assert progress.values.tolist() == [["model=legnet__train_size=100__seed=0", "finished", 4],
                                        ["model=legnet__train_size=200__seed=0", "not evaluated", 4],
                                        ["model=legnet-lstm__train_size=100__seed=0", "in progress", 3],
                                        ["model=legnet-lstm__train_size=200__seed=0", "not started", 0]]
    with pytest.raises(ValueError, match="spec.yaml: not a sweep's spec"):
        sweep_progress(tmp_path / "model=legnet__train_size=100__seed=0")


def test_report_of_two_partial_sweeps(tmp_path):
    native, dream = tmp_path / "native", tmp_path / "dream"
    write_spec_yaml(native, {"seed": [0, 1], "model": ["legnet", "legnet-dilated"], "train_size": [100, 200]})
    for model in ("legnet", "legnet-dilated"):
        for size in (100, 200):
            for seed in (0, 1):
                if (model, size, seed) != ("legnet-dilated", 200, 1):  # the one run still missing
                    write_run(native / f"seed={seed}__model={model}__train_size={size}", model, size, seed,
                              epochs=5 if seed else 4, max_epochs=5)
    write_sweep(dream, ["legnet", "legnet-dilated"], [100], [0, 1], dream=(0.3, 0.5), epochs=4, max_epochs=6)
    intro = tmp_path / "answer.md"
    intro.write_text("In plain words: the dilated hybrid wins here.\n")
    md_path = write_report({"native": native, "DREAM": dream}, tmp_path / "out" / "report.md", intro=intro,
                           run_curves=False)
    text = md_path.read_text()
    squeezed = re.sub(" +", " ", text)
    assert text.index("In plain words") < text.index("## Progress")
    assert "PARTIAL: 7 of 8 runs of the grid finished (7 finished, 1 not started)" in text
    assert "| native | seed=1__model=legnet-dilated__train_size=200 | not started | 0 |" in squeezed
    assert "**3 of 11 runs hit the epoch cap**" in text  # the native seed-1 runs trained all 5 epochs
    assert "native/seed=1__model=legnet__train_size=100" in text
    assert "| DREAM | legnet-dilated | 100 | 0, 1 | 4, 4 | 4, 4 | 6 | 0/2 |" in squeezed
    assert "## Official DREAM 2022 scores (public leaderboard)" in text and "## Wall time and parameters" in text
    assert "| DREAM | 100 | legnet-dilated | legnet | 2 | 2/2 |" in squeezed  # paired bootstrap per dataset
    test_r = {(model, seed): json.loads((dream / f"model={model}__train_size=100__seed={seed}" / "test_metrics.json")
                                        .read_text())["pearson"] for model in ("legnet", "legnet-dilated") for seed in (0, 1)}
    diffs = np.array([test_r["legnet-dilated", s] - test_r["legnet", s] for s in (0, 1)])
    half = stats.t.ppf(0.975, 1) * diffs.std(ddof=1) / math.sqrt(2)
    across_seeds = text[text.index("### Across seeds"):text.index("## Official DREAM")]
    assert (f"| DREAM | 100 | legnet-dilated | legnet | 2 | 2/2 | {diffs.mean():.4f} | {diffs.mean() - half:.4f} | "
            f"{diffs.mean() + half:.4f} |") in re.sub(" +", " ", across_seeds)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"report_figures/size_curve_test.png", "report_figures/runs_legnet-dilated.png",
            "report_figures/scatter_legnet__DREAM.png"} <= set(links)
    assert all((md_path.parent / link).is_file() for link in links)
    assert not any("overlay_dataset" in link for link in links)
    with pytest.raises(ValueError, match="intro file not found"):
        write_report({"native": native}, tmp_path / "out" / "again.md", intro=tmp_path / "missing.md")


def test_report_command_names_several_sweeps_as_name_dir(tmp_path):
    from typer.testing import CliRunner

    from promoterlab.cli import app

    for args in (["native=a", "b"], ["x=a", "x=b"], ["=a", "y=b"]):
        result = CliRunner().invoke(app, ["report", *args, "-o", str(tmp_path / "report.md")])
        assert result.exit_code == 2 and "NAME=DIR with distinct names" in result.output, args
    result = CliRunner().invoke(app, ["report", f"native={tmp_path / 'none'}", "-o", str(tmp_path / "report.md")])
    assert result.exit_code == 2 and "no finished run" in result.output
    assert not (tmp_path / "report.md").exists()


def test_stopping_check_correlates_early_plateaus_with_test_pearson():
    # size 100: the seed that plateaued earliest tests worst in every model (rho +1); size 200: the
    # reverse (rho -1); a configuration with one seed has no residual and is left out.
    rows = []
    for size, sign in ((100, 1.0), (200, -1.0)):
        for model, level in (("legnet", 0.8), ("legnet-lstm", 0.7)):
            for seed, plateau in enumerate((8, 12, 16) if model == "legnet" else (10, 11, 15)):
                rows.append({"run": f"{model}-{size}-{seed}", "run_dir": "x", "model": model, "train_size": size,
                             "seed": seed, "plateau_epoch": plateau,
                             "test_pearson": level + sign * 0.001 * plateau})
    rows.append({"run": "lone", "run_dir": "x", "model": "legnet-dilated", "train_size": 100, "seed": 0,
                 "plateau_epoch": 30, "test_pearson": 0.1})
    runs = pd.DataFrame(rows)
    check = stopping_check(runs).set_index("train_size")
    assert check.loc[100, "n_runs"] == 6 and check.loc[200, "n_runs"] == 6
    assert check.loc[100, "rho"] == pytest.approx(1.0) and check.loc[200, "rho"] == pytest.approx(-1.0)
    assert check.loc[100, "p_value"] < 0.05
    assert stopping_check(runs.assign(plateau_epoch=np.nan)).empty  # no plateau runs: nothing to check
