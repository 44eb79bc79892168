"""``promoterlab data`` (list, fetch, encode) and ``promoterlab dream`` (score, predict): thin
layers over :mod:`promoterlab.datasets`, :mod:`promoterlab.data.store_build` and
:mod:`promoterlab.evaluation.dream`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from promoterlab.cli.base import (DATA_DIR_HELP, EXIT_CODES, LazyHelpCommand, batch_size_option, check_device, check_folder,
                                  check_input_path, check_output_file, check_precision, device_option, fail,
                                  json_option, open_run, precision_option, print_json, progress_option,
                                  quiet_option, say, size_text)
from promoterlab.files import OutputError, output_stream

data_app = typer.Typer(help="List and fetch public promoter datasets.", no_args_is_help=True)
dream_app = typer.Typer(help="DREAM 2022 challenge: official scoring and test-set predictions.",
                        no_args_is_help=True)

@data_app.command("list", cls=LazyHelpCommand, epilog=EXIT_CODES)
def data_list(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR", help=DATA_DIR_HELP),
    as_json: bool = json_option(),
) -> None:
    """List the registered datasets and how many of their files are in the data directory."""
    from promoterlab.datasets import list_datasets, resolve_data_dir

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
        print_json({"data_dir": str(root), "datasets": rows})
        return
    typer.echo(f"data directory: {root}")
    typer.echo(f"{'name':<14}{'files':>7}{'here':>6}  {'known size':>11}  description")
    for row in rows:
        known = size_text(row["known_size"]) if row["known_size"] else "-"
        typer.echo(f"{row['name']:<14}{row['files']:>7}{row['present']:>6}  {known:>11}  "
                   f"{row['description']}")


@data_app.command("fetch", cls=LazyHelpCommand, epilog=EXIT_CODES)
def data_fetch(
    name: str = typer.Argument(..., metavar="NAME", help="Dataset name (see 'promoterlab data list')."),
    directory: Optional[Path] = typer.Option(
        None, "--dir", metavar="DIR", help="Dataset directory, e.g. an existing local copy (default: DATA_DIR/NAME)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR", help=DATA_DIR_HELP),
    only: Optional[list[str]] = typer.Option(
        None, "--only", metavar="GLOB", help="Glob on the relative file paths, e.g. 'test/*' (repeatable)."),
    download_missing: Optional[bool] = typer.Option(
        None, "--download-missing/--no-download-missing",
        help="Download absent files (default: yes, except into a local copy)."),
    force: bool = typer.Option(False, "--force", help="Download again files that are present."),
    retries: int = typer.Option(3, "--retries", min=0, metavar="N", help="Resumes of an interrupted transfer."),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Download a dataset (resuming, verifying checksums) or check a copy that is in place."""
    from promoterlab.datasets import UnknownDatasetError, dataset_dir, fetch, get_dataset
    from promoterlab.datasets.download import data_dir_source

    try:
        dataset = get_dataset(name)
    except UnknownDatasetError as exc:
        fail(exc)
    target = dataset_dir(dataset, data_dir, directory)
    if not target.exists():  # a folder to create: nothing on its way may be a file
        check_folder(target, data_dir_source(data_dir, directory))
    report = fetch(dataset, target, only=only, download_missing=download_missing, force=force,
                   progress=progress and not quiet, retries=retries)
    if only and not report.files:
        fail(f"--only {' '.join(only)} matches none of the {len(dataset.files)} files of {name}")
    kind = "local copy" if report.local_copy else "managed directory"
    statuses = ("verified", "present", "downloaded", "missing", "mismatch", "failed")
    if as_json:
        print_json({"dataset": name, "directory": str(target), "kind": kind,
                    "files": [{"path": item.path, "status": item.status, "detail": item.detail}
                              for item in report.files]})
    else:
        for item in report.files:
            detail = f"  ({item.detail})" if item.detail and item.status != "missing" else ""
            typer.echo(f"{item.status:<11}{item.path}{detail}")
        counts = ", ".join(f"{report.count(s)} {s}" for s in statuses if report.count(s))
        typer.echo(f"{name} in {target} ({kind}): {counts}")
    if report.count("missing"):
        say("missing files were not downloaded; pass --download-missing to fetch them", quiet)
    if report.count("mismatch"):
        say("files that do not match their checksum were kept; pass --force to download them again", quiet)
    if not report.ok:
        fail(f"{report.count('mismatch') + report.count('failed')} file(s) failed or did not "
              f"match their checksum (details above)", code=1)


