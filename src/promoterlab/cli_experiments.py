"""Command line of experiments: ``sweep``, ``tune``, ``results`` and ``report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from promoterlab.cli_data import _check_folder, _check_input, _check_output, _fail, _quiet_lightning, _terminal

if TYPE_CHECKING:
    from promoterlab.experiments.spec import Spec

BUDGET_HELP = "Named budget of the spec (e.g. small: fewer epochs, smaller width for a CPU)."


def _default_folder(spec: Spec, suffix: str = "") -> Path:
    """``runs/<spec name>[-<budget>][suffix]``: runs of different budgets never share a folder."""
    return Path("runs") / f"{spec.name}{'-' + spec.budget if spec.budget else ''}{suffix}"


def _only(items: list[str]) -> dict[str, list[str]]:
    """``["seed=0,1", "model=legnet"]`` -> ``{"seed": ["0", "1"], "model": ["legnet"]}``."""
    chosen = {}
    for item in items:
        key, sep, values = item.partition("=")
        chosen[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not chosen[key.strip()]:
            _fail(f"--only {item!r}: expected AXIS=VALUE[,VALUE...], e.g. --only seed=0,1")
    return chosen


def _spec(path: Path, budget: Optional[str]) -> Spec:
    from promoterlab.experiments.spec import load_spec

    try:
        return load_spec(path, budget)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="Experiment spec with axes."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Sweep folder (default runs/<spec name>[-<budget>])."),
    budget: Optional[str] = typer.Option(None, help=BUDGET_HELP),
    workers: int = typer.Option(1, min=1, help="Runs trained at once on this machine."),
    only: list[str] = typer.Option([], help="AXIS=V1,V2: train only this slice of the grid (repeatable)."),
) -> None:
    """Train every combination of a spec's axes; rerun to resume (finished runs are skipped)."""
    chosen = _only(only)
    if out is not None:
        _check_folder(out, "--out")
    spec = _spec(spec_path, budget)  # a bad spec fails here, before any folder or lock exists
    folder = out or _default_folder(spec)
    _check_folder(folder, "--out")
    from promoterlab.experiments.sweep import run_sweep, select

    try:
        n_runs = len(select(spec, chosen))
    except ValueError as err:
        _fail(str(err))
    typer.echo(f"sweep {spec.name}: {n_runs} of {len(spec.grid())} runs in {folder}", err=True)
    with _terminal(quiet=False):
        _quiet_lightning()
        try:
            outcomes = run_sweep(spec, folder, workers=workers, progress=True, only=chosen)
        except OSError as err:  # the sweep folder itself (each run's errors are its outcome)
            _fail(err)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {status: sum(o.status == status for o in outcomes) for status in ("trained", "skipped", "busy", "failed")}
    typer.echo(json.dumps(counts))
    if failed:
        _fail("; ".join(f"{o.name}: {o.message}" for o in failed))


def tune(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="Experiment spec with a search space."),
    trials: int = typer.Option(..., min=1, help="Distinct settings to try in all (a rerun continues)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/<spec name>[-<budget>]-tune)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL shared by workers (default SQLite in --out)."),
    budget: Optional[str] = typer.Option(None, help=BUDGET_HELP),
    workers: int = typer.Option(1, min=1, help="Worker processes on this machine."),
    seed: int = typer.Option(0, help="Seed of the TPE sampler (worker i uses seed + i); give each machine "
                                     "sharing a --storage its own, e.g. 0, 100, 200."),
    heartbeat: int = typer.Option(60, min=1, help="Seconds between a worker's heartbeats; a trial silent for 3 "
                                                  "heartbeats (its worker died) is marked failed and run again."),
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning on per-epoch val Pearson)."""
    if out is not None:
        _check_folder(out, "--out")
    spec = _spec(spec_path, budget)
    if not spec.search:
        _fail(f"{spec_path}: the spec has no search space (a 'search' section) to tune")
    folder = out or _default_folder(spec, "-tune")
    _check_folder(folder, "--out")
    from promoterlab.experiments.tune import tune as run_tune

    with _terminal(quiet=False):
        _quiet_lightning()
        try:
            best = run_tune(spec, folder, trials, storage=storage, workers=workers, seed=seed, heartbeat=heartbeat)
        except (ValueError, RuntimeError, OSError) as err:
            _fail(err)
    typer.echo(json.dumps(best, indent=2))
    typer.echo(f"train the best config with: promoterlab train --config {best['config']} --out DIR", err=True)


def results(
    runs_dir: Path = typer.Argument(..., help="Folder of runs (a sweep's --out)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where the tables go (default RUNS_DIR)."),
    baseline: str = typer.Option("legnet", help="Value of --model-axis every other value is compared with."),
    model_axis: str = typer.Option("model", help="Axis whose values are compared (e.g. model.rho)."),
    figures: bool = typer.Option(False, help="Also write every figure (PNG and SVG) to OUT/figures."),
) -> None:
    """One table per configuration (mean, sd, 95 % CI over seeds) and paired comparisons with the baseline."""
    _check_input(runs_dir, kind="folder")
    folder = out or runs_dir
    _check_folder(folder, "--out")  # the tables go into RUNS_DIR by default: it must be writable
    from promoterlab.experiments import results as res

    try:
        runs, summary, comparison = res.analyse(runs_dir, baseline, model_axis)
        written = res.write_tables(summary, comparison, folder)
        if figures:
            from promoterlab.experiments.figures import write_figures

            written += write_figures(runs, summary, folder / "figures", model_axis=model_axis)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo(res.markdown_table(summary))
    if len(comparison):
        typer.echo("\n" + res.markdown_table(comparison))
    typer.echo(f"wrote {len(written)} files to {folder}", err=True)


def report(
    runs_dirs: list[str] = typer.Argument(..., metavar="RUNS_DIR...", help="Folder of runs (a sweep's --out), or "
                                          "several sweeps as NAME=DIR, e.g. native=runs/a DREAM=runs/b "
                                          "(NAME becomes the axis 'dataset')."),
    output: Path = typer.Option(..., "--output", "-o", help="report.html (self-contained) or report.md."),
    baseline: str = typer.Option("legnet", help="Value of --model-axis every other value is compared with."),
    model_axis: str = typer.Option("model", help="Axis whose values are compared (e.g. model.rho)."),
    run_curves: bool = typer.Option(True, help="Include every run's own loss and Pearson curves."),
    intro: Optional[Path] = typer.Option(None, help="Markdown file whose text opens the report."),
) -> None:
    """Tables and figures of a runs folder (or of several sweeps) in one file a person can open."""
    named = dict(item.partition("=")[::2] for item in runs_dirs)
    if len(runs_dirs) > 1 or "=" in runs_dirs[0]:
        if any(not name or not folder for name, folder in named.items()) or len(named) < len(runs_dirs):
            _fail("several sweeps are given as NAME=DIR with distinct names, e.g. native=runs/a DREAM=runs/b")
        runs_dir = {name: Path(folder) for name, folder in named.items()}
    else:
        runs_dir = Path(runs_dirs[0])
    inputs = list(runs_dir.values()) if isinstance(runs_dir, dict) else [runs_dir]
    if output.parent.is_dir():  # a missing folder is created, as for the figures beside the report
        _check_output(output, [*inputs, intro])
    else:
        _check_folder(output.parent, "--output")
    _check_input(intro, "--intro")
    from promoterlab.experiments.report import write_report

    try:
        path = write_report(runs_dir, output, baseline=baseline, model_axis=model_axis, run_curves=run_curves,
                            intro=intro)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"wrote {path}", err=True)
