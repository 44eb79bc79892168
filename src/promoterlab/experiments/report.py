"""A report of a runs folder (or of several sweeps, one per dataset): one self-contained HTML
file, or Markdown with a figures folder."""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from scipy.stats import spearmanr

from promoterlab.experiments.figures import write_figures
from promoterlab.experiments.progress import sweep_progress
from promoterlab.experiments.results import (COMPARISON_RULE, DREAM_SCORES, FIT_RULE, axis_columns, collect_runs,
                                             collect_sweeps, iter_groups, markdown_table, paired_comparison,
                                             seed_deltas, summarise, write_tables)
from promoterlab.files import write_text_atomic

# (section title, figure file prefix), in report order.
SECTIONS = [
    ("Pearson against training-set size", "size_curve_"),
    ("Configurations side by side", "models_bar_"),
    ("Every run of each model (validation solid, train dashed; dot: best epoch)", "runs_"),
    ("Training curves along one axis (means over seeds)", "overlay_"),
    ("Predicted against measured (test set, best validation run of each model)", "scatter_"),
    ("Training curves of every run", "curves/"),
]
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;"
         "text-align:right}th{background:#f0f0f0}img{max-width:100%}figure{margin:1em 0}"
         "figcaption{font-size:12px;color:#666}")
CONVERGENCE_RULE = ("best epoch: the epoch of best validation Pearson (the model kept); epochs: epochs trained; "
                    "plateau epoch (schedule plateau): the epoch after which validation stopped improving and "
                    "the cool-down began; a run that trained every epoch of its cap without early stopping, or "
                    "whose cool-down the cap began, 'hit the cap': it may not have converged.")
NO_BASELINE = "None: no runs of the baseline, or none paired with it by seed."

Block = tuple[str, Any]  # ("h1"|"h2"|"h3", title) | ("p", text) | ("table", frame) | ("figures", (title, [(name, path)]))


def write_report(runs_dir: str | Path | Mapping[str, str | Path], out_path: str | Path, baseline: Any = "legnet",
                 model_axis: str = "model", run_curves: bool = True, intro: str | Path | None = None,
                 label: str = "dataset") -> Path:
    """Tables, statistics and figures of every finished run in ``runs_dir``.

    Parameters
    ----------
    runs_dir : str, Path or mapping of str to path
        Folder of runs (see :func:`promoterlab.experiments.results.collect_runs`), or several
        sweeps by name (e.g. ``{"native": ..., "DREAM": ...}``), which become the axis ``label``.
    out_path : str or Path
        ``*.html``: one self-contained file (figures embedded as PNG data URIs). ``*.md``:
        Markdown whose figures (PNG and SVG) go to the sibling folder ``<stem>_figures/``.
        ``summary.csv/.md`` and ``comparison.csv/.md`` are written beside it.
    baseline, model_axis
        Passed to :func:`promoterlab.experiments.results.paired_comparison`.
    run_curves : bool
        Include every run's own training curves (the other figures already overlay them).
    intro : str or Path, optional
        A Markdown file whose text opens the report (e.g. the study's answer in words).
    label : str
        Name of the axis that tells several sweeps apart.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        On another suffix, a missing ``intro`` file, or when ``runs_dir`` holds no finished run.
    """
    out = Path(out_path)
    if out.suffix not in (".html", ".md"):
        raise ValueError(f"{out}: the report is .html or .md")
    if intro is not None and not Path(intro).is_file():
        raise ValueError(f"{intro}: intro file not found")
    sweeps = dict(runs_dir) if isinstance(runs_dir, Mapping) else {"": runs_dir}
    runs = collect_sweeps(sweeps, label) if isinstance(runs_dir, Mapping) else collect_runs(runs_dir)
    summary, comparison = summarise(runs), paired_comparison(runs, baseline=baseline, model_axis=model_axis)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_tables(summary, comparison, out.parent)
    where = ", ".join(f"{name}={folder}" if name else str(folder) for name, folder in sweeps.items())
    head: list[Block] = [("h1", f"Results of {where}")]
    if intro is not None:
        head += [("md", Path(intro).read_text())]
    head += [("p", f"{len(runs)} finished runs in {len(summary)} configurations; axes "
                   f"{', '.join(axis_columns(runs)) or 'none'} (replicates: seed). "
                   f"Generated {datetime.now().strftime('%Y-%m-%d %H:%M')}.")]
    tables = (_progress_blocks(sweeps) + _result_blocks(runs, summary, comparison, baseline, model_axis)
              + _convergence_blocks(runs, model_axis) + _cost_blocks(summary, model_axis))
    panel = label if label in runs else None
    if out.suffix == ".html":
        with tempfile.TemporaryDirectory() as tmp:
            figures = write_figures(runs, summary, tmp, model_axis=model_axis, run_curves=run_curves, panel_axis=panel)
            blocks = head + tables + _figure_blocks(Path(tmp), figures) + _runs_blocks(runs)
            text = _html(blocks, where)
    else:
        folder = out.with_name(f"{out.stem}_figures")
        figures = write_figures(runs, summary, folder, model_axis=model_axis, run_curves=run_curves, panel_axis=panel)
        text = _markdown(head + tables + _figure_blocks(folder, figures) + _runs_blocks(runs), folder)
    write_text_atomic(out, text)
    return out


