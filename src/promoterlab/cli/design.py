"""``promoterlab design`` and ``promoterlab select``: thin layers over :mod:`promoterlab.design`.
numpy, torch and the design package are imported inside the commands, so that help and argument
errors answer at once; every check that needs no data runs before any work."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from promoterlab.cli.base import (check_device, check_input_path, check_output_file, check_precision,
                                  device_option, fail, json_option, open_run, precision_option, print_json,
                                  quiet_option, say)

ALGORITHMS = ("greedy", "evolve")
STRATEGIES = ("uncertainty", "diverse-uncertainty", "random", "goal")
DEFAULT_STEPS = {"greedy": 40, "evolve": 150}


def _goal(text: str, option: str = "--goal"):
    from promoterlab.design.optimize import Goal

    try:
        return Goal.parse(text)
    except ValueError as err:
        fail(f"{option}: {err}")


def _sites(values: list[str], option: str) -> tuple[str, ...]:
    """Repeated and comma-separated IUPAC sites, checked."""
    from promoterlab.design.constraints import site_pattern

    sites = tuple(s.strip().upper() for value in values for s in value.split(",") if s.strip())
    for site in sites:
        try:
            site_pattern(site)
        except ValueError as err:
            fail(f"{option}: {err}")
    return sites


def _gc_range(text: Optional[str]) -> tuple[float, float]:
    if text is None:
        return (0.0, 1.0)
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        fail(f"--gc expects LOW,HIGH fractions (e.g. 0.35,0.65), got {text!r}")
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high <= 1):
        fail(f"--gc expects LOW,HIGH with 0 <= LOW <= HIGH <= 1, got {text!r}")
    return (low, high)


def design(
    run_dir: list[Path] = typer.Argument(..., help="Run folder (a model or an ensemble); several, a folder of runs "
                                                   "or a quoted glob: an ensemble, whose sd the score is penalised by.",
                                         metavar="RUN..."),
    goal: str = typer.Option(..., metavar="max|min|VALUE", help="max, min, or a target expression value (e.g. 8.5)."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="Designs table (a file, '-': standard output): id, sequence, insert, "
                                     "prediction, sd, lower, upper, score, edits from the start, constraints."),
    n: int = typer.Option(100, "--n", min=1, help="Designs to return."),
    start: Optional[Path] = typer.Option(None, metavar="FILE", help="Start from these sequences (FASTA, TSV/CSV or DREAM text; one "
                                                    "insert length) instead of random inserts."),
    max_edits: Optional[int] = typer.Option(None, min=0, metavar="K", help="At most this many substitutions from the start "
                                                              "(needs --start)."),
    algorithm: str = typer.Option("greedy", metavar="greedy|evolve", help="greedy (substitutions rated by in-silico mutagenesis, the best "
                                                 "kept) or evolve (crossover and mutation)."),
    penalty: float = typer.Option(1.0, metavar="LAMBDA", help="λ of the score mean − λ·sd toward the goal: keeps designs where the "
                                            "ensemble agrees (0: ignore the sd)."),
    steps: Optional[int] = typer.Option(None, min=1, metavar="N", help="Greedy steps or evolutionary generations (default 40 "
                                                          "greedy, 150 evolve)."),
    candidates: int = typer.Option(24, min=1, metavar="N", help="Greedy: substitutions predicted exactly per design and step "
                                                   "(the best rated by the gradient; twice as many of "
                                                   "the next-rated when none improves, up to all)."),
    population: Optional[int] = typer.Option(None, min=1, metavar="N", help="Lineages searched (default --n, twice that with "
                                                               "--min-distance > 1)."),
    min_distance: int = typer.Option(1, min=1, metavar="BASES", help="Designs differ from each other in at least this many bases."),
    gc: Optional[str] = typer.Option(None, metavar="LOW,HIGH", help="LOW,HIGH: GC fraction of the insert (e.g. 0.35,0.65)."),
    forbid: list[str] = typer.Option([], metavar="SITES", help="Sites that may not occur, on either strand, junctions included "
                                              "(IUPAC; repeatable or comma-separated, e.g. GGTCTC,GAATTC)."),
    max_homopolymer: Optional[int] = typer.Option(None, min=1, metavar="BASES", help="Longest run of one base."),
    require: list[str] = typer.Option([], metavar="MOTIF", help="Motifs the insert must keep (IUPAC, forward strand; frozen where a "
                                               "start has them, planted in random starts)."),
    right_flank: Optional[str] = typer.Option(None, metavar="SEQUENCE", help="Fixed sequence after the insert (default: the ending "
                                                         "that the run's training sequences share)."),
    insert_length: Optional[int] = typer.Option(None, min=1, metavar="BASES", help="Length of random inserts (default: the common "
                                                                  "insert length of the training sequences, or 80)."),
    interval: Optional[float] = typer.Option(0.9, metavar="LEVEL", help="Level of the calibrated interval reported (lower, upper) "
                                                       "when the run has a calibration."),
    plot: Optional[Path] = typer.Option(None, metavar="FILE", help="Figure of the objective over iterations (default: OUTPUT with "
                                                   ".png for a file output; none for '-')."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a --start table with a header."),
    id_col: Optional[str] = typer.Option(None, metavar="NAME", help="Id column of a --start table with a header."),
    seed: int = typer.Option(0, metavar="N", help="Seed of random starts and of the search."),
    precision: str = precision_option(),
    device: str = device_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Design promoter inserts toward a goal under a lab's constraints, penalised by the ensemble's sd."""
    precision = check_precision(precision, device)
    if algorithm not in ALGORITHMS:
        fail(f"--algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    if max_edits is not None and start is None:
        fail("--max-edits counts substitutions from a start sequence: give --start FILE")
    if not (math.isfinite(penalty) and penalty >= 0):
        fail(f"--penalty must be a number >= 0, got {penalty:g}")
    if interval is not None and not 0 < interval < 1:
        fail(f"--interval must be a level between 0 and 1 (e.g. 0.9), got {interval:g}")
    if as_json and str(output) == "-":
        fail("--json prints on standard output; give -o a file name")
    goal_value = _goal(goal)
    forbidden, required = _sites(forbid, "--forbid"), _sites(require, "--require")
    gc_range = _gc_range(gc)
    check_input_path(start, "--start")
    check_device(device)
    run = open_run(run_dir)
    inputs = [*run.files(), *([start] if start else [])]
    check_output_file(output, inputs)
    if plot is None and str(output) != "-":
        plot = output.with_suffix(".png") if output.suffix != ".png" else output.with_suffix(".objective.png")
    if plot is not None:
        check_output_file(plot, [*inputs, output])
    from promoterlab.data.readers import DataError
    from promoterlab.design.constraints import Checker, Constraints, DesignSpace
    from promoterlab.design.files import default_space, design_run, plot_history, read_starts, write_table
    from promoterlab.design.optimize import Settings

    try:
        constraints = Constraints(gc_range, forbidden, max_homopolymer, required)
        settings = Settings(goal_value, penalty, algorithm, steps or DEFAULT_STEPS[algorithm], candidates,
                            max_edits=max_edits, min_distance=min_distance, seed=seed)
        space = default_space(run, right_flank, insert_length)
        starts = None
        if start is not None:
            ids, codes, space = read_starts(start, space, seq_col, id_col)
            starts = (ids, codes)
        Checker(space, constraints)  # an impossible GC range or motifs that do not fit: before any work
    except (ValueError, DataError, OSError) as err:
        fail(err)

    def report(row: dict) -> None:
        if not quiet:
            typer.echo(f"iteration {row['iteration']}: best score {row['best_score']:.3f}, median "
                       f"{row['median_score']:.3f}, mean prediction {row['mean_prediction']:.3f}", err=True)

    try:
        designed = design_run(run, settings, n, constraints, space, starts, population, interval, device, precision,
                              report)
        write_table(designed.table, output, inputs)
        if plot is not None and len(designed.history):
            plot_history(designed.history, plot, title=f"{algorithm}, goal {goal_value}, λ = {penalty:g}")
    except (ValueError, OSError) as err:
        fail(err)
    if not quiet:
        for note in designed.notes:
            typer.echo(f"note: {note}", err=True)
    table = designed.table
    summary = {"designs": len(table), "goal": str(goal_value), "algorithm": algorithm, "penalty": penalty,
               "mean_prediction": float(table["prediction"].mean()) if len(table) else None,
               "best_prediction": (float(table["prediction"].iloc[0]) if len(table) else None),
               "output": str(output), "plot": str(plot) if plot else None, "notes": designed.notes}
    if as_json:
        print_json(summary)
    where = "standard output" if str(output) == "-" else output
    say(f"wrote {len(table)} designs of {run.describe()} (goal {goal_value}) to {where}"
        + (f"; objective plot {plot}" if plot else ""), quiet)


def select(
    paths: list[Path] = typer.Argument(..., help="RUN... POOL: run folder(s) (several, a folder of runs or a glob: "
                                                 "an ensemble), then the candidates (FASTA, TSV/CSV or DREAM text).",
                                       metavar="RUN... POOL"),
    n: int = typer.Option(..., "--n", min=1, help="Sequences to choose."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE",
                                help="Chosen sequences (a file, '-': standard output): rank, id, seq, prediction, sd, "
                                     "score."),
    strategy: str = typer.Option("uncertainty", metavar="STRATEGY", help="uncertainty (the default: ensemble disagreement; "
                                                             "the most label-saving on native data, see "
                                                             "docs/design_and_selection.md), "
                                                             "diverse-uncertainty (uncertain and spread out in the "
                                                             "model's embedding), random (the control) or goal "
                                                             "(expected improvement toward --goal)."),
    goal: Optional[str] = typer.Option(None, metavar="max|min|VALUE", help="For --strategy goal: max, min or a target value."),
    incumbent: Optional[float] = typer.Option(None, metavar="VALUE", help="For --strategy goal: the best measured expression so far "
                                                         "(default: the best prediction in the pool)."),
    seed: int = typer.Option(0, metavar="N", help="Seed of --strategy random."),
    seq_col: Optional[str] = typer.Option(None, metavar="NAME", help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, metavar="NAME", help="Id column of a table with a header (default: row index)."),
    precision: str = precision_option(),
    device: str = device_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Choose which candidates to measure next, so that the next model learns the most."""
    precision = check_precision(precision, device)
    if strategy not in STRATEGIES:
        fail(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if strategy == "goal" and goal is None:
        fail("--strategy goal needs --goal (max, min or a value)")
    if as_json and str(output) == "-":
        fail("--json prints on standard output; give -o a file name")
    if len(paths) < 2:
        fail("give RUN and a POOL file of candidates")
    goal_value = _goal(goal) if goal is not None else None
    run_dirs, pool = paths[:-1], paths[-1]
    check_input_path(pool)
    check_device(device)
    run = open_run(run_dirs)
    inputs = [*run.files(), pool]
    check_output_file(output, inputs)
    from promoterlab.design.files import select_pool, write_table

    try:
        table = select_pool(run, pool, strategy, n, goal_value, incumbent, seed, seq_col, id_col, device, precision)
        write_table(table, output, inputs)
    except (ValueError, OSError) as err:
        fail(err)
    if as_json:
        print_json({"chosen": len(table), "strategy": strategy, "mean_sd": float(table["sd"].mean()),
                    "mean_prediction": float(table["prediction"].mean()), "output": str(output)})
    where = "standard output" if str(output) == "-" else output
    say(f"chose {len(table)} of the candidates in {pool} by {strategy} with {run.describe()}; wrote them to {where}",
        quiet)
