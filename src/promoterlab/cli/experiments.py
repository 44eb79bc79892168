"""Command line of experiments: ``sweep``, ``tune``, ``results`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from promoterlab.cli.base import (check_folder, check_input_path, check_output_file, fail, json_option,
                                  old_out_option, print_json, progress_option, quiet_option, say, terminal)

if TYPE_CHECKING:
    from promoterlab.experiments.spec import Spec

BUDGET_HELP = "Named budget of the spec (e.g. small: fewer epochs, smaller width for a CPU)."
SPEC_DATA_HELP = ("Data directory that the spec's data:NAME/... paths point into (default: $PROMOTERLAB_DATA, "
                  "else ~/.cache/promoterlab; where promoterlab data fetch puts datasets).")


def spec_data_option():
    return typer.Option(None, "--data-dir", metavar="DIR", help=SPEC_DATA_HELP)


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
            fail(f"--only {item!r}: expected AXIS=VALUE[,VALUE...], e.g. --only seed=0,1")
    return chosen


def _spec(path: Path, budget: Optional[str], data_dir: Optional[Path]) -> Spec:
    from promoterlab.experiments.spec import load_spec

    try:
        return load_spec(path, budget, data_dir)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))


def _output(output: Optional[Path], out: Optional[Path]) -> Optional[Path]:
    """``-o/--output``, or the deprecated ``--out`` (with a warning); None: the default folder."""
    if out is not None:
        typer.echo("warning: --out is deprecated; use -o/--output", err=True)
    return output or out


def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="Experiment spec with axes."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Sweep folder: one run folder per combination (default "
                                               "runs/<spec name>[-<budget>])."),
    out: Optional[Path] = old_out_option(),
    budget: Optional[str] = typer.Option(None, metavar="NAME", help=BUDGET_HELP),
    data_dir: Optional[Path] = spec_data_option(),
    workers: int = typer.Option(1, min=1, metavar="N", help="Runs trained at once on this machine."),
    only: list[str] = typer.Option([], metavar="AXIS=V1,V2", help="Train only this slice of the grid "
                                                                  "(repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and check that every input exists; "
                                                          "train nothing."),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Train every combination of a spec's axes; rerun to resume (finished runs are skipped)."""
    chosen = _only(only)
    output = _output(output, out)
    spec = _spec(spec_path, budget, data_dir)  # a bad spec fails here, before any folder or lock exists
    folder = output or _default_folder(spec)
    from promoterlab.experiments.sweep import missing_inputs, run_sweep, select

    try:
        selected = select(spec, chosen)
    except ValueError as err:
        fail(str(err))
    missing = missing_inputs(spec, selected)
    if dry_run:
        if as_json:
            print_json({"folder": str(folder), "runs": [name for name, _, _ in selected], "missing": missing})
        else:
            typer.echo("\n".join(name for name, _, _ in selected))
    if missing:  # before any run folder exists
        fail(f"{len(missing)} input(s) not found: {', '.join(missing[:3])} (is --data-dir right?)")
    if dry_run:
        say(f"sweep {spec.name}: {len(selected)} of {len(spec.grid())} runs would go to {folder}; every input "
            "exists", quiet)
        return
    check_folder(folder, "-o/--output")
    say(f"sweep {spec.name}: {len(selected)} of {len(spec.grid())} runs in {folder}", quiet)
    with terminal(quiet):
        try:
            outcomes = run_sweep(spec, folder, workers=workers, progress=progress and not quiet, only=chosen)
        except OSError as err:  # the sweep folder itself (each run's errors are its outcome)
            fail(err)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {status: sum(o.status == status for o in outcomes) for status in ("trained", "skipped", "busy", "failed")}
    if as_json:
        print_json({"folder": str(folder), **counts})
    say(", ".join(f"{n} {status}" for status, n in counts.items()), quiet)
    if failed:
        fail("; ".join(f"{o.name}: {o.message}" for o in failed), code=1)