def convergence_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the seeds, each seed's best epoch and epochs trained, and the cap hits.

    Returns
    -------
    pandas.DataFrame
        The axes, ``seeds``, ``best_epochs`` and ``epochs`` (comma-separated, in seed order),
        ``max_epochs`` and ``cap_hits`` (``k/n``: runs that trained every epoch of the cap); with
        plateau runs also ``plateau_epochs`` (``-`` where the cap, not a plateau, began the cool-down).
    """
    axes = axis_columns(runs)
    rows = []
    for key, group in iter_groups(runs.sort_values("seed"), axes):
        rows.append({**key, "seeds": ", ".join(str(s) for s in group["seed"]),
                     "best_epochs": ", ".join(str(int(e)) for e in group["best_epoch"]),
                     "epochs": ", ".join(str(int(e)) for e in group["epochs"]),
                     "plateau_epochs": ", ".join("-" if pd.isna(e) else str(int(e)) for e in group["plateau_epoch"]),
                     "max_epochs": group["max_epochs"].max(),
                     "cap_hits": f"{int((group['hit_cap'] == True).sum())}/{len(group)}"})  # noqa: E712
    frame = pd.DataFrame(rows)
    if "plateau_epoch" not in runs or runs["plateau_epoch"].isna().all():  # no plateau runs
        frame = frame.drop(columns="plateau_epochs", errors="ignore")
    if len(frame):
        frame["max_epochs"] = frame["max_epochs"].astype("Int64")  # NA where the cap is unknown ("auto")
    return frame.sort_values(axes, kind="stable").reset_index(drop=True) if axes and len(frame) else frame


def stopping_check(runs: pd.DataFrame, model_axis: str = "model") -> pd.DataFrame:
    """Did runs that stopped earlier than the other seeds of their configuration test worse?

    Within each configuration (all axes), the plateau epoch and the test Pearson of every seed are
    taken relative to the configuration's mean; per value of the axes other than ``model_axis``
    (e.g. one dataset and training-set size), the Spearman correlation of those two residuals
    across every model's seeds is given. A clearly positive ``rho`` says the early-stopping
    patience ends some runs on a noisy dip of validation Pearson, so seed-to-seed spread (and any
    Δ resting on few seeds) partly measures where the stopping rule fired.

    Returns
    -------
    pandas.DataFrame
        The axes other than ``model_axis``, ``n_runs``, ``rho`` and ``p_value``; empty without
        plateau runs with test Pearson in configurations of two or more seeds.
    """
    needed = {"plateau_epoch", "test_pearson"}
    if not needed <= set(runs) or runs[list(needed)].isna().all().any():
        return pd.DataFrame()
    axes = axis_columns(runs)
    runs = runs.dropna(subset=list(needed))
    runs = runs[runs.groupby(axes, dropna=False)["seed"].transform("size") > 1] if axes else runs
    if len(runs) < 3:
        return pd.DataFrame()
    centred = runs.groupby(axes, dropna=False)[list(needed)].transform(lambda x: x - x.mean()) if axes \
        else runs[list(needed)] - runs[list(needed)].mean()
    runs = runs.assign(plateau_residual=centred["plateau_epoch"], test_residual=centred["test_pearson"])
    keys, rows = [a for a in axes if a != model_axis], []
    for key, group in iter_groups(runs, keys):
        if len(group) >= 3 and group["plateau_residual"].nunique() > 1 and group["test_residual"].nunique() > 1:
            rho, p_value = spearmanr(group["plateau_residual"], group["test_residual"])
            rows.append({**key, "n_runs": len(group), "rho": float(rho), "p_value": float(p_value)})
    frame = pd.DataFrame(rows)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys and len(frame) else frame


def _progress_blocks(sweeps: dict[str, str | Path]) -> list[Block]:
    """What each sweep's grid still lacks (sweeps without ``spec.yaml`` are left out)."""
    frames = []
    for name, folder in sweeps.items():
        if (Path(folder) / "spec.yaml").is_file():
            progress = sweep_progress(folder)
            frames.append(progress.assign(sweep=name or str(folder))[["sweep", *progress.columns]])
    if not frames:
        return []
    progress = pd.concat(frames, ignore_index=True)
    done = int((progress["status"] == "finished").sum())
    if done == len(progress):
        return [("h2", "Progress"), ("p", f"All {done} runs of the grid finished.")]
    counts = ", ".join(f"{n} {status}" for status, n in progress["status"].value_counts().items())
    return [("h2", "Progress"),
            ("p", f"PARTIAL: {done} of {len(progress)} runs of the grid finished ({counts}); every table and "
                  "figure below covers the finished runs only. Not finished:"),
            ("table", progress[progress["status"] != "finished"].reset_index(drop=True))]


