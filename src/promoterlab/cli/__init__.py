"""promoterlab's command line: a thin layer over the Python API (:mod:`promoterlab.api`).

One convention for every command: ``-o/--output`` is the output (a file, or a folder where the
command writes several files; the help says which), ``-`` writes a table to standard output,
``--quiet`` silences messages and progress, ``--json`` prints the result as strict JSON on standard
output, ``--precision`` takes ``auto|32|bf16|16``. Every error is one ``error:`` line; exit codes
are 0 (success), 1 (the work failed), 2 (bad usage or input) and 130 (interrupted).

Only typer and the standard library are imported here: torch, pandas, Lightning and the API are
imported inside the commands, so that ``promoterlab --help`` and argument errors answer at once.
"""

from __future__ import annotations

import typer

from promoterlab.cli import data, design, doctor, experiments, interpret, models, predict, train
from promoterlab.cli.base import EXIT_CODES, LazyHelpCommand, OneLineErrors
from promoterlab.version import __version__

app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, epilog=EXIT_CODES,
                  help="Predict gene expression from promoter DNA with LegNet and its hybrids.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"promoterlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Predict gene expression from promoter DNA with LegNet and its hybrids."""


for command in (train.train, train.demo, predict.predict, predict.evaluate, interpret.explain, interpret.variants,
                interpret.motifs, interpret.marginalize, experiments.sweep, experiments.tune, experiments.results,
                experiments.report, design.design, design.select, doctor.doctor):
    app.command(command.__name__.lstrip("_"), cls=LazyHelpCommand, epilog=EXIT_CODES)(command)
app.add_typer(data.data_app, name="data")
app.add_typer(data.dream_app, name="dream")
app.add_typer(models.models_app, name="models")


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
