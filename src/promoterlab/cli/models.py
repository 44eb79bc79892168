"""Command-line group ``promoterlab models``: architectures, and published pretrained weights.

``list`` shows the registered pretrained models, ``fetch`` downloads one (resumed, checked against
its git blob id) and converts it into a run folder, ``import`` converts a local file of original
LegNet weights, ``benchmark`` (or ``promoterlab models --benchmark``) times the architectures.
Thin wrappers over :mod:`promoterlab.pretrained` and :mod:`promoterlab.training.timing`, imported
inside the commands; registered in the main CLI with ``app.add_typer(models_app, name="models")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promoterlab.cli.base import (DATA_DIR_HELP, EXIT_CODES, LazyHelpCommand, check_device, check_folder,
                                  check_input_path, device_option, fail, json_option, old_out_option,
                                  output_or_old, print_json, progress_option, quiet_option, say)
from promoterlab.cli.options import option_error

models_app = typer.Typer(help="Model architectures and published pretrained weights (list, fetch, import).",
                         invoke_without_command=True)

_REPEATS_HELP = "Timed training steps per model and width (median reported)."
_URL_NOTE = "Set PROMOTERLAB_MODELS_URL to download from a mirror instead of raw.githubusercontent.com."


@models_app.callback()
def models(
    ctx: typer.Context,
    benchmark: bool = typer.Option(False, "--benchmark", help="Time the registered architectures (as 'models "
                                                               "benchmark')."),
    repeats: int = typer.Option(3, min=1, metavar="N", help=_REPEATS_HELP),
    device: str = device_option(),
) -> None:
    """Model architectures and published pretrained weights; --benchmark times the architectures."""
    if ctx.invoked_subcommand is not None:
        if benchmark:
            fail(f"--benchmark belongs to 'promoterlab models' alone, not to 'models {ctx.invoked_subcommand}'")
        return
    if not benchmark:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    _benchmark(repeats, device)


@models_app.command("benchmark", cls=LazyHelpCommand, epilog=EXIT_CODES)
def models_benchmark(
    repeats: int = typer.Option(3, min=1, metavar="N", help=_REPEATS_HELP),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Registered architectures: parameters and training step time per 1,000 sequences on this machine."""
    _benchmark(repeats, device, as_json)


def _benchmark(repeats: int, device: str, as_json: bool = False) -> None:
    check_device(device)
    from promoterlab.training.timing import models_table

    table = models_table(widths=(1.0, 0.5), repeats=repeats, device=device)
    if as_json:
        print_json(table.to_dict("records"))
        return
    typer.echo(f"{'model':<20}{'parameters':>12}{'s/1000 seqs (width 1)':>24}{'s/1000 seqs (legnet-s width 0.5)':>34}")
    for row in table.itertuples(index=False):
        typer.echo(f"{row[0]:<20}{row[1]:>12,}{row[2]:>24.2f}{row[3]:>34.2f}")


@models_app.command("list", cls=LazyHelpCommand, epilog=EXIT_CODES)
def models_list(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (every fact, source and note) instead of text."),
    quiet: bool = quiet_option(),
) -> None:
    """The published pretrained models: data, size, medium, layout, authors' metrics, licence, citation.

    Also whether each one's weights are downloaded already. --json adds the sources of every fact
    and the notes on what was inferred.
    """
    import dataclasses

    from promoterlab.pretrained import list_pretrained
    from promoterlab.pretrained.fetch import weights_path

    entries = list_pretrained()
    if as_json:
        rows = [{**dataclasses.asdict(e), "url": e.url(), "downloaded": weights_path(e, data_dir).is_file()}
                for e in entries]
        print_json(rows)
        return
    for entry in entries:
        here = weights_path(entry, data_dir)
        channels = "one-hot, is_reverse, is_singleton" if entry.singleton_channel else "one-hot, is_reverse"
        metrics = "; ".join(f"{m.name} {m.value:.3f} ({m.scope.split(':')[0]})" for m in entry.metrics)
        typer.echo(f"{entry.name}: {entry.description}")
        for label, text in (
            ("trained on", entry.trained_on), ("size", entry.training_size), ("medium", entry.medium),
            ("layout", f"{entry.seq_len} bp: leading {entry.left_adapter} cut, plasmid upstream of the insert "
                       f"prepended; channels {channels}"),
            ("metrics", metrics or "none reported"), ("licence", entry.licence), ("cite", " | ".join(entry.citation)),
            ("weights", f"{entry.repo}@{entry.commit[:7]} {entry.path} (git blob {entry.git_blob[:12]})"),
            ("downloaded", str(here) if here.is_file() else "no"),
        ):
            typer.echo(f"  {label:<11} {text}")
        typer.echo("")
    say("'promoterlab models fetch NAME' makes a run folder; sources and notes: 'promoterlab models list --json' "
        "or the folder's README.md", quiet)


