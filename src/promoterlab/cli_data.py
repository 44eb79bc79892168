"""Command-line groups ``promoterlab data`` (list, fetch) and ``promoterlab dream`` (score, predict).

Thin wrappers over :mod:`promoterlab.datasets` and :mod:`promoterlab.evaluation.dream`;
registered in the main CLI with ``app.add_typer(data_app, name="data")`` and
``app.add_typer(dream_app, name="dream")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn, Optional

import typer

from promoterlab.datasets import (
    ENV_VAR,
    UnknownDatasetError,
    dataset_dir,
    fetch,
    get_dataset,
    list_datasets,
    resolve_data_dir,
)
from promoterlab.evaluation.dream import (
    DREAM_TEST_SIZE,
    DreamDataError,
    format_table,
    load_predictions,
    load_truth,
    score,
    write_submission,
)

data_app = typer.Typer(help="List and fetch public promoter datasets.", no_args_is_help=True)
dream_app = typer.Typer(help="DREAM 2022 challenge: official scoring and test-set predictions.",
                        no_args_is_help=True)

_DATA_DIR_HELP = f"Root data directory (default: ${ENV_VAR}, else ~/.cache/promoterlab)."


def _fail(message: object, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@data_app.command("list")
def data_list(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the registered datasets and how many of their files are in the data directory."""
    root = resolve_data_dir(data_dir)
    rows = []
    for dataset in list_datasets():
        directory = root / dataset.name
        present = sum((directory / f.path).is_file() for f in dataset.files)
        rows.append({"name": dataset.name, "files": len(dataset.files), "present": present,
                     "known_size": dataset.known_size, "directory": str(directory),
                     "description": dataset.description, "citation": dataset.citation,
                     "source": dataset.landing_page})
    if as_json:
        typer.echo(json.dumps({"data_dir": str(root), "datasets": rows}, indent=2))
        return
    typer.echo(f"data directory: {root}")
    typer.echo(f"{'name':<14}{'files':>7}{'here':>6}  {'known size':>11}  description")
    for row in rows:
        known = _size(row["known_size"]) if row["known_size"] else "-"
        typer.echo(f"{row['name']:<14}{row['files']:>7}{row['present']:>6}  {known:>11}  "
                   f"{row['description']}")


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset name (see 'promoterlab data list')."),
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Dataset directory, e.g. an existing local copy (default: DATA_DIR/NAME)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    only: Optional[list[str]] = typer.Option(
        None, "--only", help="Glob on the relative file paths, e.g. 'test/*' (repeatable)."),
    download_missing: Optional[bool] = typer.Option(
        None, "--download-missing/--no-download-missing",
        help="Download absent files (default: yes, except into a local copy)."),
    force: bool = typer.Option(False, "--force", help="Download again files that are present."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    retries: int = typer.Option(3, "--retries", min=0, help="Resumes of an interrupted transfer."),
) -> None:
    """Download a dataset (resuming, verifying checksums) or check a copy that is in place."""
    try:
        dataset = get_dataset(name)
    except UnknownDatasetError as exc:
        _fail(exc)
    target = dataset_dir(dataset, data_dir, directory)
    report = fetch(dataset, target, only=only, download_missing=download_missing, force=force,
                   progress=progress, retries=retries)
    if only and not report.files:
        _fail(f"--only {' '.join(only)} matches none of the {len(dataset.files)} files of {name}")
    for item in report.files:
        detail = f"  ({item.detail})" if item.detail and item.status != "missing" else ""
        typer.echo(f"{item.status:<11}{item.path}{detail}")
    kind = "local copy" if report.local_copy else "managed directory"
    statuses = ("verified", "present", "downloaded", "missing", "mismatch", "failed")
    counts = ", ".join(f"{report.count(s)} {s}" for s in statuses if report.count(s))
    typer.echo(f"{name} in {target} ({kind}): {counts}")
    if report.count("missing"):
        typer.echo("missing files were not downloaded; pass --download-missing to fetch them", err=True)
    if report.count("mismatch"):
        typer.echo("files that do not match their checksum were kept; pass --force to download "
                   "them again", err=True)
    if not report.ok:
        _fail(f"{report.count('mismatch') + report.count('failed')} file(s) failed or did not "
              f"match their checksum (details above)", code=1)


@dream_app.command("score")
def dream_score(
    pred: Path = typer.Argument(..., help="Submission JSON {pos: value}, or TSV id<TAB>seq<TAB>prediction."),
    truth: Path = typer.Argument(
        ..., help="public_leaderboard_ids/ folder, or a measured seq<TAB>expr file (row index = pos)."),
    subsets: Optional[Path] = typer.Option(
        None, "--subsets", help="test_subset_ids/ folder (default: next to a measured TRUTH file)."),
    leaderboard: Optional[Path] = typer.Option(
        None, "--leaderboard", help="public_leaderboard_ids/ folder for subsets without an id CSV "
                                    "(default: next to a measured TRUTH file)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Official DREAM 2022 scores: per-subset Pearson r, r², Spearman ρ and the weighted scores."""
    try:
        predictions = load_predictions(pred)
        reference = load_truth(truth, subsets, leaderboard)
    except (DreamDataError, OSError) as exc:
        _fail(exc)
    result = score(predictions, reference)
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_table(result))


@dream_app.command("predict")
def dream_predict(
    run_dir: Path = typer.Argument(..., help="Run directory of a trained model (or its model.pt)."),
    output: Path = typer.Option(..., "-o", "--output", help="Submission JSON to write."),
    test: Optional[Path] = typer.Option(
        None, "--test", help="DREAM test file (default: DATA_DIR/dream2022/test/test_sequences.txt)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Sequences per forward pass."),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Predict every DREAM test sequence (RC-averaged) and write the official submission JSON."""
    from promoterlab.api import predict_file

    test = test or resolve_data_dir(data_dir) / "dream2022" / "test" / "test_sequences.txt"
    if not test.is_file():
        _fail(f"{test}: test file not found; pass --test FILE or run "
              f"'promoterlab data fetch dream2022 --only test/test_sequences.txt'")
    try:
        frame = predict_file(run_dir, test, batch_size=batch_size, device=device, progress=progress)
        positions = [int(i) for i in frame["id"]]
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        _fail(exc)
    if len(frame) != DREAM_TEST_SIZE:
        typer.echo(f"warning: {test} has {len(frame)} sequences; the DREAM test set has "
                   f"{DREAM_TEST_SIZE}", err=True)
    values = frame["prediction"].to_numpy()
    try:
        write_submission(output, dict(zip(positions, values)))
    except (OSError, ValueError) as exc:
        _fail(f"{output}: {exc}")
    typer.echo(f"wrote {len(positions)} predictions to {output}")