def _result_blocks(runs: pd.DataFrame, summary: pd.DataFrame, comparison: pd.DataFrame, baseline: Any,
                   model_axis: str) -> list[Block]:
    blocks: list[Block] = [
        ("p", f"**Fit label.** {FIT_RULE}"),
        ("p", f"**Comparison.** {COMPARISON_RULE} Baseline: {model_axis} = {baseline}."),
        ("h2", "Summary over seeds"), ("table", summary.dropna(axis=1, how="all")),
        ("h2", "Comparison with the baseline"), ("table", comparison),
    ]
    seed_level = seed_deltas(runs, "test_pearson", baseline, model_axis)
    if (seed_level["n_pairs"] > 1).any():
        blocks += [("h3", "Across seeds"),
                   ("p", "The same Δ test Pearson with a Student-t 95 % CI over the paired seeds' own "
                         "differences: it covers training noise (initialisation, data order), which the test "
                         "bootstrap above does not. With 3 to 5 seeds it is wide; a hybrid is only convincingly "
                         "better when both intervals exclude 0."),
                   ("table", seed_level.drop(columns="metric"))]
    if all(c in runs for c in DREAM_SCORES):
        deltas = pd.concat([seed_deltas(runs, c, baseline, model_axis) for c in DREAM_SCORES], ignore_index=True)
        columns = [c for c in summary.columns if c in axis_columns(summary) or c == "n_seeds"
                   or c.startswith("dream_")]
        blocks += [("h2", "Official DREAM 2022 scores (public leaderboard)"),
                   ("p", "Weighted Pearson (r²) and Spearman scores of the challenge; mean and SD over seeds. "
                         "Δ against the baseline is the mean over paired seeds with a Student-t 95 % CI over "
                         "those seeds (a score has no per-sequence bootstrap)."),
                   ("table", summary.loc[summary["dream_pearson_score_mean"].notna(), columns]),
                   ("table", deltas)]
    return blocks


