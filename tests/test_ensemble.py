"""Ensembles: runs found by folder or glob, mean and sd of the members, shared layouts, calibration."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from promoterlab.config import DataConfig, RunConfig
from promoterlab.evaluation.ensemble import calibration, ensemble_predict, plot_calibration, weak_members
from promoterlab.evaluation.predict import predict
from promoterlab.models import build_model, model_config
from promoterlab.models.ensemble import EnsembleModel
from promoterlab.runs import Run, RunError, save_model

NATIVE_ADAPTER = "AACTGCATTTTTTTCACATC"


def save_run(folder, seed: int, **data) -> None:
    """An untrained tiny LegNet with its config, saved as a run's model.pt."""
    config = RunConfig(data=DataConfig(**data), model=model_config("legnet", width=0.125), seed=seed)
    torch.manual_seed(seed)
    model = build_model(config.model, 18)
    folder.mkdir(parents=True)
    save_model(model, config, folder)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for seed in range(3):
        save_run(root / f"seed={seed}", seed)
    (root / "notes").mkdir()  # a folder without a model is no run
    return root


def random_dna(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size=80)) for _ in range(n)]


def test_runs_are_found_from_folders_globs_and_files(sweep):
    runs = [sweep / f"seed={seed}" for seed in range(3)]
    assert Run.open(sweep).members == tuple(runs) and Run.open(sweep).ensemble
    assert Run.open(str(sweep / "seed=*")).members == tuple(runs)
    picked = Run.open([runs[1], sweep / "seed=0" / "model.pt", str(sweep / "seed=[01]")])
    assert picked.members == (runs[1], runs[0]) and picked.ensemble and picked.path is None
    one = Run.open(runs[2] / "model.pt")
    assert one.members == (runs[2],) and not one.ensemble and one.describe() == f"one model ({runs[2]})"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{sweep / 'missing'}: no such run folder")):
        Run.open(sweep / "missing")
    with pytest.raises(FileNotFoundError, match="matches no run folder"):
        Run.open(str(sweep / "run*"))
    with pytest.raises(RunError, match=re.escape(f"{sweep / 'notes'}: no trained model (model.pt) in it")):
        Run.open(sweep / "notes")
    with pytest.raises(RunError, match="no run given"):
        Run.open([])


def test_an_ensemble_folder_is_one_run_and_an_unfinished_one_is_refused(tmp_path):
    folder = tmp_path / "ens"
    folder.mkdir()
    config = RunConfig(model=model_config("legnet", width=0.125), seed=4)
    planned = RunConfig.from_dict({**config.to_dict(), "train": {**config.to_dict()["train"], "ensemble": 3}})
    planned.save(folder / "config.yaml")
    save_run(folder / "seed=4", 4)
    save_run(folder / "seed=5", 5)
    with pytest.raises(RunError, match=re.escape(
            f"{folder}: unfinished ensemble: 2 of 3 members trained (seed=6 has no model.pt); rerun the same train "
            f"command to finish it; or name finished members ({folder / 'seed=4'} {folder / 'seed=5'})")):
        Run.open(folder)
    save_run(folder / "seed=6", 6)
    with pytest.raises(RunError, match="its members are trained but its summary.json is missing"):
        Run.open(folder)
    (folder / "summary.json").write_text("{}")
    run = Run.open(folder)
    assert run.members == tuple(folder / f"seed={s}" for s in (4, 5, 6)) and run.ensemble
    assert run.describe() == f"an ensemble of 3 models ({folder})"
    model, loaded = run.load()
    assert isinstance(model, EnsembleModel) and len(model) == 3 and loaded.seed == 4
    # the members alone, named explicitly, are an ensemble of their own
    assert Run.open([folder / "seed=4", folder / "seed=5"]).members == (folder / "seed=4", folder / "seed=5")


def test_an_unfinished_single_run_is_refused(tmp_path):
    RunConfig().save(tmp_path / "config.yaml")
    with pytest.raises(RunError, match=re.escape(f"{tmp_path}: unfinished run: training did not complete (no "
                                                 "model.pt)")):
        Run.open(tmp_path)


