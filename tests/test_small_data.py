"""Issue 13 wired into training and the CLI: EvoAug batches and fine-tuning, weight averaging,
ensembles at prediction and evaluation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from typer.testing import CliRunner

from conftest import tiny_config
from promoterlab import load_run, train
from promoterlab.cli import app
from promoterlab.config import TrainConfig
from promoterlab.data.augment import parse_augment, window_mask
from promoterlab.data.dataset import TrainBatches, load_split
from promoterlab.training.module import FINETUNE_LR_DIVISOR
from promoterlab.runs import save_model

runner = CliRunner()


def _with_train(config, **changes):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


class _AugmentationRecorder(Callback):
    """Per epoch (1-based): whether the training batches were augmented."""

    def __init__(self):
        self.augmenting: dict[int, set[bool]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        dataset = trainer.train_dataloader.dataset
        self.augmenting.setdefault(trainer.current_epoch + 1, set()).add(dataset.augmenting)


@pytest.fixture(scope="module")
def finetuned_run(sim_library, tmp_path_factory):
    out = tmp_path_factory.mktemp("evoaug")
    recorder = _AugmentationRecorder()
    config = _with_train(tiny_config(sim_library, epochs=2, train_size=300, val_size=100), augment="evoaug",
                         finetune_epochs=1)
    summary = train(config, out, callbacks=[recorder])
    return out, summary, recorder


class _FinalWeights(Callback):
    """The averaging callback's average and the raw weights at the end of training (runs after it)."""

    def on_train_end(self, trainer, pl_module):
        from promoterlab.training.averaging import EMA

        ema = next(c for c in trainer.callbacks if isinstance(c, EMA))
        self.average = {k.removeprefix("model."): v.clone() for k, v in ema._average_model.module.state_dict().items()}
        self.steps = int(ema._average_model.n_averaged)


@pytest.fixture(scope="module")
def averaged_run(sim_library, tmp_path_factory):
    out = tmp_path_factory.mktemp("ema")
    final = _FinalWeights()
    summary = train(_with_train(tiny_config(sim_library, seed=1, epochs=2), averaging="ema:0.9"), out,
                    callbacks=[final])
    return out, summary, final


def test_augmented_batches_differ_from_plain_ones_only_inside_the_insert_windows(sim_library):
    config = tiny_config(sim_library)
    train_set, _, *_ = load_split(config.data, config.seed, windows=True)
    assert train_set.windows is not None and len(train_set.windows) == len(train_set)
    augment = parse_augment("evoaug")
    augmented = TrainBatches(train_set, augment=augment, seed=3)
    plain = TrainBatches(train_set)
    n = len(train_set)
    indices = list(range(0, 40)) + list(range(n, n + 40))  # forward rows and their reverse complements
    x_aug, y_aug = augmented[indices]
    x_plain, y_plain = plain[indices]
    assert torch.equal(y_aug, y_plain) and x_aug.shape == x_plain.shape
    reverse = torch.as_tensor(indices) >= n
    inside = window_mask(train_set.windows[torch.as_tensor(indices) % n], x_plain.shape[-1], reverse)
    changed = (x_aug != x_plain).any(dim=1)
    assert changed.any() and not (changed & ~inside).any()
    assert torch.equal(x_aug[:, 4:], x_plain[:, 4:])  # strand and singleton channels untouched
    assert changed.any(dim=1).float().mean() > 0.8  # two augmentations per sequence
    assert torch.equal(augmented[indices][0], x_aug)  # reproducible from (seed, indices)
    assert not torch.equal(TrainBatches(train_set, augment=augment, seed=4)[indices][0], x_aug)
    augmented.augmenting = False
    assert torch.equal(augmented[indices][0], x_plain)


