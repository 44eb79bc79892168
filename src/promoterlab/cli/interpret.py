"""``promoterlab explain``, ``variants``, ``motifs`` and ``marginalize``: thin layers over
:mod:`promoterlab.interpret`. An ensemble is interpreted as one model, the mean of its members.
torch and tangermeme are imported inside the commands; every check that needs no data runs before
any work."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer

from promoterlab.cli.base import (PRECISION_HELP, batch_size_option, check_device, check_folder, check_input_path,
                                  check_output_file, check_precision, device_option, fail, json_option,
                                  old_out_option, open_run, output_or_old, precision_option, print_json,
                                  progress_option, quiet_option, say)

METHODS = ("ism", "deepliftshap")
RUN_HELP = ("Run folder (a model or an ensemble, or a model.pt), a folder of runs or a quoted glob; an "
            "ensemble is interpreted as the mean of its models.")
ATTRIBUTION_PRECISION_HELP = (PRECISION_HELP + " ISM in bf16 is about 1.8x faster and within 0.014 of fp32 "
                              "(r 0.9998); DeepLIFT/SHAP always runs in fp32.")


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> None:
    if value not in choices:
        fail(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def _check_inputs(*paths: Optional[Path], option: str = "") -> None:
    for path in paths:
        check_input_path(path, option)


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
    run_dir: Path = typer.Argument(..., help=RUN_HELP, metavar="RUN"),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of sequences.", metavar="INPUT"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Folder to write: attributions.npz (ids, inserts, prediction, "
                                               "attributions and ism as sequence x insert position x A/C/G/T) and, "
                                               "for the first --max-plots sequences, NNNN_<id>.png: the "
                                               "attribution logo over the ISM heat map."),
    out: Optional[Path] = old_out_option(),
    method: str = typer.Option("ism", metavar="ism|deepliftshap", help="ism (saturation mutagenesis) or "
                               "deepliftshap (DeepLIFT/SHAP against dinucleotide-shuffled inserts)."),
    ids: Optional[str] = typer.Option(None, metavar="ID,ID", help="Explain only these sequences."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, metavar="NAME", help="Id column of a table with a header "
                                                                    "(default: the row number)."),
    max_plots: int = typer.Option(20, min=0, metavar="N", help="PNGs for the first N sequences."),
    shuffles: int = typer.Option(20, min=1, metavar="N", help="References per sequence for deepliftshap."),
    seed: int = typer.Option(0, metavar="N", help="Seed of the shuffled references."),
    precision: str = typer.Option("auto", metavar="auto|32|bf16|16", help=ATTRIBUTION_PRECISION_HELP),
    device: str = device_option(),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Which bases matter: per-sequence attributions of the inserts (.npz) and logos over ISM heat maps (PNG)."""
    output = output_or_old(output, out)
    _check_choice(method, METHODS, "--method")
    precision = check_precision(precision, device)
    check_folder(output, "-o/--output")
    _check_inputs(input)
    check_device(device)
    run = open_run([run_dir])
    chosen = [i.strip() for i in ids.split(",") if i.strip()] if ids is not None else None
    if ids is not None and not chosen:
        fail("--ids is empty; give comma-separated ids")
    from promoterlab.interpret.explain import explain_file

    try:
        with _warnings_once():
            result = explain_file(run, input, output, method, chosen, seq_col, id_col, max_plots, shuffles, seed,
                                  precision, device, progress and not quiet)
    except (ValueError, OSError) as err:
        fail(err)
    plots = min(max_plots, len(result.ids))
    if as_json:
        print_json({"explained": len(result.ids), "method": method, "model": run.describe(),
                    "attributions": str(output / "attributions.npz"), "pictures": plots})
    say(f"explained {len(result.ids)} sequences with {run.describe()} ({method}): "
        f"{output / 'attributions.npz'} and {plots} PNGs", quiet)


def variants(
    run_dir: list[Path] = typer.Argument(..., help="Run folder(s) as for predict; an ensemble gives mean effects "
                                                   "with delta_sd and n_models.", metavar="RUN..."),
    pairs: Path = typer.Argument(..., help="TSV with a header: id, ref, alt (two sequences) or id, seq, pos, alt "
                                           "(pos 1-based; alt replaces the bases from pos on).", metavar="PAIRS"),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="Output table (a file, '-': standard output): id, ref_pred, alt_pred, delta "
                                     "(and delta_sd, n_models for an ensemble)."),
    plot: Optional[Path] = typer.Option(None, metavar="FILE", help="Also save a ranked effect plot (PNG, SVG, PDF)."),
    batch_size: int = batch_size_option(),
    precision: str = precision_option(),
    device: str = device_option(),
    strict: bool = typer.Option(False, "--strict", help="Refuse a file whose ids repeat (else: a warning, and every row "
                                            "is kept)."),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """What a mutation does: predicted expression of reference and alternative (RC-averaged), streamed."""
    precision = check_precision(precision, device)
    check_output_file(output, [*run_dir, pairs])  # before any work
    if plot is not None:
        check_output_file(plot, [*run_dir, pairs, output])
        if plot.suffix.lower() not in (".png", ".svg", ".pdf"):
            fail(f"--plot {plot}: give a .png, .svg or .pdf file")
    _check_inputs(pairs)
    check_device(device)
    run = open_run(run_dir)
    inputs = [*run.files(), pairs]
    check_output_file(output, inputs)  # the run's own files, found now
    from promoterlab.interpret.variants import write_variant_effects

    try:
        n = write_variant_effects(run, pairs, output, plot, batch_size, device, precision, progress and not quiet,
                                  inputs=inputs, strict=strict)
    except (ValueError, OSError) as err:
        fail(err)
    where = "standard output" if str(output) == "-" else str(output)
    if as_json and str(output) != "-":
        print_json({"variants": n, "output": where, "model": run.describe(), "plot": None if plot is None
                    else str(plot)})
    say(f"wrote {n} variant effects of {run.describe()} to {where}", quiet)


