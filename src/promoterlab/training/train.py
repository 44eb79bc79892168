"""Train one model or an ensemble, as the config says; an ensemble is K seeds of one config in
``RUN/seed=S/``, with the ensemble's own ``config.yaml``, ``summary.json``, figures and model card.

The members share one split (the first seed's, ``DataConfig.split_seed``) and differ in
initialisation, batch order and augmentation draws, so the ensemble is validated and tested on
sequences that none of its members trained on. The ensemble's ``config.yaml`` is written before
its first member trains (``train.ensemble`` = K): a folder whose summary is missing is an
unfinished ensemble, which :class:`~promoterlab.runs.Run` refuses until the same command has
finished it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import Callback

from promoterlab.config import RunConfig, time_budget
from promoterlab.data.dataset import load_split
from promoterlab.data.readers import read_table
from promoterlab.data.splits import test_rows, val_rows
from promoterlab.data.store_batches import STORE_AUTO_BYTES
from promoterlab.evaluation.calibration import calibrate_run
from promoterlab.evaluation.ensemble import calibration, ensemble_predict, weak_members
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.evaluation.plots import plot_curves, plot_val_scatter
from promoterlab.files import atomic_path
from promoterlab.objective import Objective
from promoterlab.runs import (CONFIG, CURVES, LAST_CHECKPOINT, METRICS, MODEL, SPLIT, VAL_SCATTER, Run, member_dir,
                              saved_config_matches)
from promoterlab.training.outcome import (test_report, test_set, write_model_card, write_summary,
                                          write_test_predictions)
from promoterlab.training.plan import took_line
from promoterlab.training.run import train_model
from promoterlab.training.transfer import resolve_transfer

log = logging.getLogger("promoterlab")

# The small-data default (BENCHMARKS.md "Small data"): of EvoAug, EMA, SWA and ensembles, only
# an ensemble improved test Pearson on both DREAM-5120 and native-10,240 (3 models: +0.007 and
# +0.015, paired CIs above 0), and it gives each prediction an sd.
SMALL_TRAINING_SET = 20_480  # sequences: the largest training size of the small-data studies
SMALL_DATA_ENSEMBLE = 3


def default_ensemble_size(config: RunConfig) -> int:
    """The number of models ``train.ensemble: auto`` trains: :data:`SMALL_DATA_ENSEMBLE` for a
    training set of at most :data:`SMALL_TRAINING_SET` sequences, 1 for larger sets and for runs
    with a time budget (``max_time``, which an ensemble would exceed K-fold).

    The size is ``data.train_size`` or, without it, the rows of the table less the held-out
    rows (a table of :data:`STORE_AUTO_BYTES` or more, some 250,000 rows, counts as large unread).
    The default time budget (``max_time: auto``) is shared by the ensemble's models.
    """
    if config.train.ensemble != "auto":
        return int(config.train.ensemble)
    if config.train.max_time not in (None, "auto"):  # a budget given: one model gets all of it
        return 1
    n_train = config.data.train_size
    if n_train is None:
        path = Path(config.data.path)
        if path.stat().st_size >= STORE_AUTO_BYTES:
            return 1
        data = config.data
        n = len(read_table(path, data.seq_col, data.target_col, data.group_col, drop_missing=data.drop_missing))
        n_test = 0 if data.test_path else test_rows(data.test_size, n)
        n_train = n - n_test - val_rows(data.val_size, n)
    return SMALL_DATA_ENSEMBLE if n_train <= SMALL_TRAINING_SET else 1


def train(config: RunConfig, out_dir: str | Path, progress: bool = False, resume: bool = True,
          overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> dict:
    """Train ``config`` into ``out_dir``: one model (:func:`~promoterlab.training.run.train_model`)
    or, when ``train.ensemble`` is or resolves to more than one, :func:`train_ensemble`. A folder
    that already holds a single run is resumed as one. ``callbacks`` (Lightning) go to every model."""
    config = resolve_transfer(config)  # as each model resolves it, so that the ensemble's saved config matches
    single_run = any((Path(out_dir) / name).exists() for name in (MODEL, LAST_CHECKPOINT))
    k = 1 if single_run and config.train.ensemble == "auto" else default_ensemble_size(config)
    if k > 1:
        return train_ensemble(config, out_dir, k, progress=progress, resume=resume, overwrite=overwrite,
                              callbacks=callbacks)
    single = dataclasses.replace(config, train=dataclasses.replace(config.train, ensemble=1))
    return train_model(single, out_dir, progress=progress, resume=resume, overwrite=overwrite, callbacks=callbacks)


def member_configs(config: RunConfig, k: int) -> list[RunConfig]:
    """The configs of a ``k``-member ensemble: seeds ``seed .. seed + k - 1`` on the split of ``seed``
    (or of ``config.data.split_seed`` when set), each a single model with a ``k``-th of the time
    budget (:func:`~promoterlab.config.time_budget`)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"ensemble: the number of models must be a whole number >= 2, got {k!r}")
    split_seed = config.seed if config.data.split_seed is None else config.data.split_seed
    data = dataclasses.replace(config.data, split_seed=split_seed)
    budget = time_budget(config.train)
    single = dataclasses.replace(config.train, ensemble=1, max_time=None if budget is None else round(budget / k, 4))
    return [dataclasses.replace(config, seed=config.seed + i, data=data, train=single) for i in range(k)]


