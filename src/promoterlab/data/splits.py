"""Seeded train/validation splits, optionally keeping groups whole."""

from __future__ import annotations

import numpy as np

AUTO_VAL_FRACTION = 0.1
AUTO_VAL_MIN = 256
AUTO_VAL_MAX = 2048


def auto_val_size(n: int) -> int:
    """Validation rows of ``val_size="auto"`` for a table of ``n`` rows: a tenth of them (the
    usual held-out share of these libraries), at least :data:`AUTO_VAL_MIN` (for a stable
    validation Pearson; at most half the rows) and at most :data:`AUTO_VAL_MAX` (validation
    every epoch stays cheap on large data)."""
    return min(AUTO_VAL_MAX, max(min(AUTO_VAL_MIN, n // 2), round(n * AUTO_VAL_FRACTION)))


def val_rows(val_size: int | str, n: int) -> int:
    """``val_size`` as a number of rows of a table of ``n`` rows (``"auto"``: :func:`auto_val_size`)."""
    return auto_val_size(n) if val_size == "auto" else val_size


def split_indices(
    n: int,
    train_size: int | None,
    val_size: int | str,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose validation rows first, then training rows from the rest; the remainder is unused.

    The validation set depends only on ``seed`` (and ``groups``), not on ``train_size``, and
    with one seed the training set of a smaller size is a subset of a larger one, so
    data-size curves compare nested training sets against one validation set.

    Parameters
    ----------
    n : int
        Number of rows.
    train_size : int or None
        Training rows (None: all rows not used for validation).
    val_size : int or "auto"
        Validation rows (``"auto"``: :func:`auto_val_size`). With ``groups``, whole groups are
        added in a seeded random order until at least ``val_size`` rows are reached, so no
        group is split across train and validation.
    seed : int
        Seed of the permutation.
    groups : numpy.ndarray, optional
        Group label per row.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Training and validation row indices.
    """
    val_size = val_rows(val_size, n)
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n)
        val, rest = order[:val_size], order[val_size:]
    else:
        labels, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        group_order = rng.permutation(len(labels))
        sizes = np.bincount(inverse, minlength=len(labels))[group_order]
        n_val_groups = int(np.searchsorted(np.cumsum(sizes), val_size) + 1) if val_size > 0 else 0
        is_val_group = np.zeros(len(labels), dtype=bool)
        is_val_group[group_order[:n_val_groups]] = True
        in_val = is_val_group[inverse]
        val = rng.permutation(np.nonzero(in_val)[0])
        rest = rng.permutation(np.nonzero(~in_val)[0])
    if train_size is None:
        train_size = len(rest)
    if train_size > len(rest):
        raise ValueError(f"train size {train_size} exceeds the {len(rest)} rows left after validation")
    return rest[:train_size], val
