"""What a finished run reports: held-out predictions, test metrics, the split it used, and the
model card.

The held-out **test** set is drawn before validation (:func:`~promoterlab.data.splits.split_indices`)
or read from ``data.test_path``; it takes no part in training, checkpoint choice, early stopping
or budget planning: it is predicted once, by the model that training chose, here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from promoterlab.config import RunConfig
from promoterlab.data.dataset import load_test_file
from promoterlab.data.encoded import EncodedSet, SplitSets
from promoterlab.evaluation.metrics import held_out_metrics, pearson, spearman
from promoterlab.evaluation.predict import predict
from promoterlab.files import atomic_path, file_sha256, json_text, write_text_atomic
from promoterlab.runs import CARD, SPLIT, SUMMARY, TEST_PREDICTIONS


def test_set(config: RunConfig, split: SplitSets) -> tuple[EncodedSet, str] | None:
    """The run's test set and where it comes from (``"held-out split"`` or the test file), or None."""
    if split.test is not None:
        return split.test, "held-out split"
    if config.data.test_path:
        return load_test_file(config.data), str(config.data.test_path)
    return None


def val_metrics_flag0(model: nn.Module, config: RunConfig, val: EncodedSet) -> dict | None:
    """Validation Pearson and Spearman with the singleton channel 0, as at prediction, when the
    run validated with the data's flags (``data.val_singleton``) and some row has one; else None."""
    if not (config.data.val_singleton and config.data.singleton_channel and bool(val.singleton.any())):
        return None
    pred = predict(model, val.codes, batch_size=config.train.eval_batch_size)
    y = val.targets.numpy()
    return {"pearson": pearson(pred, y), "spearman": spearman(pred, y)}


def test_report(prediction: np.ndarray, test: EncodedSet, source: str) -> dict:
    """``summary.json``'s ``test`` entry: where the set comes from and :func:`held_out_metrics`."""
    return {"source": source, **held_out_metrics(prediction, test.targets.numpy())}


def write_test_predictions(folder: Path, test: EncodedSet, prediction: np.ndarray,
                           sd: np.ndarray | None = None) -> None:
    """``test_predictions.tsv``: ``index`` (row of the test set), ``target``, ``prediction`` (and ``sd``)."""
    frame = pd.DataFrame({"index": np.arange(len(test)), "target": test.targets.numpy(), "prediction": prediction})
    if sd is not None:
        frame["sd"] = sd
    write_text_atomic(folder / TEST_PREDICTIONS, frame.to_csv(sep="\t", index=False, lineterminator="\n"))


def write_split(folder: Path, config: RunConfig, split: SplitSets) -> None:
    """``split.npz``: the table rows (0-based, among the rows read) of each role, the number of
    rows and the SHA-256 of the table, so that the split can be checked and reproduced."""
    with atomic_path(folder / SPLIT) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, train=split.rows.train, val=split.rows.val, test=split.rows.test,
                                n_rows=np.int64(split.n_rows),
                                source_sha256=np.str_(file_sha256(config.data.path)))


def read_split(folder: Path) -> dict[str, np.ndarray]:
    """The roles' rows saved by :func:`write_split`."""
    with np.load(folder / SPLIT) as saved:
        return {key: saved[key] for key in saved.files}


