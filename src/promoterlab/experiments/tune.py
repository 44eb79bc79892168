"""Hyperparameter search over a spec's ``search`` space with Optuna (TPE + median pruning).

Every trial is a normal run directory ``OUT/trials/trial-NNNN``; ``trials.csv``/``trials.md``
list every trial's searched values and validation Pearson. The study lives in an Optuna
storage: by default the SQLite file ``OUT/study.db``; any storage URL (e.g. PostgreSQL) lets
workers on several machines share one study. ``n_trials`` counts the trials of the whole study,
so rerunning ``tune`` continues an interrupted search and several workers split the budget.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
import warnings
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import pandas as pd

from promoterlab.experiments.spec import Spec
from promoterlab.experiments.workers import limit_threads, worker_pool
from promoterlab.files import write_text_atomic

HEARTBEAT_SECONDS = 60
# How often a worker whose budget is taken looks again at the trials other workers still run:
# it ends as soon as they finish, not up to a heartbeat later.
POLL_SECONDS = 1.0
MAX_REPEATS = 100  # a worker stops after this many proposals in a row of settings already tried


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


def storage_url(url: str) -> str:
    """The SQLAlchemy URL of an Optuna storage: ``postgresql://`` and ``postgres://`` name the
    psycopg 3 driver (``pip install 'promoterlab[postgres]'``), which SQLAlchemy spells
    ``postgresql+psycopg://``; any other URL (e.g. ``postgresql+psycopg2://``) is kept."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def _shown(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: it has no password field to hide either
        return url


def open_study(spec: Spec, out_dir: Path, storage: str | None = None, sampler_seed: int = 0,
               heartbeat: int = HEARTBEAT_SECONDS) -> optuna.Study:
    """Create or load the spec's study (maximising validation Pearson); quiets Optuna's per-trial log.

    Workers record a heartbeat every ``heartbeat`` seconds while a trial runs; a trial whose
    worker has been silent for ``3 * heartbeat`` seconds (killed, its machine lost) is marked
    FAILED by the next worker that looks, and its parameters are queued to be tried once more.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not storage:  # the default storage lives in out_dir; another one is opened before out_dir is made
        out_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage) if storage else f"sqlite:///{(out_dir / 'study.db').resolve()}"
    if url.startswith("postgresql+psycopg://") and importlib.util.find_spec("psycopg") is None:
        raise ValueError(f"storage {_shown(url)!r}: the PostgreSQL driver is not installed; "
                         f"pip install 'promoterlab[postgres]' (psycopg 3)")
    database = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
    if database is not None and str(database) not in ("", ":memory:") and not database.parent.is_dir():
        problem = "is not a directory" if database.parent.exists() else "does not exist"
        raise ValueError(f"storage {url!r}: cannot create the database there: directory {database.parent} {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            rdb = optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None,
                heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    except Exception as err:  # SQLAlchemy raises its own types for a bad URL or a missing driver
        raise ValueError(f"storage {_shown(url)!r}: cannot open it: {type(err).__name__}: {err}") from None
    return optuna.create_study(
        study_name=spec.name, storage=rdb, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=5),
        pruner=(optuna.pruners.MedianPruner(n_startup_trials=spec.pruning["startup_trials"],
                                            n_warmup_steps=spec.pruning["first_epoch"])
                if spec.pruning else optuna.pruners.NopPruner()))


def trial_counts(study: optuna.Study) -> tuple[int, int, int]:
    """``(finished, running, waiting)`` trials of the study. A failed trial that was queued again
    (its worker died) is not counted: its retry is; nor is one whose values another trial holds
    (two workers may queue the same retry). Nor is a complete trial that repeats an earlier
    complete trial's values: the budget counts distinct settings."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda trial: trial.number)
    retried = {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}
    alive = {_values_key(trial.params) for trial in trials if trial.state != optuna.trial.TrialState.FAIL}
    seen: set[str] = set()
    finished = 0
    for trial in trials:
        if not trial.state.is_finished() or trial.number in retried:
            continue
        key = _values_key(trial.params)
        if trial.state == optuna.trial.TrialState.FAIL and key in alive:
            continue
        if trial.state == optuna.trial.TrialState.COMPLETE:
            if key in seen:
                continue
            seen.add(key)
        finished += 1
    running = sum(trial.state == optuna.trial.TrialState.RUNNING for trial in trials)
    waiting = sum(trial.state == optuna.trial.TrialState.WAITING for trial in trials)
    return finished, running, waiting


