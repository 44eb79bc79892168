"""Train K seeds of one config as an ensemble: ``RUN/seed=S/`` per member, ``RUN/summary.json``.

The members share one train/validation split (the first seed's, ``DataConfig.split_seed``) and
differ in initialisation, batch order and augmentation draws, so the ensemble is validated on
sequences that none of its members saw. ``RUN`` is a folder of runs: ``promoterlab predict RUN``
and ``evaluate RUN`` use it as an ensemble.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from promoterlab.config import RunConfig
from promoterlab.data.dataset import load_split
from promoterlab.data.readers import read_table
from promoterlab.data.splits import val_rows
from promoterlab.data.store_batches import STORE_AUTO_BYTES
from promoterlab.evaluation.ensemble import calibration, ensemble_predict, load_ensemble
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.files import write_text_atomic
from promoterlab.training.run import train


# The small-data default (issue 13, BENCHMARKS.md "Small data"): of EvoAug, EMA, SWA and
# ensembles, only an ensemble improved test Pearson on both DREAM-5120 and native-10,240 (3
# models: +0.007 and +0.015, paired CIs above 0), and it gives each prediction an sd.
SMALL_TRAINING_SET = 20_480  # sequences: the largest training size of the small-data studies
SMALL_DATA_ENSEMBLE = 3


def default_ensemble_size(config: RunConfig) -> int:
    """The number of models ``promoterlab train`` trains when ``--ensemble`` is not given:
    :data:`SMALL_DATA_ENSEMBLE` for a training set of at most :data:`SMALL_TRAINING_SET`
    sequences, 1 for larger sets and for runs with a time budget (``max_time``, which an
    ensemble would exceed K-fold).

    The size is ``data.train_size`` or, without it, the rows of the table less ``val_size``
    (a table of :data:`STORE_AUTO_BYTES` or more, some 250,000 rows, counts as large unread).
    """
    if config.train.max_time is not None:
        return 1
    n_train = config.data.train_size
    if n_train is None:
        path = Path(config.data.path)
        if path.stat().st_size >= STORE_AUTO_BYTES:
            return 1
        data = config.data
        frame = read_table(path, data.seq_col, data.target_col, data.group_col, drop_missing=data.drop_missing)
        n_train = len(frame) - val_rows(data.val_size, len(frame))
    return SMALL_DATA_ENSEMBLE if n_train <= SMALL_TRAINING_SET else 1


def member_configs(config: RunConfig, k: int) -> list[RunConfig]:
    """The configs of a ``k``-member ensemble: seeds ``seed .. seed + k - 1`` on the split of ``seed``
    (or of ``config.data.split_seed`` when set)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"ensemble: the number of models must be a whole number >= 2, got {k!r}")
    split_seed = config.seed if config.data.split_seed is None else config.data.split_seed
    data = dataclasses.replace(config.data, split_seed=split_seed)
    return [dataclasses.replace(config, seed=config.seed + i, data=data) for i in range(k)]


def train_ensemble(config: RunConfig, out_dir: str | Path, k: int, progress: bool = False, resume: bool = True,
                   overwrite: bool = False) -> dict:
    """Train ``k`` members of ``config`` into ``out_dir/seed=S/`` and write the ensemble's summary.

    Each member is an ordinary run (:func:`~promoterlab.training.run.train`; an interrupted
    ensemble resumes member by member). The summary holds every member's summary and, on the
    shared validation set with the singleton channel 0 (as at prediction), the members' Pearson
    and Spearman, the ensemble mean's, and the :func:`~promoterlab.evaluation.ensemble.calibration`
    of the ensemble's sd.

    Returns
    -------
    dict
        The contents of ``out_dir/summary.json`` (empty on a non-zero rank of a distributed run).
    """
    out = Path(out_dir)
    configs = member_configs(config, k)
    if out.exists() and (out / "model.pt").exists():
        raise ValueError(f"{out}: holds a single run; an ensemble needs a folder of its own")
    runs = [out / f"seed={member.seed}" for member in configs]
    summaries = [train(member, run, progress=progress, resume=resume, overwrite=overwrite)
                 for member, run in zip(configs, runs)]
    if not all(summaries):  # a non-zero rank of a distributed run: rank 0 writes the summary
        return {}
    members, names = load_ensemble(runs)
    _, val_set = load_split(configs[0].data, configs[0].seed)
    y = val_set.targets.numpy().astype(np.float64)
    result = ensemble_predict(members, val_set.codes, names, batch_size=members[0][1].train.eval_batch_size)
    member_r = [pearson(values, y) for values in result.members]
    summary = {
        "n_models": k,
        "seeds": [member.seed for member in configs],
        "split_seed": configs[0].data.split_seed,
        "val_size": len(y),
        "val_pearson": pearson(result.mean, y),
        "val_spearman": spearman(result.mean, y),
        "members_val_pearson": member_r,
        "members_val_pearson_mean": float(np.mean(member_r)),
        "val_calibration": calibration(y, result.mean, result.sd),
        "note": "validation inputs with the singleton channel 0, as at prediction",
        "members": {run.name: member for run, member in zip(runs, summaries)},
    }
    configs[0].save(out / "config.yaml")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return summary
