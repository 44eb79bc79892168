"""Seeded, deterministic splits; groups never straddle train and validation."""

from __future__ import annotations

import numpy as np
import pytest

from promoterlab.data.splits import split_indices


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