def train_ensemble(config: RunConfig, out_dir: str | Path, k: int, progress: bool = False, resume: bool = True,
                   overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> dict:
    """Train ``k`` members of ``config`` into ``out_dir/seed=S/`` and write the ensemble's files.

    Each member is an ordinary model run (an interrupted ensemble resumes member by member). The
    ensemble's ``summary.json`` holds every member's summary and, on the shared validation set
    with the singleton channel 0 (as at prediction), the members' Pearson and Spearman, the
    ensemble mean's and the :func:`~promoterlab.evaluation.ensemble.calibration` of its sd; and
    the same on the held-out test set (``test``, ``members_test_pearson``).

    Returns
    -------
    dict
        The contents of ``out_dir/summary.json`` (empty on a non-zero rank of a distributed run).
    """
    out = Path(out_dir)
    configs = member_configs(config, k)
    planned = dataclasses.replace(configs[0], seed=config.seed, train=dataclasses.replace(config.train, ensemble=k))
    _check_data(configs[0])  # before anything is written
    _prepare_ensemble_folder(out, planned, overwrite)
    runs = [member_dir(out, member.seed) for member in configs]
    summaries = []
    start = time.perf_counter()
    for i, run in enumerate(runs):
        log.info(f"ensemble member {i + 1} of {k}: {run}")
        member = configs[i] if i == 0 else _like_the_first(configs[i], runs[0])
        summaries.append(train_model(member, run, progress=progress, resume=resume, overwrite=overwrite,
                                     callbacks=callbacks, estimate_for=k if i == 0 else 0))
    if not all(summaries):  # a non-zero rank of a distributed run: rank 0 writes the ensemble's files
        return {}
    saved = Run.open(runs).configs()[0]
    resolved = dataclasses.replace(saved, seed=config.seed, train=dataclasses.replace(saved.train, ensemble=k))
    summary = _evaluate_ensemble(out, resolved, configs, runs, summaries)
    resolved.save(out / CONFIG)
    write_summary(out, summary)
    write_model_card(out, resolved, summary, [run.name for run in runs])
    test = summary.get("test") or {}
    estimate = summaries[0].get("estimated_seconds")
    log.info(took_line(time.perf_counter() - start, k * estimate if estimate else None))
    log.info(f"ensemble of {k}: val Pearson {summary['val_pearson']:.4f} (flag 0)"
             + (f"; test Pearson {test['pearson']:.4f} [{test['pearson_ci95'][0]:.3f}, {test['pearson_ci95'][1]:.3f}]"
                f" (n {test['n']:,}); members {', '.join(f'{r:.3f}' for r in summary['members_test_pearson'])}"
                if test else "") + f"; ensemble folder: {out}")
    return summary


def _like_the_first(config: RunConfig, first: Path) -> RunConfig:
    """A later member at the width the time budget chose for the first (read from its saved
    config), so that the ensemble's models share an architecture."""
    if not (config.train.max_time and config.train.fit_width and config.train.epochs == "auto"):
        return config
    width = RunConfig.load(first / CONFIG).model.width
    return dataclasses.replace(config, model=dataclasses.replace(config.model, width=width),
                               train=dataclasses.replace(config.train, fit_width=False))


def _check_data(config: RunConfig) -> None:
    """Raise what training would raise on the data of ``config`` (its split, its targets)."""
    split = load_split(config.data, config.seed)
    Objective.of(config).check_targets(split.train.targets, str(config.data.path))


def _prepare_ensemble_folder(out: Path, planned: RunConfig, overwrite: bool) -> None:
    """Refuse a folder holding a single run or another ensemble (unless ``overwrite``); record the
    planned ensemble in its ``config.yaml`` before any member trains."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if (out / MODEL).exists():
        raise ValueError(f"{out}: holds a single run; an ensemble needs a folder of its own")
    if not saved_config_matches(out, planned) and not overwrite:
        raise ValueError(f"{out}: holds an ensemble of a different config; choose another --out, or pass "
                         "--overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONFIG).exists() or overwrite:
        planned.save(out / CONFIG)


def _evaluate_ensemble(out: Path, config: RunConfig, configs: list[RunConfig], runs: list[Path],
                       summaries: list[dict]) -> dict:
    """Validation and test metrics of the ensemble and its members; the ensemble's figures and test predictions."""
    members = Run.open(runs).load_members()
    split = load_split(configs[0].data, configs[0].seed)
    batch = members[0][1].train.eval_batch_size
    y = split.val.targets.numpy().astype(np.float64)
    val = ensemble_predict(members, split.val.codes, batch_size=batch)
    member_r = [pearson(values, y) for values in val.members]
    summary = {
        "n_models": len(runs),
        "seeds": [member.seed for member in configs],
        "split_seed": configs[0].data.split_seed,
        "train_size": len(split.train),
        "val_size": len(y),
        "val_pearson": pearson(val.mean, y),
        "val_spearman": spearman(val.mean, y),
        "members_val_pearson": member_r,
        "members_val_pearson_mean": float(np.mean(member_r)),
        "weak_members": [runs[i].name for i in weak_members(member_r)],
        "val_calibration": calibration(y, val.mean, val.sd),
        "note": "validation and test inputs with the singleton channel 0, as at prediction",
        "params": summaries[0].get("params"),
        "train_seconds": round(sum(s.get("train_seconds", 0.0) for s in summaries), 2),
    }
    for i in weak_members(member_r):
        others = np.median(np.delete(np.asarray(member_r), i))
        log.warning(f"warning: ensemble member {runs[i]}: val Pearson {member_r[i]:.3f}, far below the others' "
                    f"{others:.3f}: it did not learn, and the ensemble's mean averages it in. Predict with the other "
                    f"members (a list of their folders or a quoted glob), or train again with another --seed or a "
                    f"lower --lr")
    plot_val_scatter(val.mean, y, out / VAL_SCATTER, title=f"validation (ensemble of {len(runs)})")
    plot_curves({run.name: pd.read_csv(run / METRICS) for run in runs}, out / CURVES)
    held_out = test_set(config, split)
    if held_out is not None:
        test, source = held_out
        result = ensemble_predict(members, test.codes, batch_size=batch)
        write_test_predictions(out, test, result.mean, result.sd)
        summary["test"] = test_report(result.mean, test, source)
        summary["test_calibration"] = calibration(test.targets.numpy(), result.mean, result.sd)
        summary["members_test_pearson"] = [(s.get("test") or {}).get("pearson") for s in summaries]
    summary.update(calibrate_run(out, members, split.val, held_out[0] if held_out else None, batch))
    summary["members"] = {run.name: member for run, member in zip(runs, summaries)}
    with atomic_path(out / SPLIT) as tmp:
        tmp.write_bytes((runs[0] / SPLIT).read_bytes())
    return summary
