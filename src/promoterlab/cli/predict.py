"""``promoterlab predict`` and ``promoterlab evaluate``: a thin layer over
:mod:`promoterlab.evaluation.stream` and :func:`promoterlab.api.evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promoterlab.cli.base import (batch_size_option, check_device, check_input_path, check_output_file,
                                  check_precision, device_option, fail, json_option, open_run, precision_option,
                                  print_json, progress_option, quiet_option, say)

RUNS_HELP = ("Run folder (a model or an ensemble, or a model.pt); several, a folder of runs or a quoted glob: "
             "an ensemble.")


def predict(
    run_dir: list[Path] = typer.Argument(..., help=RUNS_HELP, metavar="RUN..."),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of sequences ('-': standard input).",
                                 metavar="INPUT"),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="Output table (a file, '-': standard output): id, seq, prediction, and sd, "
                                     "n_models for an ensemble."),
    interval: Optional[float] = typer.Option(None, metavar="LEVEL", help="Add lower and upper: the run's "
                                             "calibrated interval holding this fraction of measurements (e.g. 0.68, "
                                             "0.9, 0.95; fitted on its validation set)."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, metavar="NAME", help="Id column of a table with a header "
                                                                    "(default: the row number)."),
    batch_size: int = batch_size_option(),
    precision: str = precision_option(),
    device: str = device_option(),
    strict: bool = typer.Option(False, "--strict", help="Refuse an input whose ids repeat (else: a warning, and every row "
                                            "is predicted)."),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Predict expression for new sequences (forward and reverse complement averaged), streamed: a
    file of any size is read and written in chunks. An ensemble predicts its models' mean, with
    their standard deviation."""
    precision = check_precision(precision, device)
    if interval is not None and not 0 < interval < 1:
        fail(f"--interval must be a level between 0 and 1 (e.g. 0.9), got {interval:g}")
    check_input_path(input)
    check_output_file(output, [*run_dir, input])  # before any work
    run = open_run(run_dir)
    inputs = [*run.files(), input]
    check_output_file(output, inputs)  # the run's own files, found now
    check_device(device)
    from promoterlab.evaluation.stream import write_predictions

    try:
        n = write_predictions(run, input, output, seq_col, id_col, batch_size, device, progress and not quiet,
                              precision, inputs=inputs, strict=strict, interval=interval)
    except (ValueError, OSError) as err:
        fail(err)
    where = "standard output" if str(output) == "-" else str(output)
    if as_json and str(output) != "-":
        print_json({"predictions": n, "output": where, "model": run.describe(), "n_models": len(run.members)})
    say(f"wrote {n} predictions of {run.describe()} to {where}", quiet)


def evaluate(
    paths: list[Path] = typer.Argument(..., help="Run folder(s) as for predict, then the measured file (DREAM "
                                                 "text, CSV/TSV; rows without a value are skipped); with --split, "
                                                 "runs only.", metavar="RUN... [DATA]"),
    split: Optional[str] = typer.Option(None, metavar="test|val", help="Evaluate on the run's own held-out rows "
                                        "instead of a file: test (drawn before validation, never used in "
                                        "training) or val."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, metavar="NAME", help="Target column of a table with a header."),
    calibration_plot: Optional[Path] = typer.Option(None, metavar="FILE", help="Ensembles: save the calibration "
                                                    "figure (±k sd coverage, |error| against sd) here (.png, .pdf)."),
    scatter: Optional[Path] = typer.Option(None, metavar="FILE", help="Save predicted against measured values "
                                           "(hexbin, with r and n) here (.png, .pdf)."),
    batch_size: int = batch_size_option(),
    precision: str = precision_option(),
    device: str = device_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Pearson, Spearman, MSE and n of a trained model on measured data, or on its own held-out test
    rows (--split test); for an ensemble, of its mean, with the calibration of its sd (fraction inside
    ±1 and ±2 sd, Spearman |error| against sd)."""
    if split is not None and split not in ("test", "val"):
        fail(f"--split must be test or val, not {split!r}")
    if split is None and len(paths) < 2:
        fail("give RUN and a measured DATA file, or --split test to evaluate on the run's held-out rows")
    run_dirs, data = (paths, None) if split else (paths[:-1], paths[-1])
    check_input_path(data)
    precision = check_precision(precision, device)
    check_device(device)
    run = open_run(run_dirs)
    for figure in (calibration_plot, scatter):
        if figure is not None:
            check_output_file(figure, [*([data] if data else []), *run.files()])
    from promoterlab import api

    try:
        if data is None:
            metrics = api.evaluate_split(run, split, batch_size, device, precision, calibration_plot, scatter)
        else:
            metrics = api.evaluate(run, data, seq_col, target_col, batch_size, device, precision=precision,
                                   calibration_plot=calibration_plot, scatter_plot=scatter)
    except (ValueError, OSError) as err:
        fail(err)
    if not metrics.get("n"):
        fail(f"{data}: no row has a measured value")
    if as_json:
        print_json(metrics)
        return
    typer.echo(f"{'model':13s} {run.describe()}")
    for key, value in metrics.items():
        typer.echo(f"{key:13s} {_shown(value)}")


def _shown(value) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return "n/a" if value is None else str(value)
