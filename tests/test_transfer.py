"""Fine-tuning (train.init_from, freeze) and distillation (train.teacher): tiny runs, seconds each."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from conftest import assert_error, invoke, tiny_config
from promoterlab.config import RunConfig, TrainConfig
from promoterlab.data.dataset import load_split
from promoterlab.evaluation.predict import predict
from promoterlab.models import build_model, model_config
from promoterlab.objective import Objective, soft_labels
from promoterlab.runs import Run, RunError, load_run
from promoterlab.training.distill import generate, with_teacher_labels
from promoterlab.training.train import train
from promoterlab.training.transfer import resolve_transfer, start_from
from test_pretrained import NAME, REFERENCE, served, server  # noqa: F401 (the fixture weights, served locally)


def small(path, **train_changes) -> RunConfig:
    """A 1-epoch run of 400 training sequences, without a test split, changed by ``train_changes``."""
    config = tiny_config(path, epochs=1, train_size=400, val_size=200)
    data = dataclasses.replace(config.data, test_size=0)
    return dataclasses.replace(config, data=data, train=dataclasses.replace(config.train, precision="32",
                                                                             **train_changes))


@pytest.fixture(scope="module")
def source(sim_library, tmp_path_factory):
    """A trained run to start from and to learn from."""
    out = tmp_path_factory.mktemp("source") / "run"
    train(small(sim_library), out)
    return out


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class FirstWeights(Callback):
    """Records the model's weights when training starts (before any step) and after every epoch."""

    def __init__(self):
        self.start, self.epochs = None, []

    def on_train_start(self, trainer, pl_module):
        self.start = weights(pl_module.model)

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(weights(pl_module.model))


def test_init_from_starts_from_the_source_weights_exactly(sim_library, source, tmp_path):
    config = small(sim_library, init_from=str(source))
    config = dataclasses.replace(config, model=model_config("legnet"))  # registered defaults: the init's model
    first = FirstWeights()
    train(config, tmp_path / "tuned", callbacks=[first])
    expected = weights(load_run(source)[0])
    assert first.start.keys() == expected.keys()
    assert all(torch.equal(first.start[k], expected[k]) for k in expected)
    assert not torch.equal(first.epochs[0]["head.bins.weight"], expected["head.bins.weight"])  # and then it trained
    saved = yaml.safe_load((tmp_path / "tuned" / "config.yaml").read_text())
    assert saved["model"]["width"] == 0.125 and saved["train"]["fit_width"] is False
    assert saved["train"]["max_lr"] == pytest.approx(TrainConfig().max_lr * TrainConfig().init_lr_scale)
    assert saved["train"]["init_lr_scale"] == 1.0
    path, digest = saved["train"]["init_resolved"].rsplit(" sha256:", 1)
    assert path == str(source.resolve()) and len(digest) == 16
    assert saved["train"]["teacher_resolved"] is None
    assert f"fine-tuned from `{source.resolve()} sha256:{digest}`" in (tmp_path / "tuned" / "README.md").read_text()


def test_resolving_twice_changes_nothing(sim_library, source):
    once = resolve_transfer(small(sim_library, init_from=str(source), teacher=str(source)))
    assert resolve_transfer(once) == once
    assert once.train.max_lr == pytest.approx(0.001) and once.train.teacher_resolved.startswith(str(source.resolve()))


def test_incompatible_init_runs_are_refused_with_one_line(sim_library, source, tmp_path):
    out = tmp_path / "out"
    common = (sim_library, "-o", out, "--epochs", 1, "--train-size", 400, "--val-size", 200, "--ensemble", 1)
    assert_error(invoke("train", *common, "--init-from", source, "--loss", "mse"), str(source), "loss kl", "--loss kl")
    assert_error(invoke("train", *common, "--init-from", source, "--seq-len", 140), "150 bp", "--seq-len 150")
    assert_error(invoke("train", *common, "--init-from", source, "--width", 0.5), "architecture", "width 0.5")
    assert_error(invoke("train", *common, "--init-from", tmp_path / "nothing"), "init_from", "no such run folder")
    assert_error(invoke("train", *common, "--freeze", "blocks:2"), "--freeze", "init_from")
    assert_error(invoke("train", *common, "--teacher-extra", "mutate"), "--teacher-extra", "teacher")
    assert_error(invoke("train", *common, "--init-from", source, "--freeze", "stem"), "--freeze", "blocks:N")
    assert_error(invoke("train", sim_library, "-o", source, "--init-from", source), "--init-from", "is the output folder")
    assert not out.exists()


