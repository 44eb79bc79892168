"""What a converted run folder says about its weights: ``summary.json`` and the model card ``README.md``."""

from __future__ import annotations

from typing import Any

from promoterlab import __version__
from promoterlab.config import RunConfig
from promoterlab.pretrained.registry import PretrainedModel


def run_summary(config: RunConfig, params: int, weights: dict[str, Any],
                entry: PretrainedModel | None = None) -> dict[str, Any]:
    """The ``summary.json`` of a converted run: what is known about the weights and their input.

    Parameters
    ----------
    config : RunConfig
        The converted run's config.
    params : int
        Parameters of the converted network.
    weights : dict
        The original file: ``file``, ``url`` (or ``None``), ``size``, ``sha256``, ``git_blob``.
    entry : PretrainedModel, optional
        The registry entry of published weights; ``None`` for an imported file.
    """
    data, model = config.data, config.model
    summary: dict[str, Any] = {
        "source": "pretrained" if entry else "imported",
        "pretrained": entry.name if entry else None,
        "description": entry.description if entry else "original LegNet weights imported from a local file",
        "model_weights": "published weights of the original LegNet, converted" if entry
        else "imported weights of the original LegNet, converted",
        "weights": weights,
        "model": model.name,
        "params": params,
        "layout": {"seq_len": data.seq_len, "left_adapter": data.left_adapter, "upstream": data.upstream,
                   "singleton_channel": data.singleton_channel, "channel_order": "A, C, G, T (converted from the "
                   "original A, G, C, T)", "is_reverse": "1 for the reverse complement of the laid-out window; "
                   "predictions average both strands", "is_singleton_at_prediction": 0},
        "seed": entry.seed if entry else None,
        "converted_with": f"promoterlab {__version__}",
    }
    if entry:
        summary.update(
            trained_on=entry.trained_on, training_size=entry.training_size, medium=entry.medium,
            training=entry.training,
            reported_metrics=[{"name": m.name, "value": m.value, "scope": m.scope, "source": m.source}
                              for m in entry.metrics],
            licence=entry.licence, citation=list(entry.citation),
            sources=[*entry.sources, *entry.layout_sources], notes=[*entry.notes, *entry.layout_notes])
    return summary


def model_card(summary: dict[str, Any]) -> str:
    """The model card (Markdown) of a converted run, from its :func:`run_summary`."""
    weights, layout = summary["weights"], summary["layout"]
    title = summary["pretrained"] or "imported LegNet weights"
    lines = [f"# {title}", "", summary["description"] + ".", ""]
    lines += ["## Weights", "",
              f"- file: `{weights['file']}`" + (f" from {weights['url']}" if weights.get("url") else ""),
              f"- git blob id (checksum): `{weights['git_blob']}`; sha256 `{weights['sha256']}`; "
              f"{weights['size']:,} bytes",
              f"- converted by {summary['converted_with']} to `{summary['model']}` ({summary['params']:,} parameters), "
              "which computes what the original `SeqNN` (autosome-ru/LegNet legnet/model.py) computes", ""]
    if summary["source"] == "pretrained":
        lines += ["## Training", "", f"- data: {summary['trained_on']}", f"- size: {summary['training_size']}",
                  f"- medium: {summary['medium']}", f"- recipe: {summary['training']}", ""]
    lines += ["## Input layout", "",
              f"- {layout['seq_len']} bp window: a leading `{layout['left_adapter'] or '(none)'}` is cut and the "
              f"plasmid upstream of the insert (ending `...{layout['upstream'][-30:]}`) is prepended; the last "
              f"{layout['seq_len']} bases are kept",
              f"- channels: one-hot {layout['channel_order']}, is_reverse"
              + (", is_singleton (0 at prediction)" if layout["singleton_channel"] else " (no singleton channel)"),
              f"- is_reverse: {layout['is_reverse']}", ""]
    if summary["source"] == "pretrained":
        lines += ["## Metrics reported by the authors", "", "| metric | value | computed on | source |",
                  "|---|---|---|---|"]
        lines += [f"| {m['name']} | {m['value']:.4g} | {m['scope']} | {m['source']} |"
                  for m in summary["reported_metrics"]]
        lines += ["", "## Licence", "", summary["licence"], "", "## Citation", ""]
        lines += [f"- {c}" for c in summary["citation"]]
        lines += ["", "## Sources", ""] + [f"- {s}" for s in summary["sources"]]
        lines += ["", "## Notes (inferred facts and differences from the original code)", ""]
        lines += [f"- {n}" for n in summary["notes"]]
    else:
        lines += ["The training data, licence and metrics of an imported file are not known to promoterlab; "
                  "the layout above is the one given at import."]
    lines += ["", "## Use", "", "```", "promoterlab predict THIS_FOLDER sequences.fa -o predictions.tsv", "```", ""]
    return "\n".join(lines)
