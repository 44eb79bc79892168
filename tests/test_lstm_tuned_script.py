"""benchmarks/lstm_tuned.py builds the tuned LSTM's runs from the seed study's own spec."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("lstm_tuned", REPO / "benchmarks/lstm_tuned.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tuned_spec_trains_the_best_values_with_the_study_settings():
    best = {"params": {"model.hidden": 16, "model.bidirectional": True, "model.dropout": 0.1,
                       "train.weight_decay": 1e-4}}
    runs = _script().tuned_spec(REPO / "experiments/seed_study.yaml", "converged", best, 10240, [0, 1, 2]).grid()
    assert [values for _, values, _ in runs] == [{"seed": s, "model": "legnet-lstm", "train_size": 10240}
                                                 for s in (0, 1, 2)]
    config = runs[1][2]
    assert (config.model.hidden, config.model.bidirectional, config.model.dropout) == (16, True, 0.1)
    assert config.train.weight_decay == 1e-4 and config.seed == 1
    # the seed study's converged budget, not the tune spec's
    assert (config.model.width, config.train.schedule, config.train.patience, config.train.epochs) == (
        0.25, "plateau", 3, 40)
    assert config.data.path.endswith("deboer2020_native/pool.tsv.gz") and config.data.train_size == 10240


def test_tuned_spec_rejects_a_value_the_model_does_not_take():
    best = {"params": {"model.dropout": 1.5}}
    with pytest.raises(ValueError, match="dropout"):
        _script().tuned_spec(REPO / "experiments/seed_study.yaml", "converged", best, 10240, [0])