def motifs(
    run_dir: Path = typer.Argument(..., help=RUN_HELP, metavar="RUN"),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of many sequences.", metavar="INPUT"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Folder to write: seqlets.tsv (every seqlet: id, start and end "
                                               "on the insert, attribution, p-value, sign, motif), motifs.tsv (each "
                                               "motif: sign, n_seqlets, consensus, best known match, Tomtom p-value, "
                                               "similarity) and <motif>.png (attribution logo over the information "
                                               "content)."),
    out: Optional[Path] = old_out_option(),
    method: str = typer.Option("deepliftshap", metavar="deepliftshap|ism", help="Attributions to call seqlets in."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, metavar="NAME", help="Id column of a table with a header "
                                                                    "(default: the row number)."),
    threshold: float = typer.Option(1e-3, metavar="P", help="Seqlet p-value cut-off (tangermeme's recursive "
                                                            "seqlets)."),
    max_seqlets: int = typer.Option(2000, min=2, metavar="N", help="Strongest seqlets of each sign that are "
                                                                   "clustered."),
    cluster_p: float = typer.Option(0.05, metavar="P", help="Tomtom p-value at which clusters are cut apart."),
    min_seqlets: int = typer.Option(10, min=2, metavar="N", help="Smallest cluster reported as a motif."),
    shuffles: int = typer.Option(20, min=1, metavar="N", help="References per sequence for deepliftshap."),
    seed: int = typer.Option(0, metavar="N", help="Seed of the shuffled references."),
    precision: str = typer.Option("auto", metavar="auto|32|bf16|16", help=ATTRIBUTION_PRECISION_HELP),
    device: str = device_option(),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Which motifs the model learned: seqlets clustered into motifs, compared with known yeast motifs;
    the table of motifs on standard output."""
    output = output_or_old(output, out)
    _check_choice(method, METHODS, "--method")
    precision = check_precision(precision, device)
    for value, option in ((threshold, "--threshold"), (cluster_p, "--cluster-p")):
        if not 0 < value <= 1:
            fail(f"{option} must be a p-value in (0, 1], got {value:g}")
    check_folder(output, "-o/--output")
    _check_inputs(input)
    check_device(device)
    run = open_run([run_dir])
    from promoterlab.interpret.motifs import find_motifs

    try:
        with _warnings_once():
            _, found, table = find_motifs(run, input, output, method, seq_col, id_col, threshold, max_seqlets,
                                          cluster_p, min_seqlets, shuffles, seed, precision, device,
                                          progress and not quiet)
    except (ValueError, OSError) as err:
        fail(err)
    if as_json:
        print_json({"motifs": table.to_dict("records"), "folder": str(output), "model": run.describe()})
    elif len(table):
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    say(f"found {len(found)} motifs in the attributions of {run.describe()}; tables and logos in {output}", quiet)


def marginalize(
    run_dir: Path = typer.Argument(..., help=RUN_HELP, metavar="RUN"),
    motif: str = typer.Argument(..., help="Known motif name (TATA, Reb1, Abf1, Rap1, Cbf1, polyA:T, Ume6, Gcn4) "
                                          "or bases (A, C, G, T; N keeps the background).", metavar="MOTIF"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Folder to write: marginalize.tsv (position, strand, mean and sd "
                                               "of the predicted change over the backgrounds, n) and "
                                               "marginalize.png (the mean change by position and strand)."),
    out: Optional[Path] = old_out_option(),
    background: Optional[Path] = typer.Option(None, metavar="FILE", help="Background sequences (default: random "
                                              "DREAM-style 80-mers between the DREAM adapters)."),
    n_background: int = typer.Option(100, min=1, metavar="N", help="Random backgrounds when no --background is "
                                                                   "given."),
    seed: int = typer.Option(0, metavar="N", help="Seed of the random backgrounds."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a --background table "
                                                                     "with a header."),
    precision: str = precision_option(),
    device: str = device_option(),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Insert a motif at every position of background sequences: mean effect by position and strand."""
    output = output_or_old(output, out)
    precision = check_precision(precision, device)
    check_folder(output, "-o/--output")
    _check_inputs(background, option="--background")
    check_device(device)
    run = open_run([run_dir])
    from promoterlab.interpret.marginalize import marginalize_run, motif_bases

    try:
        bases = motif_bases(motif)
        table = marginalize_run(run, motif, output, background, n_background, seed, seq_col, None, precision,
                                device, progress and not quiet)
    except (ValueError, OSError) as err:
        fail(err)
    best = table.loc[table["mean"].abs().idxmax()]
    if as_json:
        print_json({"motif": motif, "bases": bases, "model": run.describe(), "largest_mean": float(best["mean"]),
                    "position": int(best["position"]), "strand": best["strand"],
                    "table": str(output / "marginalize.tsv"), "figure": str(output / "marginalize.png")})
    say(f"{motif} ({bases}) with {run.describe()}: largest mean effect {best['mean']:+.3f} at insert position "
        f"{int(best['position'])} ({best['strand']} strand); {output / 'marginalize.tsv'}, "
        f"{output / 'marginalize.png'}", quiet)
