"""Command line of interpretation: ``explain``, ``variants``, ``motifs`` and ``marginalize``.

Thin wrappers over :mod:`promoterlab.interpret`; registered in the main CLI with
``app.command()(cli_interpret.explain)`` and so on. torch, tangermeme and the API are imported
inside the commands, so that help and argument errors answer at once; every check that needs no
data runs before any work.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer

from promoterlab.cli_data import (
    PRECISION_HELP,
    _check_device,
    _check_folder,
    _check_input,
    _check_output,
    _check_precision,
    _fail,
    _open_run,
)

METHODS = ("ism", "deepliftshap")
ATTRIBUTION_PRECISION_HELP = (PRECISION_HELP + " ISM in bf16 is about 1.8x faster and within 0.014 of fp32 "
                              "(r 0.9998); DeepLIFT/SHAP always runs in fp32.")


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> None:
    if value not in choices:
        _fail(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def _check_inputs(*paths: Optional[Path], option: str = "") -> None:
    for path in paths:
        _check_input(path, option)


@contextlib.contextmanager
def _warnings_once() -> Iterator[None]:
    """Library warnings as one ``warning:`` line each, every distinct message once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for item in caught:
        text = str(item.message).strip().splitlines()[0][:300] if str(item.message).strip() else ""
        if text and text not in seen:
            seen.add(text)
            typer.echo(f"warning: {text}", err=True)


def explain(
    run_dir: Path = typer.Argument(..., help="Run folder (or model.pt), ensemble folder, folder of runs or a quoted "
                                             "glob: an ensemble is interpreted as the mean of its models.",
                                   metavar="RUN"),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of sequences."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: attributions.npz and one PNG per sequence."),
    method: str = typer.Option("ism", help="ism (saturation mutagenesis) or deepliftshap (DeepLIFT/SHAP against "
                                           "dinucleotide-shuffled inserts)."),
    ids: Optional[str] = typer.Option(None, help="Comma-separated ids: explain only these sequences."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, help="Id column of a table with a header (default: row index)."),
    max_plots: int = typer.Option(20, min=0, help="PNGs for the first N sequences."),
    shuffles: int = typer.Option(20, min=1, help="References per sequence for deepliftshap."),
    seed: int = typer.Option(0, help="Seed of the shuffled references."),
    precision: str = typer.Option("auto", help=ATTRIBUTION_PRECISION_HELP),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1, mps)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Which bases matter: per-sequence attributions (.npz) and logos over ISM heat maps (PNG)."""
    _check_choice(method, METHODS, "--method")
    precision = _check_precision(precision, device)
    _check_folder(out, "--out")
    _check_inputs(input)
    _check_device(device)
    run = _open_run([run_dir])
    chosen = [i.strip() for i in ids.split(",") if i.strip()] if ids is not None else None
    if ids is not None and not chosen:
        _fail("--ids is empty; give comma-separated ids")
    from promoterlab.interpret.explain import explain_file

    try:
        with _warnings_once():
            result = explain_file(run, input, out, method, chosen, seq_col, id_col, max_plots, shuffles, seed,
                                  precision, device, progress)
    except (ValueError, OSError) as err:
        _fail(err)
    plots = min(max_plots, len(result.ids))
    typer.echo(f"explained {len(result.ids)} sequences with {run.describe()} ({method}): "
               f"{out / 'attributions.npz'} and {plots} PNGs", err=True)


def variants(
    run_dir: list[Path] = typer.Argument(..., help="Run directory (or model.pt); several, a folder of runs or a "
                                                   "glob: an ensemble (mean effects, delta_sd, n_models).",
                                         metavar="RUN"),
    pairs: Path = typer.Argument(..., help="TSV with a header: id, ref, alt (two sequences) or id, seq, pos, alt "
                                           "(pos 1-based; alt replaces the bases from pos on)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output TSV: id, ref_pred, alt_pred, delta "
                                                            "('-': standard output)."),
    plot: Optional[Path] = typer.Option(None, help="Also save a ranked effect plot (PNG, SVG, PDF)."),
    batch_size: int = typer.Option(128, min=1, help="Sequences per forward pass."),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1, mps)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    strict: bool = typer.Option(False, help="Refuse a file whose ids repeat (else: a warning, and every row "
                                            "is kept)."),
) -> None:
    """What a mutation does: predicted expression of reference and alternative (RC-averaged), streamed."""
    precision = _check_precision(precision, device)
    _check_output(output, [*run_dir, pairs])  # before any work
    if plot is not None:
        _check_output(plot, [*run_dir, pairs, output])
        if plot.suffix.lower() not in (".png", ".svg", ".pdf"):
            _fail(f"--plot {plot}: give a .png, .svg or .pdf file")
    _check_inputs(pairs)
    _check_device(device)
    run = _open_run(run_dir)
    inputs = [*run.files(), pairs]
    _check_output(output, inputs)  # the run's own files, found now
    from promoterlab.interpret.variants import write_variant_effects

    try:
        n = write_variant_effects(run, pairs, output, plot, batch_size,
                                  device, precision, progress, inputs=inputs, strict=strict)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"wrote {n} variant effects of {run.describe()} to "
               f"{'standard output' if str(output) == '-' else output}", err=True)


def motifs(
    run_dir: Path = typer.Argument(..., help="Run folder (or model.pt), ensemble folder, folder of runs or a quoted "
                                             "glob: an ensemble is interpreted as the mean of its models.",
                                   metavar="RUN"),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of many sequences."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: seqlets.tsv, motifs.tsv, one PNG per motif."),
    method: str = typer.Option("deepliftshap", help="Attributions: deepliftshap or ism."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, help="Id column of a table with a header (default: row index)."),
    threshold: float = typer.Option(1e-3, help="Seqlet p-value cut-off (tangermeme's recursive seqlets)."),
    max_seqlets: int = typer.Option(2000, min=2, help="Strongest seqlets of each sign that are clustered."),
    cluster_p: float = typer.Option(0.05, help="Tomtom p-value at which clusters are cut apart."),
    min_seqlets: int = typer.Option(10, min=2, help="Smallest cluster reported as a motif."),
    shuffles: int = typer.Option(20, min=1, help="References per sequence for deepliftshap."),
    seed: int = typer.Option(0, help="Seed of the shuffled references."),
    precision: str = typer.Option("auto", help=ATTRIBUTION_PRECISION_HELP),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1, mps)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Which motifs the model learned: seqlets clustered into motifs, compared with known yeast motifs."""
    _check_choice(method, METHODS, "--method")
    precision = _check_precision(precision, device)
    for value, option in ((threshold, "--threshold"), (cluster_p, "--cluster-p")):
        if not 0 < value <= 1:
            _fail(f"{option} must be a p-value in (0, 1], got {value:g}")
    _check_folder(out, "--out")
    _check_inputs(input)
    _check_device(device)
    run = _open_run([run_dir])
    from promoterlab.interpret.motifs import find_motifs

    try:
        with _warnings_once():
            _, found, table = find_motifs(run, input, out, method, seq_col, id_col, threshold, max_seqlets,
                                          cluster_p, min_seqlets, shuffles, seed, precision, device, progress)
    except (ValueError, OSError) as err:
        _fail(err)
    if len(table):
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    typer.echo(f"found {len(found)} motifs in the attributions of {run.describe()}; tables and logos in {out}",
               err=True)


