"""Seeded test/validation/train splits, optionally keeping groups whole.

The held-out test rows are drawn first, then the validation rows from the rest, then the
training rows from what is left; the remainder is unused. Each role's size uses the same rule
(:func:`auto_val_size`: a tenth of the rows, 256 to 2,048), so a library of 5,000
sequences keeps 500 for test, 500 for validation and 4,000 for training.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

AUTO_VAL_FRACTION = 0.1
AUTO_VAL_MIN = 256
AUTO_VAL_MAX = 2048
# The test draw has a random stream of its own, so that a run without a test split
# (test_size 0) splits exactly as runs did before test splits existed.
_TEST_STREAM = 0x7E57


class Split(NamedTuple):
    """Row indices of each role (training, validation, held-out test)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def auto_val_size(n: int) -> int:
    """Rows of a held-out set of size ``"auto"`` for a table of ``n`` rows: a tenth of them (the
    usual held-out share of these libraries), at least :data:`AUTO_VAL_MIN` (for a stable
    Pearson; but at most a fifth of the rows, so that validation and test together leave most of a
    small library to train on) and at most :data:`AUTO_VAL_MAX` (evaluation every epoch stays cheap
    on large data)."""
    return min(AUTO_VAL_MAX, max(min(AUTO_VAL_MIN, n // 5), round(n * AUTO_VAL_FRACTION)))



def val_rows(val_size: int | str, n: int) -> int:
    """``val_size`` as a number of rows of a table of ``n`` rows (``"auto"``: :func:`auto_val_size`)."""
    return auto_val_size(n) if val_size == "auto" else val_size


def test_rows(test_size: int | float | str, n: int) -> int:
    """``test_size`` as a number of rows of a table of ``n`` rows: ``"auto"`` is
    :func:`auto_val_size`, a float in (0, 1) a fraction of the rows, an integer that many rows."""
    if test_size == "auto":
        return auto_val_size(n)
    if isinstance(test_size, float):
        return int(round(test_size * n))
    return int(test_size)


def split_indices(
    n: int,
    train_size: int | None,
    val_size: int | str,
    seed: int,
    groups: np.ndarray | None = None,
    test_size: int | float | str = 0,
) -> Split:
    """Choose test rows first, then validation rows, then training rows from the rest.

    The test and validation sets depend only on ``seed`` (and ``groups`` and their sizes), not
    on ``train_size``, and with one seed the training set of a smaller size is a subset of a
    larger one, so data-size curves compare nested training sets against one validation and
    one test set.

    Parameters
    ----------
    n : int
        Number of rows.
    train_size : int or None
        Training rows (None: all rows not held out).
    val_size : int or "auto"
        Validation rows (``"auto"``: :func:`auto_val_size` of ``n``).
    seed : int
        Seed of the permutations.
    groups : numpy.ndarray, optional
        Group label per row. Whole groups are added in a seeded random order until at least the
        asked number of rows is reached, so no group is split between roles.
    test_size : int, float or "auto"
        Held-out test rows (``"auto"``: :func:`auto_val_size` of ``n``; a float in (0, 1):
        that fraction; 0: no test set).

    Returns
    -------
    Split
        Training, validation and test row indices.

    Raises
    ------
    ValueError
        When the roles ask for more rows than there are.
    """
    labels = None if groups is None else np.unique(np.asarray(groups).astype(str), return_inverse=True)[1]
    pool = np.arange(n)
    test = np.zeros(0, dtype=np.int64)
    n_test = test_rows(test_size, n)
    if n_test:
        if n_test >= n:
            raise ValueError(f"test size {n_test} leaves no rows of {n} for validation and training")
        test, pool = _draw(pool, n_test, np.random.default_rng([seed, _TEST_STREAM]), labels)
    n_val = val_rows(val_size, n)
    if n_val > len(pool):
        raise ValueError(f"validation size {n_val} exceeds the {len(pool)} rows left after the test set")
    val, rest = _draw(pool, n_val, np.random.default_rng(seed), labels)
    if train_size is None:
        train_size = len(rest)
    if train_size > len(rest):
        held = f"validation{' and test' if n_test else ''}"
        raise ValueError(f"train size {train_size} exceeds the {len(rest)} rows left after {held}")
    return Split(rest[:train_size], val, test)


def _draw(pool: np.ndarray, size: int, rng: np.random.Generator, labels: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """``size`` rows of ``pool`` drawn at random (whole groups of ``labels``) and the rest, shuffled."""
    if labels is None:
        order = pool[rng.permutation(len(pool))]
        return order[:size], order[size:]
    present, inverse = np.unique(labels[pool], return_inverse=True)
    group_order = rng.permutation(len(present))
    sizes = np.bincount(inverse, minlength=len(present))[group_order]
    n_groups = int(np.searchsorted(np.cumsum(sizes), size) + 1) if size > 0 else 0
    chosen = np.zeros(len(present), dtype=bool)
    chosen[group_order[:n_groups]] = True
    inside = chosen[inverse]
    return pool[rng.permutation(np.nonzero(inside)[0])], pool[rng.permutation(np.nonzero(~inside)[0])]