def test_evoaug_run_fine_tunes_unaugmented_at_a_constant_lower_lr(finetuned_run):
    out, summary, recorder = finetuned_run
    assert recorder.augmenting == {1: {True}, 2: {True}, 3: {False}}
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert summary["finetune_epochs"] == [3] and summary["epochs"] == 3 and summary["augment"] == "evoaug"
    assert metrics["lr"].iloc[2] == pytest.approx(TrainConfig().max_lr / FINETUNE_LR_DIVISOR, rel=1e-9)
    # OneCycle ends at max_lr / (div_factor * final_div_factor) at the last augmented step
    assert metrics["lr"].iloc[1] < metrics["lr"].iloc[0]
    assert json.loads((out / "summary.json").read_text())["finetune_epochs"] == [3]


def test_ema_run_saves_the_averaged_final_model(averaged_run):
    out, summary, final = averaged_run
    assert summary["averaging"] == "ema:0.9" and summary["model_weights"] == "final ema:0.9 average"
    assert final.steps == summary["steps"] + 1  # the initial weights and every optimiser step
    saved = load_run(out)[0].state_dict()
    assert all(torch.equal(saved[k], final.average[k]) for k in saved)
    best = torch.load(out / "best.ckpt", map_location="cpu", weights_only=False)  # an earlier epoch's average
    earlier = {k.removeprefix("model."): v for k, v in best["state_dict"].items()}
    assert best["epoch"] + 1 < summary["epochs"] or any(not torch.equal(saved[k], earlier[k]) for k in saved)