@data_app.command("encode", cls=LazyHelpCommand, epilog=EXIT_CODES)
def data_encode(
    data: Path = typer.Argument(..., metavar="DATA", help="Table to encode: DREAM text or CSV/TSV, optionally "
                                                         "gzipped."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FOLDER",
                                help="Store folder to write: codes, targets, flags, lines and inserts as "
                                     "memory-mapped arrays, and a header (a store there is replaced)."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, metavar="NAME", help="Target column of a table with a header."),
    group_col: Optional[str] = typer.Option(None, metavar="NAME", help="Group column, stored for splits by group."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with a missing or non-numeric target."),
    seq_len: Optional[int] = typer.Option(None, min=1, metavar="N", help="Model input length (default 150)."),
    left_adapter: Optional[str] = typer.Option(None, metavar="BASES", help="Leading adapter replaced by the "
                                               "upstream plasmid (default the DREAM one; AACTGCATTTTTTTCACATC for "
                                               "de Boer 2020)."),
    force: bool = typer.Option(False, "--force", help="Encode again even if OUTPUT already holds this file so encoded."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Encode a table once into a memory-mapped sequence store that training reads batch by batch."""
    check_input_path(data, kind="regular")  # read twice: its checksum, then its rows
    check_folder(output, "--output")
    import time

    from promoterlab.config import DataConfig
    from promoterlab.data.readers import DataError
    from promoterlab.data.store import ReadOptions, StoreError
    from promoterlab.data.store_build import encode_table

    defaults = DataConfig()
    layout = DataConfig(seq_len=seq_len or defaults.seq_len,
                        left_adapter=defaults.left_adapter if left_adapter is None else left_adapter).layout
    start = time.perf_counter()
    try:
        store, built = encode_table(data, output, layout, ReadOptions(seq_col, target_col, group_col, drop_missing),
                                    force=force)
    except (DataError, StoreError, OSError) as err:
        fail(err)
    size = sum((output / spec["file"]).stat().st_size for spec in store.header["arrays"].values())
    what = "encoded" if built else "up to date (--force to encode again):"
    if as_json:
        print_json({"store": str(output), "sequences": len(store), "bytes": size, "built": built,
                    "seconds": round(time.perf_counter() - start, 2)})
    say(f"{what} {len(store):,} sequences from {data} in {output} ({size_text(size)}, "
        f"{size / len(store):.0f} B/sequence, {time.perf_counter() - start:.1f} s)", quiet)


@dream_app.command("score", cls=LazyHelpCommand, epilog=EXIT_CODES)
def dream_score(
    pred: Path = typer.Argument(..., metavar="SUBMISSION", help="Submission JSON {pos: value}, or TSV "
                                                                "id<TAB>seq<TAB>prediction."),
    truth: Path = typer.Argument(..., metavar="TRUTH", help="public_leaderboard_ids/ folder, or a measured "
                                                            "seq<TAB>expr file (row index = pos)."),
    subsets: Optional[Path] = typer.Option(
        None, "--subsets", metavar="DIR", help="test_subset_ids/ folder (default: next to a measured TRUTH file)."),
    leaderboard: Optional[Path] = typer.Option(
        None, "--leaderboard", metavar="DIR", help="public_leaderboard_ids/ folder for subsets without an id CSV "
                                                   "(default: next to a measured TRUTH file)."),
    as_json: bool = json_option(),
) -> None:
    """Official DREAM 2022 scores: per-subset Pearson r, r², Spearman ρ and the weighted scores."""
    from promoterlab.evaluation.dream import DreamDataError, load_predictions, load_truth, score

    check_input_path(pred)
    check_input_path(subsets, "--subsets", kind="folder")
    check_input_path(leaderboard, "--leaderboard", kind="folder")
    try:
        predictions = load_predictions(pred)
        reference = load_truth(truth, subsets, leaderboard)
        result = score(predictions, reference, pred)
    except (DreamDataError, OSError) as exc:
        fail(exc)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(format_table(result))


@dream_app.command("predict", cls=LazyHelpCommand, epilog=EXIT_CODES)
def dream_predict(
    run_dir: list[Path] = typer.Argument(..., metavar="RUN...", help="Run folder (a model or an ensemble); several, "
                                         "a folder of runs or a quoted glob: an ensemble (its mean is submitted)."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="Submission JSON {position: prediction} (a file, '-': standard output)."),
    table: Optional[Path] = typer.Option(None, "--table", metavar="FILE", help="Also write a table: id (test "
                                         "position), seq, prediction, and sd, n_models for an ensemble."),
    test: Optional[Path] = typer.Option(
        None, "--test", metavar="FILE", help="DREAM test file (default: DATA_DIR/dream2022/test/test_sequences.txt)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR", help=DATA_DIR_HELP),
    batch_size: int = batch_size_option(),
    precision: str = precision_option(),
    device: str = device_option(),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Predict every DREAM test sequence (RC-averaged) and write the official submission JSON."""
    precision = check_precision(precision, device)
    source = "--test"
    if test is None:
        from promoterlab.datasets import resolve_data_dir
        from promoterlab.datasets.download import data_dir_source

        test = resolve_data_dir(data_dir) / "dream2022" / "test" / "test_sequences.txt"
        source = f"the test file in {data_dir_source(data_dir)}"
    if not test.exists():
        fail(f"{source} {test}: test file not found; pass --test FILE or run "
              f"'promoterlab data fetch dream2022 --only test/test_sequences.txt'")
    check_input_path(test, source)
    run = open_run(run_dir)
    inputs = [*run.files(), test]
    check_output_file(output, inputs)  # before the predictions, not after
    if table is not None:
        check_output_file(table, [*inputs, output])
    check_device(device)
    from promoterlab.api import predict_file
    from promoterlab.evaluation.dream import DREAM_TEST_SIZE

    try:
        frame = predict_file(run, test, batch_size=batch_size, device=device, progress=progress and not quiet,
                             precision=precision)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        fail(exc)
    bad = next((i for i in frame["id"] if not str(i).isdigit()), None)
    if bad is not None:  # e.g. a FASTA's names
        fail(f"{source} {test}: id {bad!r} is not a test-set position; give the DREAM test file "
              f"(seq<TAB>expr rows, whose row index is the position)")
    positions = [int(i) for i in frame["id"]]
    if len(set(positions)) != len(positions):
        fail(f"{source} {test}: {len(positions) - len(set(positions))} position(s) appear twice; give the DREAM "
              f"test file (seq<TAB>expr rows, whose row index is the position)")
    if len(frame) != DREAM_TEST_SIZE:
        typer.echo(f"warning: {test} has {len(frame)} sequences; the DREAM test set has "
                   f"{DREAM_TEST_SIZE}", err=True)
    submission = {str(pos): float(value) for pos, value in zip(positions, frame["prediction"].to_numpy())}
    bad = next((pos for pos, value in submission.items() if not math.isfinite(value)), None)
    if bad is not None:
        fail(f"prediction for position {bad} is {submission[bad]}; a submission needs finite values")
    try:
        with output_stream(output, inputs) as handle:
            json.dump(submission, handle)
        if table is not None:
            with output_stream(table, inputs) as handle:
                frame.to_csv(handle, sep="\t", index=False, lineterminator="\n", float_format="%.6g")
    except (OSError, ValueError) as exc:
        fail(f"{exc}" if isinstance(exc, OutputError) else f"{output}: {exc}")
    if as_json and str(output) != "-":
        print_json({"predictions": len(positions), "output": str(output), "model": run.describe()})
    say(f"wrote {len(positions)} predictions of {run.describe()} to {output}", quiet)


def format_table(result) -> str:
    """Plain-text table of a :class:`~promoterlab.evaluation.dream.DreamScore`: subsets, the
    weighted scores and notes."""
    from promoterlab.evaluation.dream import WEIGHT_TOTAL

    head = f"{'subset':<29}{'weight':>7}{'n':>8}{'no truth':>10}{'no pred':>9}" \
           f"{'pearson r':>11}{'r2':>9}{'spearman':>10}"
    lines = [f"truth: {result.truth}", head, "-" * len(head)]
    for s in result.subsets:
        label = f"{s.name} (alt-ref)" if s.paired else s.name
        lines.append(f"{label:<29}{s.weight:>7.2f}{s.n:>8}{s.no_truth:>10}{s.no_prediction:>9}"
                     f"{s.pearson:>11.4f}{s.r2:>9.4f}{s.spearman:>10.4f}")
    lines += ["-" * len(head),
              f"Pearson score  (sum w*r2 / {WEIGHT_TOTAL}): {result.pearson_score:.4f}",
              f"Spearman score (sum w*rho / {WEIGHT_TOTAL}): {result.spearman_score:.4f}"]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