def test_freezing_blocks_keeps_them_bit_identical(sim_library, source, tmp_path):
    config = small(sim_library, init_from=str(source), freeze="blocks:2")
    train(config, tmp_path / "frozen")
    before, after = weights(load_run(source)[0]), weights(load_run(tmp_path / "frozen")[0])
    frozen = [k for k in before if k.startswith(("stem.", "blocks.0.", "blocks.1."))]
    assert frozen and any("running_mean" in k for k in frozen)  # BatchNorm statistics are kept too
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["blocks.2.mix.0.weight"], after["blocks.2.mix.0.weight"])


def test_head_first_trains_only_the_head_then_everything(sim_library, source, tmp_path):
    config = small(sim_library, init_from=str(source), freeze="head:1")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2))
    first = FirstWeights()
    train(config, tmp_path / "head", callbacks=[first])
    before = weights(load_run(source)[0])
    body = [k for k in before if not k.startswith("head.")]
    assert all(torch.equal(before[k], first.epochs[0][k]) for k in body)
    assert not torch.equal(before["head.bins.weight"], first.epochs[0]["head.bins.weight"])
    assert not torch.equal(before["stem.0.weight"], first.epochs[1]["stem.0.weight"])


def test_another_bin_count_gets_a_new_head(sim_library, source, tmp_path, caplog):
    config = small(sim_library, init_from=str(source))
    config = dataclasses.replace(config, model=model_config("legnet", n_bins=10),
                                 data=dataclasses.replace(config.data, clip_targets=[0.0, 9.0]))
    resolved = resolve_transfer(config)
    assert (resolved.model.n_bins, resolved.model.width) == (10, 0.125)
    model = build_model(resolved.model, Objective.of(resolved).n_outputs)
    fresh = weights(model)
    with caplog.at_level(logging.INFO, logger="promoterlab"):
        start_from(model, resolved)
    assert "head re-initialised for 10 bins" in caplog.text
    loaded, expected = weights(model), weights(load_run(source)[0])
    assert loaded["head.bins.weight"].shape[0] == 10 and torch.equal(loaded["head.bins.weight"], fresh["head.bins.weight"])
    assert all(torch.equal(loaded[k], expected[k]) for k in expected if not k.startswith("head."))
    summary = train(config, tmp_path / "bins10")
    assert summary["best_val_pearson"] == summary["best_val_pearson"]  # trained to the end (not NaN)


def test_teacher_labels_replace_the_measured_ones_at_weight_one(sim_library, source):
    config = resolve_transfer(small(sim_library, teacher=str(source), teacher_weight=1.0))
    split = load_split(config.data, config.seed)
    objective = Objective.of(config)
    taught = with_teacher_labels(config, split, objective)
    model, _ = load_run(source)
    expected = predict(model, split.train.codes, singleton=split.train.singleton, precision="auto")
    assert taught.train.targets.shape == (len(split.train), 18)
    np.testing.assert_allclose(objective.target_values(taught.train.targets).numpy(), expected, atol=1e-4)
    assert torch.equal(taught.val.targets, split.val.targets)  # validation keeps its measured values

    half = with_teacher_labels(dataclasses.replace(config, train=dataclasses.replace(config.train, teacher_weight=0.5)),
                               split, objective)
    mixed = 0.5 * taught.train.targets + 0.5 * soft_labels(split.train.targets, 18)
    torch.testing.assert_close(half.train.targets, mixed)


def test_generated_sequences_change_only_the_insert(sim_library):
    split = load_split(small(sim_library).data, 0, windows=True)
    train_set = split.train
    for spec in (("mutate", 0.3), ("shuffle", 0.0)):
        codes, windows = generate(train_set, spec, copies=2, seed=3)
        source = train_set.codes.repeat(2, 1)
        assert codes.shape == source.shape and torch.equal(windows, train_set.windows.repeat(2, 1))
        pos = torch.arange(codes.shape[1])
        inside = (pos >= windows[:, :1]) & (pos < windows[:, 1:])
        assert torch.equal(codes[~inside], source[~inside])
        assert (codes != source).any(dim=1).float().mean() > 0.9  # nearly every copy changed
        assert not torch.equal(codes[: len(train_set)], codes[len(train_set):])  # the copies differ
        assert torch.equal(generate(train_set, spec, copies=2, seed=3)[0], codes)  # seeded
        if spec[0] == "shuffle":
            for row in range(0, len(codes), 97):  # the same bases, in another order
                assert torch.equal(codes[row][inside[row]].sort().values, source[row][inside[row]].sort().values)