def _values_key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def earlier_trial(study: optuna.Study, params: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
    """The first complete trial of the study with exactly these searched values, if any."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.params == params:
            return trial
    return None


def space_size(search: dict[str, dict[str, Any]]) -> float:
    """How many distinct settings a search space holds (``inf`` with a continuous dimension)."""
    size = 1.0
    for space in search.values():
        if "choices" in space:
            size *= len(space["choices"])
        elif isinstance(space.get("low"), int) and isinstance(space.get("high"), int) and not space.get("log"):
            size *= (space["high"] - space["low"]) // int(space.get("step", 1)) + 1
        else:
            return float("inf")
    return size


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_worker(spec: Spec, out_dir: str | Path, n_trials: int, storage: str | None = None,
               sampler_seed: int = 0, threads: int | None = None, heartbeat: int = HEARTBEAT_SECONDS) -> None:
    """Run trials in this process until the study holds ``n_trials`` finished trials.

    A trial starts only while finished + running trials (of every worker) are fewer than
    ``n_trials``, or when a retry is queued. When the budget is taken but other workers' trials
    still run, the worker waits for them: if one of them dies, its retry is run here, so a dead
    worker's trial is never left RUNNING when the last worker ends.

    Training is deterministic, so when the sampler proposes values an earlier trial completed
    with (TPE does, once it exploits a categorical space), the trial takes that trial's value
    without training (user attribute ``duplicate_of``) and does not count: ``n_trials`` means
    distinct settings, at most as many as the space holds. A worker whose sampler proposes only
    repeats :data:`MAX_REPEATS` times in a row stops.
    """
    from promoterlab.training.run import train_model

    if threads:
        limit_threads(threads)
    out = Path(out_dir)
    fixed = fixed_values(spec)
    study = open_study(spec, out, storage, sampler_seed, heartbeat)

    repeats = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal repeats
        params = {key: suggest(trial, key, space) for key, space in spec.search.items()}
        earlier = earlier_trial(study, params)
        if earlier is not None:
            repeats += 1
            trial.set_user_attr("duplicate_of", earlier.number)
            return earlier.value
        repeats = 0
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker_pid", os.getpid())
        summary = train_model(spec.config({**fixed, **params}), run_dir, callbacks=[ReportValPearson(trial)])
        return summary["best_val_pearson"]

    target = min(n_trials, space_size(spec.search))
    while repeats < MAX_REPEATS:
        _fail_stale_trials(study)
        finished, running, waiting = trial_counts(study)
        if waiting or finished + running < target:
            # A failing trial (e.g. diverged training) is recorded as FAILED and the search goes on.
            study.optimize(objective, n_trials=1, catch=(Exception,))
        elif running:
            time.sleep(min(heartbeat, POLL_SECONDS))
        else:
            return
    warnings.warn(f"tune: the sampler proposed only settings already tried, {MAX_REPEATS} times in a row; "
                  f"this worker stops with {finished} distinct settings finished")


def tune(spec: Spec, out_dir: str | Path, n_trials: int, storage: str | None = None, workers: int = 1,
         seed: int = 0, heartbeat: int = HEARTBEAT_SECONDS) -> dict[str, Any]:
    """Search ``spec.search`` with ``workers`` processes; write and return the best trial.

    Parameters
    ----------
    spec : Spec
        Spec with a ``search`` space; every axis has one value.
    out_dir : str or Path
        Receives ``study.db`` (default storage), ``trials/`` and ``best_config.yaml``.
    n_trials : int
        Trials in the study in total (finished, pruned and failed ones count; a repeat of a
        complete trial's values does not), at most the number of settings the space holds.
    storage : str, optional
        Optuna storage URL shared by workers (default: SQLite in ``out_dir``).
    workers : int
        Local worker processes, each with ``cpu_count // workers`` threads and TPE seed
        ``seed + i``; workers elsewhere join by running ``tune`` with the same storage.
    seed : int
        Seed of the first worker's sampler.
    heartbeat : int
        Seconds between a worker's heartbeats; a trial silent for three of them is failed and
        retried once (see :func:`open_study`).

    Returns
    -------
    dict
        ``best_trial.json``: trial number, value, params, run directory and the config path.
    """
    out = Path(out_dir)
    fixed_values(spec)
    created = not out.exists()
    try:
        open_study(spec, out, storage, seed, heartbeat)  # create the study once before workers race to
    except BaseException:
        if created:  # a storage that cannot be opened leaves no empty --out behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    out.mkdir(parents=True, exist_ok=True)  # only once the storage opened
    if workers <= 1:
        run_worker(spec, out, n_trials, storage, seed, heartbeat=heartbeat)
    else:
        with worker_pool(workers) as pool:
            futures = [pool.submit(run_worker, spec, out, n_trials, storage, seed + i, heartbeat=heartbeat)
                       for i in range(workers)]
            wait(futures)
        failed = [future.exception() for future in futures if future.exception() is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} tune worker(s) failed: {failed[0]!r}")
    return write_best(spec, out, open_study(spec, out, storage, seed, heartbeat))


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Every trial of a study with its searched values and validation Pearson, best first
    (repeats of an earlier trial's values, answered without training, are left out).

    Returns
    -------
    pandas.DataFrame
        ``trial``, ``state``, one column per searched key (in search order), ``val_pearson``
        (the best validation Pearson of a complete trial; a pruned trial's best reported epoch,
        NaN for a failed one) and ``epochs`` (epochs reported). Sorting by the searched keys
        gives the table of validation Pearson by setting.
    """
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if "duplicate_of" in trial.user_attrs:  # answered from an earlier trial, not trained
            continue
        reported = trial.intermediate_values
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else (
            max(reported.values()) if reported else float("nan"))
        rows.append({"trial": trial.number, "state": trial.state.name, **trial.params, "val_pearson": value,
                     "epochs": len(reported)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    keys = [c for c in frame.columns if c not in ("trial", "state", "val_pearson", "epochs")]
    frame = frame[["trial", "state", *keys, "val_pearson", "epochs"]]
    return frame.sort_values("val_pearson", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


MAX_SETTING_COLUMNS = 8


def setting_table(trials: pd.DataFrame, categorical: list[str] | None = None) -> pd.DataFrame:
    """Validation Pearson by setting: one row per combination of the searched keys but one, one
    column per value of that one (of the keys with at most :data:`MAX_SETTING_COLUMNS` values, the
    one with the most), the best complete trial's value in each cell (empty: not tried). Pruned
    and failed trials are left out: they did not converge. ``categorical`` (default: every key)
    are the keys searched over a list of choices, the only ones that may go across.
    """
    keys = [c for c in trials.columns if c not in ("trial", "state", "val_pearson", "epochs")]
    done = trials[trials["state"] == "COMPLETE"] if "state" in trials else trials.iloc[:0]
    if done.empty or not keys:
        return pd.DataFrame()
    few = [key for key in keys if done[key].nunique() <= MAX_SETTING_COLUMNS and
           (categorical is None or key in categorical)]
    if not few:
        return done[[*keys, "val_pearson"]].sort_values(keys).reset_index(drop=True)
    across = max(few, key=lambda key: done[key].nunique())
    down = [key for key in keys if key != across]
    best = done.groupby([*down, across])["val_pearson"].max()
    best = best.unstack(across) if down else best.to_frame().T
    best.columns = [f"{across}={value}" for value in best.columns]
    return best.reset_index(drop=not down)


def write_best(spec: Spec, out: Path, study: optuna.Study) -> dict[str, Any]:
    """``best_config.yaml`` (ready for ``promoterlab train --config``), ``best_trial.json`` and
    ``trials.csv``/``trials.md`` (:func:`trials_table`) and ``settings.md`` (:func:`setting_table`)."""
    from promoterlab.experiments.results import markdown_table

    trials = trials_table(study)
    write_text_atomic(out / "trials.csv", trials.to_csv(index=False))
    write_text_atomic(out / "trials.md", markdown_table(trials) + "\n")
    categorical = [key for key, space in spec.search.items() if "choices" in space]
    write_text_atomic(out / "settings.md", markdown_table(setting_table(trials, categorical)) + "\n")
    best = study.best_trial
    config = spec.config({**fixed_values(spec), **best.params})
    config.save(out / "best_config.yaml")
    record = {"number": best.number, "best_val_pearson": best.value, "params": best.params,
              "run_dir": best.user_attrs.get("run_dir"), "config": str(out / "best_config.yaml"),
              "trials": len(study.trials),
              "distinct_settings_finished": trial_counts(study)[0],
              "repeats_not_trained": sum("duplicate_of" in t.user_attrs for t in study.trials),
              "states": {state.name: sum(t.state == state for t in study.trials)
                         for state in optuna.trial.TrialState}}
    write_text_atomic(out / "best_trial.json", json.dumps(record, indent=2))
    return record
