"""Command-line groups ``promoterlab data`` (list, fetch) and ``promoterlab dream`` (score, predict),
and the helpers every command shares (one-line errors, output and device checks, lazy help).

Thin wrappers over :mod:`promoterlab.datasets` and :mod:`promoterlab.evaluation.dream`;
registered in the main CLI with ``app.add_typer(data_app, name="data")`` and
``app.add_typer(dream_app, name="dream")``. Those modules (and numpy, pandas, torch) are
imported inside the commands, so that help and argument errors answer at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import string
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from typer.core import TyperCommand

from promoterlab.files import (InputError, OutputError, check_input, check_output, check_output_folder,
                              os_error_words, output_stream)
from promoterlab.precision import device_type, env_precision, normalize_precision

# The help of every --precision option; "{auto_precision}" is filled in when the help is shown.
PRECISION_HELP = ("auto (here: {auto_precision}), 32, bf16 or 16 (fp16 mixed, GPU only). auto is bf16 where the "
                  "processor computes it natively, else 32; PROMOTERLAB_PRECISION=32 or bf16 overrides it.")


class _HelpValues(dict):
    """Values for ``{...}`` in help texts, imported only when a help text is shown."""

    def __missing__(self, key: str) -> Any:
        if key in ("run", "data", "train", "model"):
            from promoterlab.config import RunConfig

            run = RunConfig()
            self.update(run=run, data=run.data, train=run.train, model=run.model)
        elif key == "default_budget":
            from promoterlab.config import DEFAULT_TIME_BUDGET

            self[key] = DEFAULT_TIME_BUDGET
        elif key == "env_var":
            from promoterlab.datasets import ENV_VAR

            self[key] = ENV_VAR
        elif key == "auto_precision":
            from promoterlab.precision import describe_auto

            self[key] = describe_auto()
        else:
            raise KeyError(key)
        return self[key]


class _HelpFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return "none" if value is None else super().format_field(value, format_spec)


class LazyHelpCommand(TyperCommand):
    """A command whose option help may name defaults of the config dataclasses, e.g.
    ``"Maximum epochs (default {train.epochs})."``: filled in when the help is shown, so that
    the defaults have one source of truth and importing the CLI does not import torch."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        values = _HelpValues()
        for param in self.params:
            help_text = getattr(param, "help", None)
            if help_text and "{" in help_text:
                param.help = _HelpFormatter().vformat(help_text, (), values)
        super().format_help(ctx, formatter)


data_app = typer.Typer(help="List and fetch public promoter datasets.", no_args_is_help=True)
dream_app = typer.Typer(help="DREAM 2022 challenge: official scoring and test-set predictions.",
                        no_args_is_help=True)

_DATA_DIR_HELP = "Root data directory (default: ${env_var}, else ~/.cache/promoterlab)."


