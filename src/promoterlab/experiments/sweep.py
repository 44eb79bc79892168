"""Run the grid of a spec, resumably, one run directory per combination of axis values.

A run is finished when its ``summary.json`` exists (and, with a test set, ``test_metrics.json``,
and with a DREAM public leaderboard, ``dream_score.json``);
rerunning a sweep skips finished runs and resumes unfinished ones from ``last.ckpt``, which
training writes after every epoch, so a run killed at any moment (even ``kill -9``) loses at
most the epoch in progress. A run directory is locked while a process trains in it, so
several sweeps over one folder (e.g. on several machines sharing a disk) never train the same
run twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from filelock import FileLock, Timeout

from promoterlab.config import RunConfig
from promoterlab.experiments.spec import HeldOutSet, Spec
from promoterlab.experiments.workers import worker_pool
from promoterlab.files import write_text_atomic
from promoterlab.runs import AXES, DREAM_SCORE, LOCK, SUMMARY, TEST_METRICS, TEST_PREDICTIONS, saved_config_matches
from promoterlab.training.hardware import resolve_train_config


@dataclass
class RunOutcome:
    """What happened to one run of a sweep: ``trained``, ``skipped`` (finished before) or ``busy``
    (another process holds it), or ``failed`` with the error message."""

    name: str
    status: str
    message: str = ""


def is_finished(run_dir: Path, config: RunConfig, test: HeldOutSet | None) -> bool:
    """Whether ``run_dir`` holds a complete run of ``config`` (and its test evaluation, if a test
    set is given).

    Raises
    ------
    ValueError
        When ``run_dir`` holds a run of another config (e.g. an earlier sweep with another
        budget), which must not be counted as this one.
    """
    if not saved_config_matches(run_dir, config):
        raise ValueError(f"{run_dir}: holds a run with a different config (another budget or spec?); "
                         "remove it or sweep into another folder")
    needed = [SUMMARY] + ([] if test is None else [TEST_METRICS])
    if test is not None and test.dream_leaderboard:
        needed.append("dream_score.json")
    return all((run_dir / name).exists() for name in needed)


def run_sweep(spec: Spec, out_dir: str | Path, workers: int = 1, progress: bool = False,
              only: dict[str, list[str]] | None = None) -> list[RunOutcome]:
    """Train every unfinished run of ``spec``'s grid under ``out_dir``.

    Parameters
    ----------
    spec : Spec
        Parsed spec (:func:`promoterlab.experiments.spec.load_spec`).
    out_dir : str or Path
        Sweep folder; receives ``spec.yaml`` (resolved spec) and one folder per run.
    workers : int
        Runs trained at once, each in its own process with ``cpu_count // workers`` threads.
    progress : bool
        Print one line per run as it finishes.
    only : dict, optional
        Train just the runs whose axis values are among these (axis → values as text), e.g.
        ``{"seed": ["0"]}``: a slice of the grid, for one machine of several or a small budget.

    Returns
    -------
    list of RunOutcome
        One per run of the grid, in grid order.
    """
    grid = select(spec, only or {})
    missing = missing_inputs(spec, grid)
    if missing:  # before any folder exists
        raise FileNotFoundError(f"{len(missing)} input(s) of spec {spec.name} not found: {', '.join(missing[:3])}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "spec.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False))
    outcomes: dict[str, RunOutcome] = {}
    todo = []
    for name, values, config in grid:
        try:
            finished = is_finished(out / name, config, spec.test)
        except ValueError as err:
            outcomes[name] = RunOutcome(name, "failed", str(err))
            continue
        if finished:
            outcomes[name] = RunOutcome(name, "skipped")
        else:
            todo.append((name, values, config))

    def record(outcome: RunOutcome) -> None:
        outcomes[outcome.name] = outcome
        if progress:
            print(f"[{len(outcomes)}/{len(grid)}] {outcome.name}: {outcome.status} {outcome.message}".rstrip(),
                  flush=True)

    if workers <= 1 or len(todo) <= 1:
        for name, values, config in todo:
            record(run_one(out / name, values, config, spec.test))
    else:
        with worker_pool(workers) as pool:
            futures = {pool.submit(run_one, out / name, values, config, spec.test): name
                       for name, values, config in todo}
            for future in as_completed(futures):
                try:
                    record(future.result())
                except Exception as err:  # a worker process died
                    record(RunOutcome(futures[future], "failed", repr(err)))
    return [outcomes[name] for name, _, _ in grid]


def missing_inputs(spec: Spec, selected: list[tuple[str, dict[str, Any], RunConfig]]) -> list[str]:
    """Data, test and DREAM leaderboard paths that the ``selected`` runs read and that do not exist."""
    paths = {config.data.path for _, _, config in selected} | {config.data.test_path for _, _, config in selected}
    if spec.test is not None:
        paths.update(path for path in (spec.test.path, spec.test.dream_leaderboard) if path)
    return sorted(str(path) for path in paths if path and not Path(path).exists())


def select(spec: Spec, only: dict[str, list[str]]) -> list[tuple[str, dict[str, Any], RunConfig]]:
    """The runs of ``spec.grid()`` whose axis values are in ``only`` (compared as text)."""
    for key, values in only.items():
        if key not in spec.axes:
            raise ValueError(f"--only {key}: not an axis of the spec ({', '.join(spec.axes)})")
        unknown = set(values) - {str(v) for v in spec.axes[key]}
        if unknown:
            raise ValueError(f"--only {key}: {sorted(unknown)} not among its values {spec.axes[key]}")
    return [run for run in spec.grid() if all(str(run[1][key]) in values for key, values in only.items())]


def run_one(run_dir: Path, values: dict[str, Any], config: RunConfig, test: HeldOutSet | None) -> RunOutcome:
    """Train (or resume) one run and evaluate it on the test set; never raises on a bad run."""
    from promoterlab.training.train import train

    name = run_dir.name
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir) as acquired:
        if not acquired:
            return RunOutcome(name, "busy", "another process is training this run")
        try:
            if is_finished(run_dir, config, test):
                return RunOutcome(name, "skipped")
            write_text_atomic(run_dir / AXES, json.dumps(values, indent=2))
            if not (run_dir / SUMMARY).exists():
                train(config, run_dir, resume=True)
            if test is not None:
                eval_batch_size = resolve_train_config(config.train, 0).eval_batch_size
                write_test_evaluation(run_dir, test, eval_batch_size, _eval_device(config))
        except Exception as err:
            return RunOutcome(name, "failed", f"{type(err).__name__}: {err}")
    return RunOutcome(name, "trained")


def write_test_evaluation(run_dir: Path, test: HeldOutSet, batch_size: int = 128,
                          device: str = "cpu") -> dict[str, float]:
    """``test_predictions.tsv`` (index, target, prediction) and ``test_metrics.json`` of a run,
    and with ``test.dream_leaderboard`` its official DREAM scores (:func:`write_dream_score`)."""
    from promoterlab.evaluation.stream import measured_predictions
    from promoterlab.evaluation.metrics import regression_metrics

    frame = measured_predictions(run_dir, test.path, test.seq_col, test.target_col, batch_size, device)
    write_text_atomic(run_dir / TEST_PREDICTIONS, frame.to_csv(sep="\t", index=False))
    if test.dream_leaderboard:
        write_dream_score(run_dir, frame, test.path, test.dream_leaderboard)
    metrics = regression_metrics(frame["prediction"].to_numpy(), frame["target"].to_numpy())
    write_text_atomic(run_dir / TEST_METRICS, json.dumps(metrics, indent=2))
    return metrics


def write_dream_score(run_dir: Path, frame: pd.DataFrame, measured_path: str | Path,
                      leaderboard_dir: str | Path) -> dict[str, Any]:
    """The official DREAM 2022 scores of a run's test predictions, as ``dream_score.json``.

    Parameters
    ----------
    run_dir : Path
        Run folder the file is written to.
    frame : pandas.DataFrame
        Predictions of the measured rows of ``measured_path`` in file order
        (:func:`promoterlab.evaluation.stream.measured_predictions`).
    measured_path : str or Path
        The official ``seq<TAB>expr`` test file (row index = position; ``nan`` where unmeasured).
    leaderboard_dir : str or Path
        The ``public_leaderboard_ids`` folder whose JSONs are the truth of the public score.

    Returns
    -------
    dict
        :meth:`promoterlab.evaluation.dream.DreamScore.to_dict` (``pearson_score``,
        ``spearman_score``, per-subset rows).

    Raises
    ------
    ValueError
        When the measured rows of ``measured_path`` are not the rows of ``frame``.
    """
    from promoterlab.evaluation.dream import load_truth, read_measured, score

    values, _, _ = read_measured(measured_path)
    positions = list(values)  # measured rows in file order, as the predictions are
    lined_up = len(positions) == len(frame) and np.allclose(
        [values[pos] for pos in positions], frame["target"].to_numpy(np.float64), rtol=1e-5, atol=1e-6)
    if not lined_up:
        raise ValueError(f"{measured_path}: its {len(positions)} measured rows are not the {len(frame)} rows of "
                         f"{run_dir}'s test predictions; is it the official seq<TAB>expr test file?")
    result = score(dict(zip(positions, frame["prediction"].to_numpy(np.float64))), load_truth(leaderboard_dir))
    data = result.to_dict()
    write_text_atomic(run_dir / DREAM_SCORE, json.dumps(data, indent=2))
    return data


@contextmanager
def _locked(run_dir: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock on ``run_dir/.lock``; released when the process dies.

    The lock file is kept on release: removing it would let a process that opened it before the
    removal and one that creates it anew both hold "the" lock. Keeping it also makes filelock
    refuse rather than fall back to a soft lock (which ``kill -9`` would leave behind) on a
    file system without ``flock``.
    """
    lock = FileLock(run_dir / LOCK, preserve_lock_file=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _eval_device(config: RunConfig) -> str:
    """Where to predict the test set: the run's GPU when it trained on one, else the CPU."""
    import torch

    on_gpu = config.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "cuda" if on_gpu else "cpu"