def tune(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="Experiment spec with a search space."),
    trials: int = typer.Option(..., min=1, help="Distinct settings to try in all (a rerun continues)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Output folder: the study, its trials' runs, trials.md, "
                                               "best_config.yaml (default runs/<spec name>[-<budget>]-tune)."),
    out: Optional[Path] = old_out_option(),
    storage: Optional[str] = typer.Option(None, metavar="URL", help="Optuna storage URL shared by workers "
                                                                    "(default SQLite in the output folder)."),
    budget: Optional[str] = typer.Option(None, metavar="NAME", help=BUDGET_HELP),
    data_dir: Optional[Path] = spec_data_option(),
    workers: int = typer.Option(1, min=1, metavar="N", help="Worker processes on this machine."),
    seed: int = typer.Option(0, metavar="N", help="Seed of the TPE sampler (worker i uses seed + i); give each "
                                                  "machine sharing a --storage its own, e.g. 0, 100, 200."),
    heartbeat: int = typer.Option(60, min=1, metavar="SECONDS", help="Seconds between a worker's heartbeats; a "
                                  "trial silent for 3 heartbeats (its worker died) is marked failed and run again."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning on per-epoch val Pearson)."""
    output = _output(output, out)
    spec = _spec(spec_path, budget, data_dir)
    if not spec.search:
        fail(f"{spec_path}: the spec has no search space (a 'search' section) to tune")
    folder = output or _default_folder(spec, "-tune")
    check_folder(folder, "-o/--output")
    from promoterlab.experiments.tune import tune as run_tune

    with terminal(quiet):
        try:
            best = run_tune(spec, folder, trials, storage=storage, workers=workers, seed=seed, heartbeat=heartbeat)
        except (ValueError, RuntimeError, OSError) as err:
            fail(err)
    if as_json:
        print_json(best)
    say(f"best trial {best.get('number')}: val Pearson {best.get('value')}; train it with: promoterlab train "
        f"--config {best['config']} -o DIR", quiet)


def results(
    runs_dir: Path = typer.Argument(..., metavar="RUNS_DIR", help="Folder of runs (a sweep's output folder, or "
                                                                  "an ensemble's)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Folder of the tables: summary.csv/.md, comparison.csv/.md "
                                               "(default RUNS_DIR)."),
    out: Optional[Path] = old_out_option(),
    baseline: str = typer.Option("legnet", metavar="VALUE", help="Value of --model-axis every other value is "
                                                                 "compared with."),
    model_axis: str = typer.Option("model", metavar="AXIS", help="Axis whose values are compared (e.g. model.rho)."),
    figures: bool = typer.Option(False, "--figures", help="Also write every figure (PNG and SVG) to OUTPUT/figures."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """One table per configuration (mean, sd, 95 % CI over seeds) and paired comparisons with the baseline."""
    check_input_path(runs_dir, kind="folder")
    folder = _output(output, out) or runs_dir
    check_folder(folder, "-o/--output")  # the tables go into RUNS_DIR by default: it must be writable
    from promoterlab.experiments import results as res

    try:
        runs, summary, comparison = res.analyse(runs_dir, baseline, model_axis)
        written = res.write_tables(summary, comparison, folder)
        if figures:
            from promoterlab.experiments.figures import write_figures

            written += write_figures(runs, summary, folder / "figures", model_axis=model_axis)
    except (ValueError, OSError) as err:
        fail(err)
    if as_json:
        print_json({"summary": summary.to_dict("records"), "comparison": comparison.to_dict("records"),
                    "written": [str(path) for path in written]})
    else:
        typer.echo(res.markdown_table(summary))
        if len(comparison):
            typer.echo("\n" + res.markdown_table(comparison))
    say(f"wrote {len(written)} files to {folder}", quiet)


def report(
    runs_dirs: list[str] = typer.Argument(..., metavar="RUNS_DIR...", help="Folder of runs (a sweep's --out), or "
                                          "several sweeps as NAME=DIR, e.g. native=runs/a DREAM=runs/b "
                                          "(NAME becomes the axis 'dataset')."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="report.html (one self-contained file) or report.md (with its figures in "
                                     "report_figures/ beside it)."),
    baseline: str = typer.Option("legnet", metavar="VALUE", help="Value of --model-axis every other value is "
                                                                 "compared with."),
    model_axis: str = typer.Option("model", metavar="AXIS", help="Axis whose values are compared (e.g. model.rho)."),
    run_curves: bool = typer.Option(True, "--run-curves/--no-run-curves",
                                    help="Include every run's own loss and Pearson curves."),
    intro: Optional[Path] = typer.Option(None, metavar="FILE", help="Markdown file whose text opens the report."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Tables and figures of a runs folder (or of several sweeps) in one file a person can open."""
    named = dict(item.partition("=")[::2] for item in runs_dirs)
    if len(runs_dirs) > 1 or "=" in runs_dirs[0]:
        if any(not name or not folder for name, folder in named.items()) or len(named) < len(runs_dirs):
            fail("several sweeps are given as NAME=DIR with distinct names, e.g. native=runs/a DREAM=runs/b")
        runs_dir = {name: Path(folder) for name, folder in named.items()}
    else:
        runs_dir = Path(runs_dirs[0])
    inputs = list(runs_dir.values()) if isinstance(runs_dir, dict) else [runs_dir]
    if output.parent.is_dir():  # a missing folder is created, as for the figures beside the report
        check_output_file(output, [*inputs, intro])
    else:
        check_folder(output.parent, "--output")
    check_input_path(intro, "--intro")
    from promoterlab.experiments.report import write_report

    try:
        path = write_report(runs_dir, output, baseline=baseline, model_axis=model_axis, run_curves=run_curves,
                            intro=intro)
    except (ValueError, OSError) as err:
        fail(err)
    if as_json:
        print_json({"report": str(path)})
    say(f"wrote {path}", quiet)
