"""A report of a runs folder: one self-contained HTML file, or Markdown with a figures folder."""

from __future__ import annotations

import base64
import html
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from promoterlab.experiments.figures import write_figures
from promoterlab.experiments.results import (COMPARISON_RULE, FIT_RULE, analyse, axis_columns, markdown_table,
                                             write_tables)
from promoterlab.files import write_text_atomic

# (section title, figure file prefix), in report order.
SECTIONS = [
    ("Pearson against training-set size", "size_curve_"),
    ("Configurations side by side", "models_bar_"),
    ("Training curves along one axis", "overlay_"),
    ("Predicted against measured (test set, best validation run of each model)", "scatter_"),
    ("Training curves of every run", "curves/"),
]
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;"
         "text-align:right}th{background:#f0f0f0}img{max-width:100%}figure{margin:1em 0}"
         "figcaption{font-size:12px;color:#666}")


def write_report(runs_dir: str | Path, out_path: str | Path, baseline: Any = "legnet",
                 model_axis: str = "model", run_curves: bool = True) -> Path:
    """Tables, statistics and figures of every finished run in ``runs_dir``.

    Parameters
    ----------
    runs_dir : str or Path
        Folder of runs (see :func:`promoterlab.experiments.results.collect_runs`).
    out_path : str or Path
        ``*.html``: one self-contained file (figures embedded as PNG data URIs). ``*.md``:
        Markdown whose figures (PNG and SVG) go to the sibling folder ``<stem>_figures/``.
        ``summary.csv/.md`` and ``comparison.csv/.md`` are written beside it.
    baseline, model_axis
        Passed to :func:`promoterlab.experiments.results.paired_comparison`.
    run_curves : bool
        Include every run's own training curves (the other figures already overlay them).

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        On another suffix, or when ``runs_dir`` holds no finished run.
    """
    out = Path(out_path)
    if out.suffix not in (".html", ".md"):
        raise ValueError(f"{out}: the report is .html or .md")
    runs, summary, comparison = analyse(runs_dir, baseline, model_axis)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_tables(summary, comparison, out.parent)
    facts = {"runs_dir": str(runs_dir), "n_runs": len(runs), "n_configs": len(summary),
             "axes": axis_columns(runs), "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
             "baseline": f"{model_axis} = {baseline}"}
    if out.suffix == ".html":
        with tempfile.TemporaryDirectory() as tmp:
            figures = write_figures(runs, summary, tmp, model_axis=model_axis, run_curves=run_curves)
            text = _html(facts, runs, summary, comparison, Path(tmp), figures)
    else:
        folder = out.with_name(f"{out.stem}_figures")
        figures = write_figures(runs, summary, folder, model_axis=model_axis, run_curves=run_curves)
        text = _markdown(facts, runs, summary, comparison, folder, figures)
    write_text_atomic(out, text)
    return out


def _sections(folder: Path, figures: list[Path]) -> list[tuple[str, list[tuple[str, Path]]]]:
    """``(title, [(name, png path)])`` per section that has figures."""
    pngs = [(path.relative_to(folder).as_posix(), path) for path in figures if path.suffix == ".png"]
    out = []
    for title, prefix in SECTIONS:
        chosen = [(name, path) for name, path in pngs if name.startswith(prefix)]
        if chosen:
            out.append((title, chosen))
    return out


def _runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop(columns="run_dir")


def _html(facts: dict[str, Any], runs: pd.DataFrame, summary: pd.DataFrame, comparison: pd.DataFrame,
          folder: Path, figures: list[Path]) -> str:
    def table(frame: pd.DataFrame) -> str:
        if frame.empty:
            return "<p>None: no runs of the baseline, or none paired with it by seed.</p>"
        return frame.to_html(index=False, float_format=lambda x: f"{x:.4f}", na_rep="", border=0)

    def image(name: str, path: Path) -> str:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}">'
                f"<figcaption>{html.escape(name)}</figcaption></figure>")

    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>promoterlab results: {esc(facts['runs_dir'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>Results of {esc(facts['runs_dir'])}</h1>",
        (f"<p>{facts['n_runs']} finished runs in {facts['n_configs']} configurations; axes "
         f"{esc(', '.join(facts['axes']) or 'none')} (replicates: seed). Generated {facts['date']}.</p>"),
        f"<p><b>Fit label.</b> {esc(FIT_RULE)}</p>",
        f"<p><b>Comparison.</b> {esc(COMPARISON_RULE)} Baseline: {esc(facts['baseline'])}.</p>",
        "<h2>Summary over seeds</h2>", table(summary),
        "<h2>Comparison with the baseline</h2>", table(comparison),
    ]
    for title, images in _sections(folder, figures):
        body = "".join(image(name, path) for name, path in images)
        if title == SECTIONS[-1][0]:
            parts.append(f"<h2>{esc(title)}</h2><details><summary>{len(images)} runs</summary>{body}</details>")
        else:
            parts.append(f"<h2>{esc(title)}</h2>{body}")
    parts += ["<h2>Runs</h2>", table(_runs_table(runs)), "</body></html>"]
    return "\n".join(parts) + "\n"


def _markdown(facts: dict[str, Any], runs: pd.DataFrame, summary: pd.DataFrame, comparison: pd.DataFrame,
              folder: Path, figures: list[Path]) -> str:
    def table(frame: pd.DataFrame) -> str:
        return markdown_table(frame) if not frame.empty else "None: no runs of the baseline, or none paired with it."

    parts = [
        f"# Results of {facts['runs_dir']}", "",
        (f"{facts['n_runs']} finished runs in {facts['n_configs']} configurations; axes "
         f"{', '.join(facts['axes']) or 'none'} (replicates: seed). Generated {facts['date']}."), "",
        f"**Fit label.** {FIT_RULE}", "",
        f"**Comparison.** {COMPARISON_RULE} Baseline: {facts['baseline']}.", "",
        "## Summary over seeds", "", table(summary), "",
        "## Comparison with the baseline", "", table(comparison), "",
    ]
    for title, images in _sections(folder, figures):
        parts += [f"## {title}", ""]
        parts += [f"![{name}]({folder.name}/{name})" for name, _ in images]
        parts.append("")
    parts += ["## Runs", "", table(_runs_table(runs)), ""]
    return "\n".join(parts)
