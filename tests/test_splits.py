"""Seeded, deterministic splits; groups never straddle train and validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import tiny_config
from promoterlab import load_run, train
from promoterlab.data.dataset import load_split
from promoterlab.data.splits import auto_val_size, split_indices
from promoterlab.runs import saved_config_matches


def test_split_is_seeded_disjoint_and_nested():
    train, val, _ = split_indices(1000, 300, 200, seed=3)
    assert len(train) == 300 and len(val) == 200
    assert not set(train) & set(val)
    again = split_indices(1000, 300, 200, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    bigger_train, same_val, _ = split_indices(1000, 600, 200, seed=3)
    assert np.array_equal(val, same_val)
    assert set(train) <= set(bigger_train)
    assert not np.array_equal(split_indices(1000, 300, 200, seed=4)[1], val)


def test_groups_stay_whole():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 150, size=2000)
    train, val, _ = split_indices(2000, 1000, 300, seed=1, groups=groups)
    assert len(val) >= 300 and len(train) == 1000
    assert not set(groups[train]) & set(groups[val])
    # the validation groups are complete
    for g in set(groups[val]):
        assert set(np.nonzero(groups == g)[0]) <= set(val)


def test_train_size_too_large():
    with pytest.raises(ValueError, match="exceeds the 800 rows left"):
        split_indices(1000, 900, 200, seed=0)


@pytest.mark.parametrize("n, expected", [(100_000, 2048), (7369, 737), (4000, 400), (2560, 256), (1000, 200), (600, 120), (300, 60)])
def test_auto_validation_is_a_tenth_between_256_and_2048_rows(n, expected):
    assert auto_val_size(n) == expected
    train, val, _ = split_indices(n, None, "auto", seed=0)
    assert len(val) == expected and len(train) == n - expected


def test_auto_validation_is_saved_as_the_rows_it_chose(sim_library, tmp_path):
    config = tiny_config(sim_library, epochs=1, train_size=None, width=0.0625)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, val_size="auto"))
    summary = train(config, tmp_path)
    assert summary["val_size"] == 300 and summary["train_size"] == 2400  # 3,000 rows: 300 test, 300 val
    assert load_run(tmp_path)[1].data.val_size == 300
    assert saved_config_matches(tmp_path, config)  # the same command resumes the run


def test_test_rows_are_drawn_first_and_never_overlap():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, size=3000)
    for g in (None, groups):
        train, val, test = split_indices(3000, 1000, 300, seed=2, groups=g, test_size="auto")
        assert len(test) >= 300 and len(val) >= 300 and len(train) == 1000  # auto: a tenth of 3,000
        assert not (set(train) & set(val)) and not (set(train) | set(val)) & set(test)
        if g is not None:
            assert not set(g[test]) & set(g[np.concatenate([train, val])])
        again = split_indices(3000, 1000, 300, seed=2, groups=g, test_size="auto")
        assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test)))
        # the test rows do not depend on how much is trained on, nor on the validation size
        assert np.array_equal(split_indices(3000, 500, 200, seed=2, groups=g, test_size="auto").test, test)
    assert len(split_indices(1000, None, 100, seed=0, test_size=0.25).test) == 250
    assert len(split_indices(1000, None, 100, seed=0, test_size=40).test) == 40
    # without a test set the split is the one runs drew before test sets existed
    old_train, old_val, no_test = split_indices(1000, 300, 200, seed=3, test_size=0)
    assert len(no_test) == 0 and np.array_equal(old_val, np.random.default_rng(3).permutation(1000)[:200])


def test_the_test_split_is_shared_by_ensemble_members_and_saved(sim_library, tmp_path):
    from promoterlab.training.outcome import read_split
    from promoterlab.training.train import member_configs

    config = tiny_config(sim_library, train_size=1000)
    members = member_configs(config, 3)
    splits = [load_split(member.data, member.seed) for member in members]
    assert all(np.array_equal(s.rows.test, splits[0].rows.test) and np.array_equal(s.rows.val, splits[0].rows.val)
               for s in splits[1:])
    assert len(splits[0].rows.test) == 300 and not splits[0].test.singleton.any()  # flags 0, as at prediction
    summary = train(dataclasses.replace(config, data=dataclasses.replace(config.data, train_size=300)), tmp_path)
    saved = read_split(tmp_path)
    assert np.array_equal(saved["test"], splits[0].rows.test) and int(saved["n_rows"]) == 3000
    assert summary["test"]["n"] == 300 and summary["test"]["source"] == "held-out split"


def test_changing_only_test_labels_leaves_the_trained_weights_identical(tmp_path):
    import torch

    from promoterlab.data.readers import read_table
    from promoterlab.data.simulate import write_library

    library = write_library(tmp_path / "a.txt", n=900, seed=4)
    config = tiny_config(library, epochs=1, train_size=300, val_size=200)
    test_rows = load_split(config.data, config.seed).rows.test
    frame = read_table(library)
    frame.loc[frame.index[test_rows], "target"] = 17.0 - frame["target"].iloc[test_rows]
    other = tmp_path / "b.txt"
    frame[["seq", "target"]].to_csv(other, sep="\t", header=False, index=False)
    first = train(config, tmp_path / "a")
    second = train(dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(other))), tmp_path / "b")
    weights = [torch.load(tmp_path / run / "model.pt", weights_only=True)["state_dict"] for run in ("a", "b")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert first["best_val_pearson"] == second["best_val_pearson"]
    assert first["test"]["pearson"] != pytest.approx(second["test"]["pearson"], abs=1e-3)