def test_distilled_student_trains_on_generated_sequences(sim_library, source, tmp_path, caplog):
    config = small(sim_library, teacher=str(source), teacher_extra="mutate:0.2", teacher_copies=2)
    with caplog.at_level(logging.INFO, logger="promoterlab"):
        summary = train(config, tmp_path / "student")
    assert "labels for 400 training sequences (weight 0.5) and 800 sequences it alone labels" in caplog.text
    assert summary["train_size"] == 400  # the measured rows; the generated ones are extra
    saved = RunConfig.load(tmp_path / "student" / "config.yaml")
    assert saved.train.teacher_resolved.startswith(str(source.resolve()))
    assert "2 mutate:0.2 copies of each training sequence labelled by the teacher alone" in \
        (tmp_path / "student" / "README.md").read_text()


def test_the_command_line_sets_every_option(sim_library, source, tmp_path):
    out = tmp_path / "cli"
    result = invoke("train", sim_library, "-o", out, "--epochs", 2, "--train-size", 400, "--val-size", 200,
                    "--test-size", 0, "--ensemble", 1, "--precision", 32, "--init-from", source, "--init-lr-scale", 0.5,
                    "--freeze", "head:1", "--teacher", source, "--teacher-weight", 0.7, "--teacher-extra", "shuffle",
                    "--teacher-copies", 2, "--quiet")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert saved["max_lr"] == pytest.approx(0.0025) and saved["init_lr_scale"] == 1.0
    assert (saved["init_from"], saved["freeze"], saved["teacher"]) == (str(source), "head:1", str(source))
    assert (saved["teacher_weight"], saved["teacher_extra"], saved["teacher_copies"]) == (0.7, "shuffle", 2)


def test_ensembles_and_test_splits_work_with_init_from(sim_library, source, tmp_path):
    config = small(sim_library, init_from=str(source), ensemble=2)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, test_size=100))
    summary = train(config, tmp_path / "ens")
    assert summary["n_models"] == 2 and summary["test"]["n"] == 100
    assert train(config, tmp_path / "ens")["n_models"] == 2  # the same command again: the same ensemble
    # An ensemble started from an ensemble: each member from the member of its seed.
    again = small(sim_library, init_from=str(tmp_path / "ens"), ensemble=2)
    train(again, tmp_path / "ens2")
    member = RunConfig.load(tmp_path / "ens2" / "seed=1" / "config.yaml")
    assert member.train.init_resolved.startswith(str((tmp_path / "ens" / "seed=1").resolve()) + " sha256:")
    assert Run.open(tmp_path / "ens2").ensemble


def test_unknown_sources_name_the_option(sim_library, tmp_path):
    with pytest.raises(RunError, match="teacher nowhere: no such run folder, and no registered pretrained model"):
        resolve_transfer(small(sim_library, teacher="nowhere"))


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/fixtures/legnet_reference not available")
def test_a_registered_model_is_converted_once_and_used(served, sim_library, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMOTERLAB_DATA", str(tmp_path / "data"))
    config = dataclasses.replace(small(sim_library, init_from=NAME, teacher=NAME), model=model_config("legnet"))
    config = resolve_transfer(config)
    folder = tmp_path / "data" / "pretrained" / NAME / "run"
    assert config.model.name == "legnet-original" and config.model.width == 1.0  # the original's architecture
    assert config.train.init_resolved.startswith(str(folder.resolve()) + " sha256:")
    model = build_model(config.model, Objective.of(config).n_outputs)
    start_from(model, config)
    expected = weights(load_run(folder)[0])
    assert all(torch.equal(weights(model)[k], expected[k]) for k in expected)
    assert len(served.requests) == 1  # downloaded and converted once, then reused