def _convergence_blocks(runs: pd.DataFrame, model_axis: str) -> list[Block]:
    capped = runs[runs["hit_cap"] == True]  # noqa: E712 (None where unknown)
    if capped.empty:
        flagged = "No run hit its epoch cap: early stopping ended every run."
    elif len(capped) == len(runs):
        flagged = (f"**Every run ({len(runs)}) hit the epoch cap** (trained every epoch without early stopping; "
                   "none may have converged).")
    else:
        flagged = (f"**{len(capped)} of {len(runs)} runs hit the epoch cap** (trained every epoch without early "
                   f"stopping; they may not have converged): {', '.join(capped['run'])}.")
    blocks = [("h2", "Convergence"), ("p", CONVERGENCE_RULE), ("p", flagged), ("table", convergence_table(runs))]
    check = stopping_check(runs, model_axis)
    if len(check):
        blocks += [("h3", "Did early stopping decide the seed spread?"),
                   ("p", "Plateau epoch and test Pearson of each run relative to its configuration's mean over "
                         "seeds; Spearman rho of the two across every model's runs. rho well above 0: runs whose "
                         "validation plateaued earlier than their other seeds tested worse, i.e. the patience "
                         "stopped some runs on a noisy dip, and a Δ resting on few seeds partly measures where "
                         "the stopping rule fired."),
                   ("table", check)]
    return blocks


def _cost_blocks(summary: pd.DataFrame, model_axis: str) -> list[Block]:
    columns = [*axis_columns(summary), "params", "n_seeds", "epochs_mean", "train_seconds_mean",
               "seconds_per_epoch_mean"]
    frame = summary[[c for c in columns if c in summary]]
    return [("h2", "Wall time and parameters"),
            ("p", f"Parameters of each {model_axis}; training wall time per run (all epochs, validation "
                  "included) and per epoch, means over seeds. Wall times depend on what else ran on the machine."),
            ("table", frame)]


def _figure_blocks(folder: Path, figures: list[Path]) -> list[Block]:
    pngs = [(path.relative_to(folder).as_posix(), path) for path in figures if path.suffix == ".png"]
    blocks: list[Block] = []
    for title, prefix in SECTIONS:
        chosen = [(name, path) for name, path in pngs if name.startswith(prefix)]
        if chosen:
            blocks.append(("figures", (title, chosen)))
    return blocks


def _runs_blocks(runs: pd.DataFrame) -> list[Block]:
    return [("h2", "Runs"), ("table", runs.drop(columns="run_dir").dropna(axis=1, how="all"))]


def _html(blocks: list[Block], where: str) -> str:
    def table(frame: pd.DataFrame) -> str:
        if frame.empty:
            return f"<p>{NO_BASELINE}</p>"
        return frame.to_html(index=False, float_format=lambda x: f"{x:.4f}", na_rep="", border=0)

    def image(name: str, path: Path) -> str:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}">'
                f"<figcaption>{html.escape(name)}</figcaption></figure>")

    def paragraph(text: str) -> str:
        bold, _, rest = text.partition("** ") if text.startswith("**") else ("", "", text)
        return f"<p>{'<b>' + html.escape(bold.strip('*')) + '</b> ' if bold else ''}{html.escape(rest)}</p>"

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>promoterlab results: {html.escape(where)}</title><style>{STYLE}</style></head><body>"]
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            parts.append(paragraph(value))
        elif kind == "md":  # plain paragraphs: the intro's text, escaped
            parts += [f"<p>{html.escape(chunk.strip())}</p>" for chunk in value.split("\n\n") if chunk.strip()]
        elif kind == "table":
            parts.append(table(value))
        else:
            title, images = value
            body = "".join(image(name, path) for name, path in images)
            if title == SECTIONS[-1][0]:
                body = f"<details><summary>{len(images)} runs</summary>{body}</details>"
            parts.append(f"<h2>{html.escape(title)}</h2>{body}")
    return "\n".join(parts + ["</body></html>"]) + "\n"


def _markdown(blocks: list[Block], folder: Path) -> str:
    parts: list[str] = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            parts += [f"{'#' * int(kind[1])} {value}", ""]
        elif kind in ("p", "md"):
            parts += [value.strip(), ""]
        elif kind == "table":
            parts += [markdown_table(value) if not value.empty else NO_BASELINE, ""]
        else:
            title, images = value
            parts += [f"## {title}", "", *(f"![{name}]({folder.name}/{name})" for name, _ in images), ""]
    return "\n".join(parts)
