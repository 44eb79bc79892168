"""How far a sweep has got: every run of its grid, finished, in progress or not started.

A sweep writes its resolved spec to ``spec.yaml`` in its folder, so the grid a partial sweep
still lacks is known without the original spec file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from promoterlab.experiments.spec import run_name
from promoterlab.files import InputError, read_yaml
from promoterlab.runs import DREAM_SCORE, METRICS, SUMMARY, TEST_METRICS

PROGRESS_COLUMNS = ["run", "status", "epochs_done"]


def sweep_progress(sweep_dir: str | Path) -> pd.DataFrame:
    """The state of every run of the grid of the sweep in ``sweep_dir``.

    Parameters
    ----------
    sweep_dir : str or Path
        A folder written by :func:`promoterlab.experiments.sweep.run_sweep` (holding ``spec.yaml``).

    Returns
    -------
    pandas.DataFrame
        ``run``, ``status`` and ``epochs_done`` (rows of its ``metrics.csv``), in grid order.
        ``status`` is ``finished`` (trained and, with a test set, evaluated), ``not evaluated``
        (trained, test evaluation missing), ``in progress`` (epochs logged, not finished: training
        now, or interrupted and resumable) or ``not started``.

    Raises
    ------
    ValueError
        When ``sweep_dir`` holds no readable ``spec.yaml``.
    """
    folder = Path(sweep_dir)
    path = folder / "spec.yaml"
    try:
        spec = read_yaml(path) or {}
        axes = {key: list(values) for key, values in (spec.get("axes") or {}).items()}
    except InputError as err:  # "PATH[:LINE]: what was found"
        raise ValueError(f"{path}: not a sweep's spec ({str(err).split(': ', 1)[-1]})") from None
    except (AttributeError, TypeError) as err:
        raise ValueError(f"{path}: not a sweep's spec ({err})") from None
    test = spec.get("test") or {}
    needed = [TEST_METRICS] if test else []
    needed += [DREAM_SCORE] if test.get("dream_leaderboard") else []
    rows = []
    for combo in itertools.product(*axes.values()):
        run_dir = folder / run_name(dict(zip(axes, combo)))
        metrics = run_dir / METRICS
        epochs = len(pd.read_csv(metrics)) if metrics.exists() and metrics.stat().st_size else 0
        if (run_dir / SUMMARY).exists():
            status = "finished" if all((run_dir / name).exists() for name in needed) else "not evaluated"
        else:
            status = "in progress" if epochs else "not started"
        rows.append({"run": run_dir.name, "status": status, "epochs_done": epochs})
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)
