"""One precision vocabulary (auto, 32, bf16, 16) and one resolver, everywhere."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import tiny_config
from promoterlab import precision as precision_module
from promoterlab import predict
from promoterlab.cli import app
from promoterlab.config import RunConfig, TrainConfig
from promoterlab.models import build_model, model_config
from promoterlab.precision import (
    ENV_VAR,
    autocast_dtype,
    describe_auto,
    lightning_precision,
    native_bf16,
    normalize_precision,
    resolve_precision,
)
from promoterlab.training.hardware import resolve_train_config


@pytest.fixture
def native(monkeypatch):
    """Set whether this machine computes bf16 natively; ``PROMOTERLAB_PRECISION`` unset."""
    monkeypatch.delenv(ENV_VAR, raising=False)

    def set_native(value: bool) -> None:
        monkeypatch.setattr(precision_module, "native_bf16", lambda device="cpu": value)

    return set_native


def test_the_vocabulary_is_auto_32_bf16_16():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [normalize_precision(v) for v in ("auto", "32", "bf16", "16", "BF16", 32, 16)] == \
            ["auto", "32", "bf16", "16", "bf16", "32", "16"]


@pytest.mark.parametrize("old, new", [("bf16-mixed", "bf16"), ("32-true", "32"), ("16-mixed", "16")])
def test_lightning_spellings_are_read_with_a_warning_naming_ours(old, new):
    with pytest.warns(FutureWarning, match=f"precision '{old}' is deprecated; use '{new}'"):
        assert normalize_precision(old) == new


@pytest.mark.parametrize("value", ["bf16-true", "16-true", "64", "64-true", "half", "", None, True, 8])
def test_other_values_are_refused_listing_the_accepted_ones(value):
    with pytest.raises(ValueError, match=r"precision must be one of auto, 32, bf16, 16 \(fp16 mixed, GPU only\); "
                                         rf"got {value!r}"):
        normalize_precision(value)


def test_saved_configs_of_earlier_runs_load_silently_and_normalised(tmp_path):
    for old, new in (("bf16-mixed", "bf16"), ("32", "32"), (32, "32"), ("32-true", "32")):
        path = tmp_path / "config.yaml"
        raw = RunConfig().to_dict()
        raw["train"]["precision"] = old
        path.write_text(yaml.safe_dump(raw))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert RunConfig.load(path).train.precision == new


def test_auto_is_bf16_only_where_native(native):
    native(True)
    assert resolve_precision("auto", "cpu") == "bf16" and describe_auto() in ("bf16", "bf16 on cuda, bf16 on the CPU")
    native(False)
    assert resolve_precision("auto", "cpu") == "32"
    assert [resolve_precision(v, "cpu") for v in ("32", "bf16")] == ["32", "bf16"]  # asked for: as asked


@pytest.mark.parametrize("env, auto", [("32", "32"), ("bf16", "bf16"), (" BF16 ", "bf16"), ("", None)])
def test_the_environment_decides_what_auto_means(native, monkeypatch, env, auto):
    native(True)
    monkeypatch.setenv(ENV_VAR, env)
    assert resolve_precision("auto", "cpu") == (auto or "bf16")
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("32", "cpu") == "32"
    if auto:
        assert describe_auto() == f"{auto}, from {ENV_VAR}"


def test_a_bad_environment_value_is_refused(native, monkeypatch):
    native(True)
    monkeypatch.setenv(ENV_VAR, "16")
    with pytest.raises(ValueError, match=f"{ENV_VAR} must be 32 or bf16, got '16'"):
        resolve_precision("auto", "cpu")
    assert resolve_precision("32", "cpu") == "32"  # only auto reads it


def test_fp16_is_refused_on_a_cpu_and_kept_on_a_gpu():
    for device in ("cpu", torch.device("cpu")):
        with pytest.raises(ValueError, match="precision 16 .* GPU only; on a CPU use bf16 or 32"):
            resolve_precision("16", device)
    assert resolve_precision("16", "cuda:1") == resolve_precision("16", "gpu") == "16"


def test_lightning_and_autocast_forms_of_a_resolved_precision():
    assert [lightning_precision(p) for p in ("32", "bf16", "16")] == ["32-true", "bf16-mixed", "16-mixed"]
    assert [autocast_dtype(p) for p in ("32", "bf16", "16")] == [torch.float32, torch.bfloat16, torch.float16]
    with pytest.raises(ValueError, match="resolved"):
        lightning_precision("auto")


def test_a_capped_onednn_counts_as_without_native_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not native_bf16("cpu")
    assert not native_bf16("mps")


def test_training_resolves_auto_and_refuses_fp16_on_a_cpu(native, monkeypatch):
    native(False)
    assert resolve_train_config(TrainConfig(accelerator="cpu"), 100).precision == "32"
    monkeypatch.setenv(ENV_VAR, "bf16")
    assert resolve_train_config(TrainConfig(accelerator="cpu"), 100).precision == "bf16"
    with pytest.raises(ValueError, match="precision 16 .* GPU only"):
        TrainConfig(precision="16", accelerator="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="precision 16 .* GPU only"):
        resolve_train_config(TrainConfig(precision="16"), 100)  # accelerator auto: the CPU here


def test_predict_reads_the_vocabulary():
    torch.manual_seed(0)
    model = build_model(model_config("legnet", width=0.0625), 18)
    codes = np.random.default_rng(0).integers(0, 4, (8, 150)).astype(np.uint8)
    with pytest.warns(FutureWarning, match="use 'bf16'"):
        old = predict(model, codes, precision="bf16-mixed")
    np.testing.assert_array_equal(old, predict(model, codes, precision="bf16"))
    with pytest.raises(ValueError, match="GPU only"):
        predict(model, codes, precision="16")


def invoke(*args: object, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def test_cli_warns_on_a_lightning_spelling_and_refuses_fp16_on_the_cpu(sim_library, tmp_path):
    result = invoke("evaluate", tmp_path / "norun", sim_library, "--precision", "bf16-mixed")
    assert "warning: --precision bf16-mixed is deprecated; use --precision bf16" in result.stderr
    for command in (["predict", tmp_path / "norun", sim_library, "-o", tmp_path / "p.tsv"],
                    ["explain", tmp_path / "norun", sim_library, "-o", tmp_path / "out"],
                    ["train", sim_library, "--output", tmp_path / "run", "--accelerator", "cpu"]):
        result = invoke(*command, "--precision", "16")
        assert result.exit_code == 2 and result.stderr.startswith("error: --precision 16 (fp16 mixed) runs on a "
                                                                  "GPU only"), result.stderr
    assert not any(tmp_path.iterdir())
    result = invoke("predict", tmp_path / "norun", sim_library, "-o", tmp_path / "p.tsv", "--precision", "auto",
                    env={ENV_VAR: "fp8"})
    assert result.exit_code == 2 and f"{ENV_VAR} must be 32 or bf16" in result.stderr


def help_text(*command: str, env: dict) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "1000", **env})
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.replace("│", " ").split())


def test_help_says_what_auto_is_here(native):
    native(False)
    for command in ("train", "predict", "evaluate", "explain", "variants", "motifs", "marginalize"):
        text = help_text(command, env={ENV_VAR: "32"})
        assert f"auto (here: 32, from {ENV_VAR}), 32, bf16 or 16 (fp16 mixed, GPU only)" in text, command
        assert "<str>" not in text, command
    assert "auto (here: 32), 32, bf16 or 16" in help_text("dream", "predict", env={ENV_VAR: ""})


def test_a_run_saves_the_resolved_precision_and_its_plan_says_it(sim_library, tmp_path, native, caplog):
    from promoterlab import train

    native(False)
    config = tiny_config(sim_library, epochs=1, train_size=200, val_size=100)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, precision="auto"))
    with caplog.at_level("INFO", logger="promoterlab"):
        summary = train(config, tmp_path)
    assert summary["precision"] == "32" and RunConfig.load(tmp_path / "config.yaml").train.precision == "32"
    assert any("precision 32, batch 64" in r.getMessage() for r in caplog.records)
