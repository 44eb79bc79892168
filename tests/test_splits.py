"""Seeded, deterministic splits; groups never straddle train and validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import tiny_config
from promoterlab import load_run, train
from promoterlab.data.splits import auto_val_size, split_indices
from promoterlab.training.run import saved_config_matches


def test_split_is_seeded_disjoint_and_nested():
    train, val = split_indices(1000, 300, 200, seed=3)
    assert len(train) == 300 and len(val) == 200
    assert not set(train) & set(val)
    again = split_indices(1000, 300, 200, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    bigger_train, same_val = split_indices(1000, 600, 200, seed=3)
    assert np.array_equal(val, same_val)
    assert set(train) <= set(bigger_train)
    assert not np.array_equal(split_indices(1000, 300, 200, seed=4)[1], val)


def test_groups_stay_whole():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 150, size=2000)
    train, val = split_indices(2000, 1000, 300, seed=1, groups=groups)
    assert len(val) >= 300 and len(train) == 1000
    assert not set(groups[train]) & set(groups[val])
    # the validation groups are complete
    for g in set(groups[val]):
        assert set(np.nonzero(groups == g)[0]) <= set(val)


def test_train_size_too_large():
    with pytest.raises(ValueError, match="exceeds the 800 rows left"):
        split_indices(1000, 900, 200, seed=0)


@pytest.mark.parametrize("n, expected", [(100_000, 2048), (7369, 737), (4000, 400), (1000, 256), (300, 150)])
def test_auto_validation_is_a_tenth_between_256_and_2048_rows(n, expected):
    assert auto_val_size(n) == expected
    train, val = split_indices(n, None, "auto", seed=0)
    assert len(val) == expected and len(train) == n - expected


def test_auto_validation_is_saved_as_the_rows_it_chose(sim_library, tmp_path):
    config = tiny_config(sim_library, epochs=1, train_size=None, width=0.0625)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, val_size="auto"))
    summary = train(config, tmp_path)
    assert summary["val_size"] == 300 and summary["train_size"] == 2700  # 3,000 rows
    assert load_run(tmp_path)[1].data.val_size == 300
    assert saved_config_matches(tmp_path, config)  # the same command resumes the run