def model_card(config: RunConfig, summary: dict, members: list[str] | None = None) -> str:
    """A short human-readable ``README.md`` for a run folder: data, split, model, recipe,
    members (of an ensemble), metrics and how to use it."""
    data, model, recipe = config.data, config.model, config.train
    test = summary.get("test") or {}
    lines = [f"# {model.name} trained on {Path(str(data.path)).name}", ""]
    kind = f"an ensemble of {len(members)} models (seeds {', '.join(m.removeprefix('seed=') for m in members)})" \
        if members else "one model"
    lines += [f"This folder holds {kind}, trained by promoterlab {config.version}.", "", "## Data", "",
              f"- file: `{data.path}`" + (f" (SHA-256 `{summary['source_sha256'][:12]}…`)"
                                          if summary.get("source_sha256") else ""),
              f"- split (seed {data.split_seed if data.split_seed is not None else config.seed}): "
              f"{summary.get('train_size', '?'):,} training, {summary.get('val_size', '?'):,} validation, "
              + (f"{test.get('n', 0):,} test sequences ({test.get('source')})" if test else "no test set"),
              f"- layout: {data.seq_len} bp window; leading adapter `{data.left_adapter}` replaced by the plasmid "
              f"upstream of the insert; singleton channel {'on' if data.singleton_channel else 'off'}", "",
              "## Model and recipe", "",
              f"- {model.name}, width {model.width:g}, {summary.get('params', 0):,} parameters per model",
              f"- loss {recipe.loss}, AdamW (lr {recipe.max_lr:g}, weight decay {recipe.weight_decay:g}), "
              f"{recipe.schedule}, batch {recipe.batch_size}, {recipe.precision} precision, "
              f"reverse-complement augmentation {'on' if recipe.rc_augment else 'off'}", *_transfer_lines(recipe),
              "", "## Metrics", ""]
    val = summary.get("val_pearson", summary.get("best_val_pearson"))
    if val is not None:
        lines.append(f"- validation Pearson {val:.3f} (chose the checkpoint; not an unbiased estimate)")
    if summary.get("val_flag0"):
        lines.append(f"- validation Pearson with the singleton channel 0: {summary['val_flag0']['pearson']:.3f}")
    if test:
        low, high = test["pearson_ci95"]
        lines.append(f"- **test Pearson {test['pearson']:.3f}** (95 % CI {low:.3f}–{high:.3f}), Spearman "
                     f"{test['spearman']:.3f}, n = {test['n']:,}")
    if summary.get("members_test_pearson"):
        lines.append("- members' test Pearson: " + ", ".join(f"{r:.3f}" for r in summary["members_test_pearson"]))
    if summary.get("weak_members"):
        lines.append(f"- **warning**: {', '.join(summary['weak_members'])} did not learn (validation Pearson far "
                     "below the other members'); the ensemble's mean averages it in")
    if summary.get("test_coverage"):  # evaluation.calibration: intervals fitted on validation
        lines.append("- calibrated intervals (`predict --interval`): " + ", ".join(
            f"{float(level):.0%} ones hold {row['coverage']:.1%} of the test measurements"
            for level, row in summary["test_coverage"].items()))
    lines += ["", "## Use", "", "```bash",
              "promoterlab predict THIS_FOLDER sequences.fa -o predictions.tsv",
              "promoterlab evaluate THIS_FOLDER measured.tsv",
              "promoterlab explain THIS_FOLDER sequences.fa -o explained/",
              "```", ""]
    return "\n".join(lines)


def _transfer_lines(recipe) -> list[str]:
    """The card's lines on the init run and the teacher of a fine-tuned or distilled run."""
    lines = []
    if getattr(recipe, "init_from", None):
        frozen = f", {recipe.freeze} frozen" if recipe.freeze != "none" else ""
        lines.append(f"- fine-tuned from `{recipe.init_resolved or recipe.init_from}`{frozen}")
    if getattr(recipe, "teacher", None):
        extra = "" if recipe.teacher_extra == "none" else \
            f"; {recipe.teacher_copies} {recipe.teacher_extra} cop{'y' if recipe.teacher_copies == 1 else 'ies'} " \
            "of each training sequence labelled by the teacher alone"
        lines.append(f"- distilled from `{recipe.teacher_resolved or recipe.teacher}` (labels {recipe.teacher_weight:g} "
                     f"teacher, {1 - recipe.teacher_weight:g} measured{extra})")
    return lines


def write_model_card(folder: Path, config: RunConfig, summary: dict, members: list[str] | None = None) -> None:
    write_text_atomic(folder / CARD, model_card(config, summary, members))


def write_summary(folder: Path, summary: dict) -> None:
    write_text_atomic(folder / SUMMARY, json_text(summary))