def test_mean_and_sd_are_numpys_over_the_stacked_member_predictions(sweep):
    run = Run.open(sweep)
    members = run.load_members()
    names = [str(m) for m in run.members]
    assert names == [str(sweep / f"seed={seed}") for seed in range(3)]
    seqs = random_dna(40)
    result = ensemble_predict(members, seqs, names=names, precision="32")
    stacked = np.stack([predict(model, seqs, layout=config.data.layout, precision="32") for model, config in members])
    assert result.n_models == 3 and result.members.shape == (3, 40)
    np.testing.assert_allclose(result.members, stacked, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.mean, stacked.astype(np.float64).mean(0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.sd, stacked.astype(np.float64).std(0, ddof=0), rtol=0, atol=1e-6)
    assert (result.sd > 0).all()  # differently initialised members disagree
    single = ensemble_predict(members[:1], seqs, precision="32")
    assert single.n_models == 1 and (single.sd == 0).all()
    # the ensemble as one module predicts the members' mean (RC-averaged, as predict does)
    model, config = run.load()
    np.testing.assert_allclose(predict(model, seqs, layout=config.data.layout, precision="32"), result.mean,
                               rtol=0, atol=1e-5)


def test_mismatched_layouts_are_refused(sweep, tmp_path):
    save_run(tmp_path / "native", 0, left_adapter=NATIVE_ADAPTER)
    with pytest.raises(ValueError, match=re.escape(
            f"runs {sweep / 'seed=0'} and {tmp_path / 'native'} lay sequences out differently (left_adapter differ)")):
        Run.open([sweep / "seed=0", tmp_path / "native"]).load_members()
    members = Run.open(sweep / "seed=0").load_members()
    native = Run.open(tmp_path / "native").load_members()
    with pytest.raises(ValueError, match=r"runs model 1 and model 2 lay sequences out differently \(left_adapter"):
        ensemble_predict(members + native, random_dna(3))


def test_calibration_hand_values():
    y = np.array([1.0, 2.0, 3.0, 4.0, 0.5, np.nan])
    mean = np.zeros(6)
    sd = np.array([2.0, 1.0, 1.0, 1.0, 0.1, 1.0])
    # |errors| 1, 2, 3, 4, 0.5 (the NaN row is left out): inside ±1 sd only the first, inside ±2 sd the
    # first two; Spearman of ranks (2, 3, 4, 5, 1) and (5, 3, 3, 3, 1) is 2 / sqrt(10 * 8).
    result = calibration(y, mean, sd)
    assert result == pytest.approx({"within_1sd": 0.2, "within_2sd": 0.4, "spearman_error_sd": 2 / np.sqrt(80),
                                    "n": 5})
    with pytest.raises(ValueError, match="3 measurements, 2 means and 2 sds"):
        calibration([1, 2, 3], [1, 2], [1, 1])


def test_normal_errors_give_the_normal_coverage_and_the_plot_shows_it(tmp_path):
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.2, 2.0, size=20_000)
    mean = rng.uniform(0, 17, size=20_000)
    y = mean + rng.normal(size=20_000) * sd
    result = calibration(y, mean, sd)
    assert result["within_1sd"] == pytest.approx(0.6827, abs=0.01)
    assert result["within_2sd"] == pytest.approx(0.9545, abs=0.01)
    assert result["spearman_error_sd"] > 0.3
    fig = plot_calibration(y, mean, sd, tmp_path / "calibration.png")
    cover, error = fig.axes[:2]
    assert cover.get_title() == f"test: ±1 sd {result['within_1sd']:.2f}, ±2 sd {result['within_2sd']:.2f}"
    assert error.get_title() == f"test: Spearman {result['spearman_error_sd']:.2f}, n = 20,000"
    assert (tmp_path / "calibration.png").stat().st_size > 0
    own = Figure()
    axes = own.subplots(1, 2)
    assert plot_calibration(y[:10], mean[:10], sd[:10], ax=axes, title="mine") is own
    assert axes[0].get_title().startswith("mine: ±1 sd")


def test_a_member_far_below_the_others_is_named_weak():
    assert weak_members([0.64, 0.65, -0.10]) == [2]
    assert weak_members([0.62, 0.64, 0.65, 0.63]) == []
    assert weak_members([0.80, 0.30, 0.81, 0.79]) == [1]
    assert weak_members([0.5]) == []  # a single model has no others to compare with
    assert weak_members([0.64, 0.56], gap=0.05) == [1]  # with two members, the lower one is measured against the higher


def test_the_model_card_warns_of_a_weak_member():
    from promoterlab.training.outcome import model_card

    config = RunConfig(data=DataConfig(path="library.txt"))
    summary = {"train_size": 100, "val_size": 20, "val_pearson": 0.5, "members_val_pearson": [0.64, 0.65, -0.1],
               "weak_members": ["seed=2"]}
    card = model_card(config, summary, ["seed=0", "seed=1", "seed=2"])
    assert "**warning**: seed=2 did not learn" in card
    assert "warning" not in model_card(config, {**summary, "weak_members": []}, ["seed=0", "seed=1", "seed=2"])