@models_app.command("fetch", cls=LazyHelpCommand, epilog=f"{_URL_NOTE} {EXIT_CODES}")
def models_fetch(
    name: str = typer.Argument(..., metavar="NAME", help="Pretrained model (see 'promoterlab models list')."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Run folder to write: config.yaml, model.pt, summary.json, "
                                               "README.md (default: ./NAME)."),
    out: Optional[Path] = old_out_option(),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR",
                                            help=DATA_DIR_HELP + " The weights are kept in DATA_DIR/pretrained/NAME/."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in a non-empty output folder."),
    retries: int = typer.Option(3, min=0, metavar="N", help="Resumes of an interrupted transfer."),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Download a pretrained model and convert it into a run folder.

    The download resumes after an interruption and is checked against the file's git blob id; the
    run folder (config.yaml, model.pt, summary.json, model card README.md) is loaded by predict,
    evaluate and the other commands like a trained run.
    """
    from promoterlab.pretrained import UnknownModelError, get_pretrained

    try:
        entry = get_pretrained(name)
    except UnknownModelError as err:
        fail(err)
    out = Path(name) if output is None and out is None else output_or_old(output, out)
    check_folder(out, "-o/--output")
    from promoterlab.datasets.transfer import ChecksumError, DownloadError
    from promoterlab.pretrained.fetch import fetch_pretrained

    try:
        fetch_pretrained(entry, out, data_dir, progress=progress and not quiet, retries=retries, overwrite=overwrite)
    except ChecksumError as err:
        fail(err, code=1)
    except (DownloadError, ValueError, OSError) as err:
        fail(err)
    if as_json:
        print_json({"model": name, "run": str(out), "card": str(out / "README.md")})
    say(f"{name}: run folder {out} (model card: {out / 'README.md'})", quiet)


@models_app.command("import", cls=LazyHelpCommand, epilog=EXIT_CODES)
def models_import(
    state_dict: Path = typer.Argument(..., metavar="STATE_DICT", help="Weights of the original LegNet (SeqNN "
                                                                      "state dict, .pth)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Run folder to write: config.yaml, model.pt, summary.json, README.md."),
    out: Optional[Path] = old_out_option(),
    seq_len: Optional[int] = typer.Option(None, min=1, metavar="N", help="Model input length: the original's "
                                                                         "--seqsize (default 150)."),
    left_adapter: Optional[str] = typer.Option(None, metavar="BASES", help="Leading adapter replaced by the "
                                               "upstream plasmid (default the DREAM one; '' for none)."),
    upstream: Optional[str] = typer.Option(None, metavar="BASES", help="Plasmid upstream of the insert, prepended "
                                           "to reach --seq-len (default the DREAM plasmid's 200 bp)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in a non-empty output folder."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Convert a local file of original LegNet weights into a run folder.

    The architecture and the singleton channel are read from the weights; --seq-len, --left-adapter
    and --upstream say how the sequences were laid out in training (as for 'train').
    """
    out = output_or_old(output, out)
    check_input_path(state_dict)
    check_folder(out, "-o/--output")
    from promoterlab.config import DataConfig
    from promoterlab.sequence import Layout
    from promoterlab.pretrained.fetch import check_layout, import_weights

    defaults = DataConfig()
    layout = Layout(seq_len or defaults.seq_len, defaults.left_adapter if left_adapter is None else left_adapter,
                    defaults.upstream if upstream is None else upstream)
    try:
        check_layout(layout)
    except ValueError as err:
        fail(option_error(err))
    try:
        import_weights(state_dict, out, layout, overwrite=overwrite)
    except (ValueError, OSError) as err:
        fail(err)
    if as_json:
        print_json({"weights": str(state_dict), "run": str(out), "card": str(out / "README.md")})
    say(f"{state_dict}: run folder {out} (model card: {out / 'README.md'})", quiet)