@pytest.mark.parametrize("options, message", [
    (["--augment", "evoaug:mutation=2"], "--augment: mutation must be between 0 and 0.75"),
    (["--augment", "shuffle"], "--augment: unknown augmentation 'shuffle'"),
    (["--finetune-epochs", "-1"], "--finetune-epochs must be an integer >= 0"),
    (["--finetune-epochs", "2", "--max-time", "1"], "--finetune-epochs cannot be combined with max_time"),
    (["--averaging", "ema:1.5"], "--averaging: ema decay must be in [0, 1)"),
    (["--averaging", "mean"], "--averaging: unknown weight averaging 'mean'"),
])
def test_bad_training_options_are_clear_errors(sim_library, tmp_path, options, message):
    result = runner.invoke(app, ["train", str(sim_library), "--output", str(tmp_path / "run"), *options])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_ensemble_predict_and_evaluate(finetuned_run, averaged_run, sim_library, tmp_path):
    runs = [str(finetuned_run[0]), str(averaged_run[0])]
    frame = pd.read_csv(sim_library, sep="\t", header=None, names=["seq", "target"], nrows=300)
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{seq}\n" for i, seq in enumerate(frame["seq"])))
    singles = []
    for i, run in enumerate(runs):
        result = runner.invoke(app, ["predict", run, str(fasta), "-o", str(tmp_path / f"{i}.tsv"), "--no-progress",
                                     "--precision", "32"])
        assert result.exit_code == 0, result.output
        singles.append(pd.read_csv(tmp_path / f"{i}.tsv", sep="\t"))
        assert list(singles[-1].columns) == ["id", "seq", "prediction"]
    result = runner.invoke(app, ["predict", *runs, str(fasta), "-o", str(tmp_path / "ens.tsv"), "--no-progress",
                                 "--precision", "32"])
    assert result.exit_code == 0, result.output
    ensemble = pd.read_csv(tmp_path / "ens.tsv", sep="\t")
    assert list(ensemble.columns) == ["id", "seq", "prediction", "sd", "n_models"]
    stacked = np.stack([s["prediction"].to_numpy() for s in singles])
    np.testing.assert_allclose(ensemble["prediction"], stacked.mean(0), atol=1e-5)
    np.testing.assert_allclose(ensemble["sd"], stacked.std(0), atol=1e-5)
    assert (ensemble["n_models"] == 2).all()

    # a glob naming the same two runs ("evoaug0", "ema0") predicts the same
    pattern = str(finetuned_run[0].parent / "e[vm]*")
    result = runner.invoke(app, ["predict", pattern, str(fasta), "-o", str(tmp_path / "glob.tsv"), "--no-progress",
                                 "--precision", "32"])
    assert result.exit_code == 0, result.output
    by_glob = pd.read_csv(tmp_path / "glob.tsv", sep="\t")
    np.testing.assert_allclose(by_glob["prediction"], ensemble["prediction"], atol=1e-6)
    np.testing.assert_allclose(by_glob["sd"], ensemble["sd"], atol=1e-6)

    measured = tmp_path / "measured.txt"
    frame.to_csv(measured, sep="\t", header=False, index=False)
    plot = tmp_path / "calibration.png"
    result = runner.invoke(app, ["evaluate", *runs, str(measured), "--json", "--precision", "32",
                                 "--calibration-plot", str(plot)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    error = np.abs(frame["target"].to_numpy() - ensemble["prediction"].to_numpy())
    assert metrics["n_models"] == 2 and metrics["n"] == 300
    assert metrics["within_1sd"] == pytest.approx(np.mean(error <= ensemble["sd"].to_numpy()), abs=0.01)
    assert metrics["pearson"] == pytest.approx(np.corrcoef(ensemble["prediction"], frame["target"])[0, 1], abs=1e-4)
    assert plot.stat().st_size > 0


def test_ensemble_of_mismatched_layouts_is_refused(finetuned_run, averaged_run, tmp_path):
    model, config = load_run(averaged_run[0])
    other = dataclasses.replace(config, data=dataclasses.replace(config.data, upstream="A" * 200))
    (tmp_path / "other").mkdir()
    save_model(model, other, tmp_path / "other")
    fasta = tmp_path / "seqs.fa"
    fasta.write_text(">a\nACGTACGTACGT\n")
    result = runner.invoke(app, ["predict", str(finetuned_run[0]), str(tmp_path / "other"), str(fasta),
                                 "-o", str(tmp_path / "out.tsv")])
    assert result.exit_code == 2 and "lay sequences out differently (upstream differ)" in result.output
    assert not (tmp_path / "out.tsv").exists()


def test_train_ensemble_shares_one_split_and_writes_ensemble_metrics(sim_library, tmp_path):
    from promoterlab.evaluation.ensemble import ensemble_predict
    from promoterlab.evaluation.metrics import pearson
    from promoterlab.runs import Run

    out = tmp_path / "ens"
    result = runner.invoke(app, ["train", str(sim_library), "--output", str(out), "--ensemble", "3", "--seed", "4",
                                 "--width", "0.125", "--epochs", "1", "--train-size", "300", "--val-size", "150",
                                 "--batch-size", "64", "--accelerator", "cpu", "--devices", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [4, 5, 6] and summary["split_seed"] == 4 and summary["n_models"] == 3
    runs = [out / f"seed={seed}" for seed in (4, 5, 6)]
    configs = [load_run(run)[1] for run in runs]
    assert [c.seed for c in configs] == [4, 5, 6] and {c.data.split_seed for c in configs} == {4}
    # every member validated on the same sequences, and the summary's numbers are those of their mean
    _, val, *_ = load_split(configs[0].data, 4)
    for config in configs[1:]:
        assert torch.equal(load_split(config.data, config.seed)[1].codes, val.codes)
    members = Run.open(runs).load_members()
    ens = ensemble_predict(members, val.codes, [str(run) for run in runs])
    y = val.targets.numpy()
    assert summary["val_pearson"] == pytest.approx(pearson(ens.mean, y), abs=1e-6)
    assert summary["members_val_pearson"] == pytest.approx([pearson(v, y) for v in ens.members], abs=1e-6)
    assert len({round(r, 6) for r in summary["members_val_pearson"]}) == 3  # seeds differ
    assert set(summary["val_calibration"]) >= {"within_1sd", "within_2sd", "spearman_error_sd"}

    fasta = tmp_path / "seqs.fa"
    fasta.write_text(">a\nACGTACGTTTGACCATGACA\n>b\nTTTTTTTTTTGGGGCCCAAA\n")
    result = runner.invoke(app, ["predict", str(out), str(fasta), "-o", str(tmp_path / "p.tsv"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(tmp_path / "p.tsv", sep="\t")["n_models"] == 3).all()


def test_variants_and_dream_predict_take_an_ensemble(finetuned_run, averaged_run, tmp_path):
    runs = [str(finetuned_run[0]), str(averaged_run[0])]
    rng = np.random.default_rng(0)
    refs = ["".join(rng.choice(list("ACGT"), size=80)) for _ in range(6)]
    alts = [ref[:40] + ("A" if ref[40] != "A" else "C") + ref[41:] for ref in refs]
    pairs = tmp_path / "pairs.tsv"
    pd.DataFrame({"id": [f"v{i}" for i in range(6)], "ref": refs, "alt": alts}).to_csv(pairs, sep="\t", index=False)
    singles = []
    for i, run in enumerate(runs):
        result = runner.invoke(app, ["variants", run, str(pairs), "-o", str(tmp_path / f"v{i}.tsv"),
                                     "--no-progress", "--precision", "32"])
        assert result.exit_code == 0, result.output
        singles.append(pd.read_csv(tmp_path / f"v{i}.tsv", sep="\t"))
    result = runner.invoke(app, ["variants", *runs, str(pairs), "-o", str(tmp_path / "ens.tsv"), "--no-progress",
                                 "--precision", "32"])
    assert result.exit_code == 0, result.output
    ens = pd.read_csv(tmp_path / "ens.tsv", sep="\t")
    assert list(ens.columns) == ["id", "ref_pred", "alt_pred", "delta", "delta_sd", "n_models"]
    deltas = np.stack([s["delta"].to_numpy() for s in singles])
    np.testing.assert_allclose(ens["delta"], deltas.mean(0), atol=1e-5)
    np.testing.assert_allclose(ens["delta_sd"], deltas.std(0), atol=1e-5)
    assert (ens["n_models"] == 2).all()

    test = tmp_path / "test_sequences.txt"
    test.write_text("".join(f"{ref}\t0\n" for ref in refs))
    table = tmp_path / "dream.tsv"
    result = runner.invoke(app, ["dream", "predict", *runs, "--test", str(test), "-o", str(tmp_path / "sub.json"),
                                 "--table", str(table), "--no-progress"])
    assert result.exit_code == 0, result.output
    submission = json.loads((tmp_path / "sub.json").read_text())
    details = pd.read_csv(table, sep="\t")
    assert list(details.columns) == ["id", "seq", "prediction", "sd", "n_models"]
    assert list(submission) == [str(i) for i in range(6)]
    np.testing.assert_allclose(list(submission.values()), details["prediction"], atol=1e-5)
    assert (details["sd"] > 0).all() and (details["n_models"] == 2).all()


def test_small_training_sets_default_to_a_three_model_ensemble(sim_library, tmp_path):
    from promoterlab.training.train import SMALL_TRAINING_SET, default_ensemble_size

    config = tiny_config(sim_library, train_size=None, val_size=500)  # 3,000 rows: 2,200 to train on
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, ensemble="auto"))
    assert default_ensemble_size(config) == 3
    budget = dataclasses.replace(config, train=dataclasses.replace(config.train, max_time=5.0))
    assert default_ensemble_size(budget) == 1  # an ensemble would take K times the budget
    for size, k in ((SMALL_TRAINING_SET, 3), (SMALL_TRAINING_SET + 1, 1)):
        sized = dataclasses.replace(config, data=dataclasses.replace(config.data, train_size=size))
        assert default_ensemble_size(sized) == k
    big = tmp_path / "big.txt"  # a table of 32 MB or more counts as large without being read
    with open(big, "w") as handle:
        handle.truncate(32 * 2**20)
    assert default_ensemble_size(dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(big),
                                                                                      train_size=None))) == 1


def test_train_without_ensemble_option_trains_the_default_ensemble(sim_library, tmp_path):
    out = tmp_path / "default"
    result = runner.invoke(app, ["train", str(sim_library), "--output", str(out), "--width", "0.0625", "--epochs", "1",
                                 "--train-size", "300", "--val-size", "200", "--batch-size", "64",
                                 "--accelerator", "cpu", "--devices", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "training an ensemble of 3 models" in result.stderr
    assert sorted(p.name for p in out.glob("seed=*")) == ["seed=0", "seed=1", "seed=2"]
    assert json.loads((out / "summary.json").read_text())["n_models"] == 3
