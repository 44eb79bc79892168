"""Hyperparameter search over a spec's ``search`` space with Optuna (TPE + median pruning).

Every trial is a normal run directory ``OUT/trials/trial-NNNN``. The study lives in an Optuna
storage: by default the SQLite file ``OUT/study.db``; any storage URL (e.g. PostgreSQL) lets
workers on several machines share one study. ``n_trials`` counts the trials of the whole study,
so rerunning ``tune`` continues an interrupted search and several workers split the budget.
"""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import lightning as L
import optuna

from promoterlab.experiments.spec import Spec
from promoterlab.experiments.workers import limit_threads, worker_pool
from promoterlab.files import write_text_atomic


class ReportValPearson(L.Callback):
    """Reports each epoch's validation Pearson to an Optuna trial and prunes it when told to."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_pearson")
        if value is None:
            return
        self.trial.report(float(value), step=trainer.current_epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {trainer.current_epoch + 1}")


def suggest(trial: optuna.Trial, key: str, space: dict[str, Any]) -> Any:
    """One value of a search dimension: ``{choices: [...]}`` or ``{low, high[, log, step]}``."""
    if "choices" in space:
        return trial.suggest_categorical(key, list(space["choices"]))
    try:
        low, high = space["low"], space["high"]
    except KeyError:
        raise ValueError(f"search {key!r}: give 'choices' or 'low' and 'high', not {space}") from None
    if isinstance(low, int) and isinstance(high, int) and not space.get("log"):
        return trial.suggest_int(key, low, high, step=int(space.get("step", 1)))
    return trial.suggest_float(key, float(low), float(high), log=bool(space.get("log", False)),
                               step=space.get("step"))


def fixed_values(spec: Spec) -> dict[str, Any]:
    """The single value of every axis (model, data size, seed) a search runs at."""
    many = [key for key, values in spec.axes.items() if len(values) != 1]
    if many:
        raise ValueError(f"tune searches the 'search' space; axes {many} must have one value each")
    if not spec.search:
        raise ValueError("the spec has no 'search' space to tune")
    return {key: values[0] for key, values in spec.axes.items()}


def open_study(spec: Spec, out_dir: Path, storage: str | None = None, sampler_seed: int = 0) -> optuna.Study:
    """Create or load the spec's study (maximising validation Pearson); quiets Optuna's per-trial log."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    # A worker killed mid-trial stops its heartbeat; the next trial start marks that trial failed
    # and queues its parameters once more, so a dead machine does not leave a trial RUNNING forever.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            rdb = optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None,
                heartbeat_interval=60, grace_period=180,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    except Exception as err:  # SQLAlchemy raises its own types for a bad URL or a missing driver
        raise ValueError(f"storage {url!r}: cannot open it: {type(err).__name__}: {err}") from None
    return optuna.create_study(
        study_name=spec.name, storage=rdb, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))


def run_worker(spec: Spec, out_dir: str | Path, n_trials: int, storage: str | None = None,
               sampler_seed: int = 0, threads: int | None = None) -> None:
    """Run trials in this process until the study holds ``n_trials`` trials."""
    from promoterlab import api

    if threads:
        limit_threads(threads)
    out = Path(out_dir)
    fixed = fixed_values(spec)
    study = open_study(spec, out, storage, sampler_seed)

    def objective(trial: optuna.Trial) -> float:
        params = {key: suggest(trial, key, space) for key, space in spec.search.items()}
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker_pid", os.getpid())
        summary = api.train(spec.config({**fixed, **params}), run_dir, callbacks=[ReportValPearson(trial)])
        return summary["best_val_pearson"]

    already = len(study.get_trials(deepcopy=False))
    if already < n_trials:
        stop = optuna.study.MaxTrialsCallback(n_trials, states=None)
        # A failing trial (e.g. diverged training) is recorded as FAILED and the search goes on.
        study.optimize(objective, n_trials=n_trials - already, callbacks=[stop], catch=(Exception,))


def tune(spec: Spec, out_dir: str | Path, n_trials: int, storage: str | None = None, workers: int = 1,
         seed: int = 0) -> dict[str, Any]:
    """Search ``spec.search`` with ``workers`` processes; write and return the best trial.

    Parameters
    ----------
    spec : Spec
        Spec with a ``search`` space; every axis has one value.
    out_dir : str or Path
        Receives ``study.db`` (default storage), ``trials/`` and ``best_config.yaml``.
    n_trials : int
        Trials in the study in total (finished, pruned and failed ones count).
    storage : str, optional
        Optuna storage URL shared by workers (default: SQLite in ``out_dir``).
    workers : int
        Local worker processes, each with ``cpu_count // workers`` threads and TPE seed
        ``seed + i``; workers elsewhere join by running ``tune`` with the same storage.
    seed : int
        Seed of the first worker's sampler.

    Returns
    -------
    dict
        ``best_trial.json``: trial number, value, params, run directory and the config path.
    """
    out = Path(out_dir)
    fixed_values(spec)
    open_study(spec, out, storage, seed)  # create the study once before workers race to
    if workers <= 1:
        run_worker(spec, out, n_trials, storage, seed)
    else:
        with worker_pool(workers) as pool:
            futures = [pool.submit(run_worker, spec, out, n_trials, storage, seed + i) for i in range(workers)]
            wait(futures)
        failed = [future.exception() for future in futures if future.exception() is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} tune worker(s) failed: {failed[0]!r}")
    return write_best(spec, out, open_study(spec, out, storage, seed))


def write_best(spec: Spec, out: Path, study: optuna.Study) -> dict[str, Any]:
    """``best_config.yaml`` (ready for ``promoterlab train --config``) and ``best_trial.json``."""
    best = study.best_trial
    config = spec.config({**fixed_values(spec), **best.params})
    config.save(out / "best_config.yaml")
    record = {"number": best.number, "best_val_pearson": best.value, "params": best.params,
              "run_dir": best.user_attrs.get("run_dir"), "config": str(out / "best_config.yaml"),
              "trials": len(study.trials),
              "states": {state.name: sum(t.state == state for t in study.trials)
                         for state in optuna.trial.TrialState}}
    write_text_atomic(out / "best_trial.json", json.dumps(record, indent=2))
    return record