def marginalize(
    run_dir: Path = typer.Argument(..., help="Run folder (or model.pt), ensemble folder, folder of runs or a quoted "
                                             "glob: an ensemble is interpreted as the mean of its models.",
                                   metavar="RUN"),
    motif: str = typer.Argument(..., help="Known motif name (TATA, Reb1, Abf1, Rap1, Cbf1, polyA:T, Ume6, Gcn4) "
                                          "or bases (A, C, G, T; N keeps the background)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: marginalize.tsv and marginalize.png."),
    background: Optional[Path] = typer.Option(None, help="Background sequences (default: random DREAM-style "
                                                         "80-mers between the DREAM adapters)."),
    n_background: int = typer.Option(100, min=1, help="Random backgrounds when no --background is given."),
    seed: int = typer.Option(0, help="Seed of the random backgrounds."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a --background table with a header."),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1, mps)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Insert a motif at every position of background sequences: mean effect by position and strand."""
    precision = _check_precision(precision, device)
    _check_folder(out, "--out")
    _check_inputs(background, option="--background")
    _check_device(device)
    run = _open_run([run_dir])
    from promoterlab.interpret.marginalize import marginalize_run, motif_bases

    try:
        bases = motif_bases(motif)
        table = marginalize_run(run, motif, out, background, n_background, seed, seq_col, None, precision,
                                device, progress)
    except (ValueError, OSError) as err:
        _fail(err)
    best = table.loc[table["mean"].abs().idxmax()]
    typer.echo(f"{motif} ({bases}) with {run.describe()}: largest mean effect {best['mean']:+.3f} at insert position "
               f"{int(best['position'])} ({best['strand']} strand); {out / 'marginalize.tsv'}, "
               f"{out / 'marginalize.png'}", err=True)
