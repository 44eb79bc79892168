"""What every command shares: one-line errors and exit codes, checks of inputs, outputs, devices
and precisions that run before any work, the options every command spells the same way, results
as text or strict JSON, and help texts filled in when they are shown.

Only typer, click and the standard library are imported here (torch, pandas and Lightning inside
the functions that need them), so that ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer 0.2x carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover (typer built on click)
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from promoterlab.files import (InputError, OutputError, check_input, check_output, check_output_folder,
                               json_text, os_error_words)
from promoterlab.precision import device_type, env_precision, normalize_precision

EXIT_CODES = ("Exit codes: 0 success; 1 the work failed (a checksum, a run of a sweep); 2 bad usage or bad "
              "input (one 'error:' line says what was found); 130 interrupted (Ctrl-C).")
DATA_DIR_HELP = "Root data directory (default: ${env_var}, else ~/.cache/promoterlab)."
PRECISION_HELP = ("auto (here: {auto_precision}), 32, bf16 or 16 (fp16 mixed, GPU only). auto is bf16 where the "
                  "processor computes it natively, else 32; PROMOTERLAB_PRECISION=32 or bf16 overrides it.")
ERRORS_SHOWN: list[str] = []  # the error lines this process printed (main says Ctrl-C otherwise)


# --- options every command spells the same way ------------------------------------------------------

def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q", help="No messages or progress on standard error: results and "
                                                     "errors only.")


def json_option() -> Any:
    return typer.Option(False, "--json", help="Print the result as one JSON object on standard output; "
                                              "messages go to standard error.")


def precision_option() -> Any:
    return typer.Option("auto", metavar="auto|32|bf16|16", help=PRECISION_HELP)


def device_option() -> Any:
    return typer.Option("cpu", metavar="DEVICE", help="Torch device: cpu, cuda, cuda:1, mps.")


def batch_size_option() -> Any:
    return typer.Option(64, min=1, metavar="N", help="Sequences per forward pass (64 is the fastest on a CPU; "
                                                     "1,024 on a GPU).")


def progress_option() -> Any:
    return typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")


def old_out_option() -> Any:
    """``--out``, the spelling of ``-o/--output`` before one convention: kept for one release."""
    return typer.Option(None, "--out", hidden=True)


def output_or_old(output: Optional[Path], old: Optional[Path], what: str = "FOLDER") -> Path:
    """``-o/--output``, or the deprecated ``--out`` with a warning; one of them is needed."""
    if old is not None:
        typer.echo("warning: --out is deprecated; use -o/--output", err=True)
        if output is None:
            return old
    if output is None:
        fail(f"give the output with -o/--output {what}")
    return output


# --- results ----------------------------------------------------------------------------------------

def say(message: str, quiet: bool = False) -> None:
    """A message for the user on standard error (not with ``--quiet``)."""
    if not quiet:
        typer.echo(message, err=True)


def print_json(result: Any) -> None:
    """``result`` as strict JSON on standard output (NaN as null)."""
    typer.echo(json_text(result))


# --- errors -----------------------------------------------------------------------------------------

def fail(message: object, code: int = 2) -> NoReturn:
    """Print ``error: message`` (one line) on stderr and exit with ``code``; an ``OSError`` is
    said in words (:func:`~promoterlab.files.os_error_words`), without its errno."""
    words = isinstance(message, OSError) and message.errno is not None
    text = (os_error_words(message) if words else str(message)).strip()
    text = text.splitlines()[0] if text else type(message).__name__
    ERRORS_SHOWN.append(text)
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code)


class OneLineErrors(TyperGroup):
    """The top-level group: every usage error is one ``error:`` line (exit 2), Ctrl-C one line
    (exit 130), in the style of the commands' own errors; ``--help`` lists the exit codes."""
    # typer raises its own Exit and Abort; in non-standalone mode main returns Exit's code.

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        shown = len(ERRORS_SHOWN)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as err:
            err.show()
            sys.exit(0)
        except UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            ERRORS_SHOWN.append(err.format_message())
            typer.echo(f"error: {' '.join(err.format_message().split())}{hint}", err=True)
            sys.exit(2)
        except ClickException as err:
            typer.echo(f"error: {' '.join(err.format_message().split())}", err=True)
            sys.exit(err.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            result = 130
        if result == 130 and len(ERRORS_SHOWN) == shown:  # typer ends a Ctrl-C with 130 and no word
            typer.echo("error: interrupted (Ctrl-C); outputs are written whole or not at all", err=True)
        sys.exit(result if isinstance(result, int) else 0)


# --- checks that run before any work ----------------------------------------------------------------

def check_output_file(path: Path, inputs: Iterable[Path | str | None] = ()) -> None:
    """Fail unless ``path`` can be written without harming an input (see :func:`check_output`)."""
    try:
        check_output(path, inputs)
    except OutputError as err:
        fail(err)


def check_folder(path: Path, option: str = "") -> None:
    """Fail unless an output folder is, or can be made, a writable folder."""
    try:
        check_output_folder(path, option)
    except OutputError as err:
        fail(err)


def check_input_path(path: Path | None, option: str = "", kind: str = "file") -> None:
    """Fail unless ``path`` can be read as a ``kind`` (see :func:`~promoterlab.files.check_input`)."""
    if path is None:
        return
    try:
        check_input(path, option, kind)
    except InputError as err:
        fail(err)


def open_run(paths: list[Path]) -> Any:
    """The :class:`~promoterlab.runs.Run` that ``paths`` name (one model or an ensemble; commands
    say which); an unfinished or missing run is one ``error:`` line."""
    from promoterlab.runs import Run, RunError

    try:
        return Run.open(paths[0] if len(paths) == 1 else paths)
    except (RunError, FileNotFoundError, OSError) as err:
        fail(err)


def check_device(device: str, option: str = "--device") -> None:
    """Fail unless ``device`` names a torch device that this machine has."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        fail(f"{option} {device}: not a torch device (e.g. cpu, cuda, cuda:1, mps)")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            fail(f"{option} {device}: CUDA is not available on this machine (use {option} cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            fail(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        fail(f"{option} {device}: MPS is not available on this machine (use {option} cpu)")


def check_precision(value: str, device: Any = None, option: str = "--precision") -> str:
    """``value`` in the vocabulary of :mod:`promoterlab.precision` (a Lightning spelling such as
    ``bf16-mixed`` is read as ours, with a warning naming it); fail on any other value, on ``16``
    where ``device`` (a torch device or ``"gpu"``/``"cpu"``; None: not known yet) is a CPU, and
    on a ``PROMOTERLAB_PRECISION`` that is neither 32 nor bf16."""
    try:
        new = normalize_precision(value, warn=False)
        if new == "auto":
            env_precision()
    except ValueError as err:
        fail(f"{option}{str(err).removeprefix('precision')}" if str(err).startswith("precision") else err)
    if new != str(value).strip().lower():
        typer.echo(f"warning: {option} {value} is deprecated; use {option} {new}", err=True)
    if new == "16" and device is not None and device_type(device) == "cpu":
        fail(f"{option} 16 (fp16 mixed) runs on a GPU only, and this runs on the CPU; use {option} bf16 or 32")
    return new


# --- help texts with values filled in when they are shown --------------------------------------------

class _HelpValues(dict):
    """Values for ``{...}`` in help texts, imported only when a help text is shown."""

    def __missing__(self, key: str) -> Any:
        if key == "env_var":
            from promoterlab.datasets import ENV_VAR

            self[key] = ENV_VAR
        elif key == "auto_precision":
            from promoterlab.precision import describe_auto

            self[key] = describe_auto()
        else:
            raise KeyError(key)
        return self[key]


class LazyHelpCommand(TyperCommand):
    """A command whose help reads well at 80 columns: arguments and options by their names and
    value names (FILE, N, ...), never by Python types; option help may hold ``{auto_precision}`` or
    ``{env_var}``, filled in when the help is shown, so that importing the CLI does not import torch."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        values = _HelpValues()
        for param in self.params:
            help_text = getattr(param, "help", None)
            for key in ("auto_precision", "env_var"):
                if help_text and "{" + key + "}" in help_text:
                    help_text = param.help = help_text.replace("{" + key + "}", str(values[key]))
            _plain(param)
        super().format_help(ctx, formatter)

    def get_usage(self, ctx: Any) -> str:
        for param in self.params:
            _plain(param)
        return super().get_usage(ctx)


def _plain(param: Any) -> None:
    """Show ``param`` by its value name alone: ``RUN...``, ``[DATA]``, ``--output FILE``."""
    name = param.metavar or (param.name or "").upper()
    if param.param_type_name == "argument":
        param.display_type_rich = lambda ctx: None
        shown = name if param.required else f"[{name}]"
        param._usage_display_name = lambda: shown
    else:
        param.display_type_rich = lambda ctx: name


# --- the terminal while a command works -------------------------------------------------------------

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


@contextlib.contextmanager
def terminal(quiet: bool) -> Iterator[None]:
    """promoterlab's log lines (the plan of a run, where it went) on stderr; only warnings and
    errors when ``quiet``; Lightning's chatter off. The logger is restored afterwards."""
    from promoterlab.training.quiet import quiet_lightning

    quiet_lightning()
    logger = logging.getLogger("promoterlab")
    handler, level = _StderrHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def size_text(n: int) -> str:
    """A byte count in words: ``160 B``, ``1.2 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


__all__ = ["EXIT_CODES", "LazyHelpCommand", "OneLineErrors", "PRECISION_HELP", "check_device", "check_folder",
           "check_input_path", "check_output_file", "check_precision", "fail", "json", "open_run",
           "output_or_old", "print_json", "say", "size_text", "terminal"]