# Lightning warnings that say nothing a user can act on (small CPU runs, checkpoints in the run folder).
class _StderrHandler(logging.StreamHandler):
    """Plain messages on the ``sys.stderr`` of the moment (the one a test runner swapped in)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _quiet_lightning() -> None:
    from promoterlab.training.quiet import quiet_lightning

    quiet_lightning()


@contextlib.contextmanager
def _terminal(quiet: bool) -> Iterator[None]:
    """promoterlab's log lines (the plan of a run, where it went) on stderr; only warnings and
    errors when ``quiet``. The logger is restored afterwards."""
    logger = logging.getLogger("promoterlab")
    handler, level = _StderrHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


ERRORS_SHOWN: list[str] = []  # the error lines this process printed (cli.main says Ctrl-C otherwise)


def _fail(message: object, code: int = 2) -> NoReturn:
    """Print ``error: message`` (one line) on stderr and exit with ``code``; an ``OSError`` is
    said in words (:func:`~promoterlab.files.os_error_words`), without its errno."""
    words = isinstance(message, OSError) and message.errno is not None
    text = (os_error_words(message) if words else str(message)).strip()
    text = text.splitlines()[0] if text else type(message).__name__
    ERRORS_SHOWN.append(text)
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code)


def _check_output(path: Path, inputs: Iterable[Path | str | None] = ()) -> None:
    """Fail unless ``path`` can be written without harming an input (see :func:`check_output`)."""
    try:
        check_output(path, inputs)
    except OutputError as err:
        _fail(err)


def _check_folder(path: Path, option: str = "") -> None:
    """Fail unless an output folder is, or can be made, a writable folder (see
    :func:`~promoterlab.files.check_output_folder`)."""
    try:
        check_output_folder(path, option)
    except OutputError as err:
        _fail(err)


def _check_input(path: Path | None, option: str = "", kind: str = "file") -> None:
    """Fail unless ``path`` can be read as a ``kind`` (see :func:`~promoterlab.files.check_input`)."""
    if path is None:
        return
    try:
        check_input(path, option, kind)
    except InputError as err:
        _fail(err)


def _open_run(paths: list[Path]) -> Any:
    """The :class:`~promoterlab.runs.Run` that ``paths`` name (one model or an ensemble; commands
    say which in their last line); an unfinished or missing run is one ``error:`` line."""
    from promoterlab.runs import Run, RunError

    try:
        return Run.open(paths[0] if len(paths) == 1 else paths)
    except (RunError, FileNotFoundError, OSError) as err:
        _fail(err)


def _check_device(device: str, option: str = "--device") -> None:
    """Fail unless ``device`` names a torch device that this machine has."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        _fail(f"{option} {device}: not a torch device (e.g. cpu, cuda, cuda:1, mps)")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            _fail(f"{option} {device}: CUDA is not available on this machine (use {option} cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            _fail(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        _fail(f"{option} {device}: MPS is not available on this machine (use {option} cpu)")


def _check_precision(value: str, device: Any = None, option: str = "--precision") -> str:
    """``value`` in the vocabulary of :mod:`promoterlab.precision` (a Lightning spelling such as
    ``bf16-mixed`` is read as ours, with a warning naming it); fail on any other value, on ``16``
    where ``device`` (a torch device or ``"gpu"``/``"cpu"``; None: not known yet) is a CPU, and
    on a ``PROMOTERLAB_PRECISION`` that is neither 32 nor bf16."""
    try:
        new = normalize_precision(value, warn=False)
        if new == "auto":
            env_precision()
    except ValueError as err:
        _fail(f"{option}{str(err).removeprefix('precision')}" if str(err).startswith("precision") else err)
    if new != str(value).strip().lower():
        typer.echo(f"warning: {option} {value} is deprecated; use {option} {new}", err=True)
    if new == "16" and device is not None and device_type(device) == "cpu":
        _fail(f"{option} 16 (fp16 mixed) runs on a GPU only, and this runs on the CPU; use {option} bf16 or 32")
    return new


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@data_app.command("list", cls=LazyHelpCommand)
def data_list(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
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
        typer.echo(json.dumps({"data_dir": str(root), "datasets": rows}, indent=2))
        return
    typer.echo(f"data directory: {root}")
    typer.echo(f"{'name':<14}{'files':>7}{'here':>6}  {'known size':>11}  description")
    for row in rows:
        known = _size(row["known_size"]) if row["known_size"] else "-"
        typer.echo(f"{row['name']:<14}{row['files']:>7}{row['present']:>6}  {known:>11}  "
                   f"{row['description']}")


@data_app.command("fetch", cls=LazyHelpCommand)
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
    from promoterlab.datasets import UnknownDatasetError, dataset_dir, fetch, get_dataset
    from promoterlab.datasets.download import data_dir_source

    try:
        dataset = get_dataset(name)
    except UnknownDatasetError as exc:
        _fail(exc)
    target = dataset_dir(dataset, data_dir, directory)
    if not target.exists():  # a folder to create: nothing on its way may be a file
        _check_folder(target, data_dir_source(data_dir, directory))
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


@data_app.command("encode", cls=LazyHelpCommand)
def data_encode(
    data: Path = typer.Argument(..., help="Table to encode: DREAM text or CSV/TSV, optionally gzipped."),
    output: Path = typer.Option(..., "-o", "--output", help="Store folder to write (a store there is replaced)."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, help="Target column of a table with a header."),
    group_col: Optional[str] = typer.Option(None, help="Group column, stored for splits by group."),
    drop_missing: bool = typer.Option(False, help="Drop rows with a missing or non-numeric target."),
    seq_len: Optional[int] = typer.Option(None, min=1, help="Model input length (default {data.seq_len})."),
    left_adapter: Optional[str] = typer.Option(None, help="Leading adapter replaced by the upstream plasmid "
                                               "(default the DREAM one; AACTGCATTTTTTTCACATC for de Boer 2020)."),
    force: bool = typer.Option(False, help="Encode again even if OUTPUT already holds this file so encoded."),
) -> None:
    """Encode a table once into a memory-mapped sequence store that training reads batch by batch."""
    _check_input(data, kind="regular")  # read twice: its checksum, then its rows
    _check_folder(output, "--output")
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
        _fail(err)
    size = sum((output / spec["file"]).stat().st_size for spec in store.header["arrays"].values())
    what = "encoded" if built else "up to date (--force to encode again):"
    typer.echo(f"{what} {len(store):,} sequences from {data} in {output} ({_size(size)}, "
               f"{size / len(store):.0f} B/sequence, {time.perf_counter() - start:.1f} s)", err=True)


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
    from promoterlab.evaluation.dream import DreamDataError, format_table, load_predictions, load_truth, score

    _check_input(pred)
    _check_input(subsets, "--subsets", kind="folder")
    _check_input(leaderboard, "--leaderboard", kind="folder")
    try:
        predictions = load_predictions(pred)
        reference = load_truth(truth, subsets, leaderboard)
        result = score(predictions, reference, pred)
    except (DreamDataError, OSError) as exc:
        _fail(exc)
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_table(result))


@dream_app.command("predict", cls=LazyHelpCommand)
def dream_predict(
    run_dir: list[Path] = typer.Argument(..., help="Run directory of a trained model (or its model.pt); several, a "
                                                   "folder of runs or a glob: an ensemble (its mean is submitted).",
                                         metavar="RUN"),
    output: Path = typer.Option(..., "-o", "--output", help="Submission JSON to write ('-': standard output)."),
    table: Optional[Path] = typer.Option(None, "--table", help="Also write a TSV: id (test position), seq, "
                                                               "prediction, and sd, n_models for an ensemble."),
    test: Optional[Path] = typer.Option(
        None, "--test", help="DREAM test file (default: DATA_DIR/dream2022/test/test_sequences.txt)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sequences per forward pass (64 is fastest on a CPU)."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Predict every DREAM test sequence (RC-averaged) and write the official submission JSON."""
    precision = _check_precision(precision, device)
    source = "--test"
    if test is None:
        from promoterlab.datasets import resolve_data_dir
        from promoterlab.datasets.download import data_dir_source

        test = resolve_data_dir(data_dir) / "dream2022" / "test" / "test_sequences.txt"
        source = f"the test file in {data_dir_source(data_dir)}"
    if not test.exists():
        _fail(f"{source} {test}: test file not found; pass --test FILE or run "
              f"'promoterlab data fetch dream2022 --only test/test_sequences.txt'")
    _check_input(test, source)
    run = _open_run(run_dir)
    inputs = [*run.files(), test]
    _check_output(output, inputs)  # before the predictions, not after
    if table is not None:
        _check_output(table, [*inputs, output])
    _check_device(device)
    from promoterlab.api import predict_file
    from promoterlab.evaluation.dream import DREAM_TEST_SIZE

    try:
        frame = predict_file(run, test, batch_size=batch_size, device=device, progress=progress,
                             precision=precision)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        _fail(exc)
    bad = next((i for i in frame["id"] if not str(i).isdigit()), None)
    if bad is not None:  # e.g. a FASTA's names
        _fail(f"{source} {test}: id {bad!r} is not a test-set position; give the DREAM test file "
              f"(seq<TAB>expr rows, whose row index is the position)")
    positions = [int(i) for i in frame["id"]]
    if len(set(positions)) != len(positions):
        _fail(f"{source} {test}: {len(positions) - len(set(positions))} position(s) appear twice; give the DREAM "
              f"test file (seq<TAB>expr rows, whose row index is the position)")
    if len(frame) != DREAM_TEST_SIZE:
        typer.echo(f"warning: {test} has {len(frame)} sequences; the DREAM test set has "
                   f"{DREAM_TEST_SIZE}", err=True)
    submission = {str(pos): float(value) for pos, value in zip(positions, frame["prediction"].to_numpy())}
    bad = next((pos for pos, value in submission.items() if not math.isfinite(value)), None)
    if bad is not None:
        _fail(f"prediction for position {bad} is {submission[bad]}; a submission needs finite values")
    try:
        with output_stream(output, inputs) as handle:
            json.dump(submission, handle)
        if table is not None:
            with output_stream(table, inputs) as handle:
                frame.to_csv(handle, sep="\t", index=False, lineterminator="\n", float_format="%.6g")
    except (OSError, ValueError) as exc:
        _fail(f"{exc}" if isinstance(exc, OutputError) else f"{output}: {exc}")
    typer.echo(f"wrote {len(positions)} predictions of {run.describe()} to {output}", err=True)
