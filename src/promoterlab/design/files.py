"""Drivers of ``promoterlab design`` and ``promoterlab select``: a run and files in, tables and a
figure out. The work is done on arrays by :mod:`~promoterlab.design.optimize` and
:mod:`~promoterlab.design.select`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from promoterlab.data.dataset import encode_sequences
from promoterlab.sequence import LEFT_ADAPTER, RIGHT_ADAPTER
from promoterlab.data.readers import DataError, iter_sequences
from promoterlab.design.constraints import Checker, Constraints, DesignSpace, to_codes
from promoterlab.design.optimize import DesignResult, Goal, Settings, optimise
from promoterlab.design.scoring import ModelScorer
from promoterlab.design.select import select
from promoterlab.evaluation.calibration import CalibrationError, load_calibration
from promoterlab.files import atomic_path, output_stream
from promoterlab.runs import Run

DEFAULT_INSERT_LENGTH = 80
FLANK_SAMPLE_ROWS = 2000


def default_space(run: Run, right_flank: str | None = None, insert_length: int | None = None) -> DesignSpace:
    """The design space of a run: its layout's left adapter, then the insert, then the right flank.

    The right flank (when not given) is the ending that the first sequences of the run's training
    file share (its fixed adapter), and the insert length the most common length between the
    flanks; without a readable training file, DREAM's (``RIGHT_ADAPTER``, 80 bp) for runs with
    DREAM's left adapter, else no right flank and 80 bp.
    """
    left = run.layout.left_adapter
    seqs = _training_sample(run) if right_flank is None or insert_length is None else []
    if right_flank is None:
        right_flank = (os.path.commonprefix([s[::-1] for s in seqs])[::-1] if len(seqs) >= 2
                       else RIGHT_ADAPTER if left == LEFT_ADAPTER else "")
    if insert_length is None:
        lengths = Counter(len(s) - (len(left) if left and s.startswith(left) else 0) - len(right_flank) for s in seqs)
        insert_length = lengths.most_common(1)[0][0] if lengths else DEFAULT_INSERT_LENGTH
    return DesignSpace(left, right_flank.upper(), int(insert_length))


def _training_sample(run: Run) -> list[str]:
    data = run.config.data
    if not data.path or not Path(data.path).is_file():
        return []
    try:
        chunk = next(iter_sequences(data.path, data.seq_col, None, FLANK_SAMPLE_ROWS))
    except (DataError, OSError, StopIteration):
        return []
    return [s.upper() for s in chunk["seq"]]


def read_starts(path: str | Path, space: DesignSpace, seq_col: str | None = None, id_col: str | None = None
                ) -> tuple[list[str], np.ndarray, DesignSpace]:
    """Start sequences: their ids, insert codes (left adapter and right flank stripped where
    present) and the design space with their insert length.

    Raises
    ------
    DataError
        Naming the line of a start whose insert length differs from the first's, or that is not
        A, C, G, T.
    """
    frame = pd.concat(list(iter_sequences(path, seq_col, id_col)), ignore_index=True)
    inserts = []
    for seq, line in zip(frame["seq"].str.upper(), frame["line"]):
        if space.left and seq.startswith(space.left.upper()):
            seq = seq[len(space.left):]
        if space.right and seq.endswith(space.right):
            seq = seq[:len(seq) - len(space.right)]
        if set(seq) - set("ACGT"):
            raise DataError(path, int(line), "a start sequence may only have A, C, G, T in its insert")
        if inserts and len(seq) != len(inserts[0]):
            raise DataError(path, int(line), f"insert of {len(seq)} bp where the first start's is {len(inserts[0])} "
                                             "bp; give starts of one insert length")
        inserts.append(seq)
    space = DesignSpace(space.left, space.right, len(inserts[0]))
    return [str(i) for i in frame["id"]], to_codes(inserts), space


class InsertOracle:
    """A :class:`ModelScorer` seen from the inserts of a design space (the search's oracle)."""

    def __init__(self, scorer: ModelScorer, space: DesignSpace):
        self.scorer, self.space = scorer, space
        self.offset = scorer.insert_offset(space)

    def predict(self, inserts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.scorer.predict(self.scorer.window_codes(inserts, self.space))

    def gradient(self, inserts: np.ndarray, score: Callable) -> np.ndarray:
        grad = self.scorer.gradient(self.scorer.window_codes(inserts, self.space), score)
        return grad[:, :, self.offset:self.offset + self.space.length]


@dataclass
class Designed:
    """What :func:`design_run` made: the designs table, the search's history and notes for the user."""

    table: pd.DataFrame
    history: pd.DataFrame
    notes: list[str]


def design_run(run: Run, settings: Settings, n: int, constraints: Constraints, space: DesignSpace,
               starts: tuple[list[str], np.ndarray] | None = None, population: int | None = None,
               interval: float | None = 0.9, device: str = "cpu", precision: str = "auto",
               progress: Callable[[dict], None] | None = None) -> Designed:
    """Design ``n`` inserts with ``run`` (see :func:`~promoterlab.design.optimize.optimise`).

    Returns
    -------
    Designed
        ``table``: ``id``, ``seq`` (the whole construct), ``insert``, ``prediction``, ``sd``,
        ``lower``/``upper`` (the run's calibrated ``interval``, when it has a calibration),
        ``score``, ``start``, ``edits``, ``gc``, ``longest_homopolymer``, ``active_constraints``.
    """
    checker = Checker(space, constraints)
    scorer = ModelScorer(run, device, precision)
    notes = []
    if scorer.n_models == 1 and settings.penalty > 0:
        notes.append("one model: no ensemble sd, so the uncertainty penalty has no effect")
    oracle = InsertOracle(scorer, space)
    result = optimise(oracle, checker, settings, n, None if starts is None else starts[1], population, progress)
    if result.dropped_starts:
        notes.append(f"{result.dropped_starts} lineages had no start that meets the constraints"
                     + (f" within {settings.max_edits} edits" if settings.max_edits is not None else ""))
    if len(result.lineages) < n:
        notes.append(f"{len(result.lineages)} of {n} designs returned (lineages that failed or ended closer than "
                     f"{settings.min_distance} substitutions)")
    table = design_table(result, checker, starts[0] if starts else None, settings.max_edits)
    if interval is not None and len(table):
        try:
            calibration = load_calibration(run)
        except CalibrationError as err:
            notes.append(f"no interval: {err}")
        else:
            codes = scorer.window_codes(result.lineages.codes, space)
            lower, upper = scorer.interval(codes, calibration, interval)
            table.insert(table.columns.get_loc("sd") + 1, "lower", lower)
            table.insert(table.columns.get_loc("lower") + 1, "upper", upper)
    return Designed(table, pd.DataFrame(result.history), notes)


def design_table(result: DesignResult, checker: Checker, start_ids: Sequence[str] | None,
                 max_edits: int | None = None) -> pd.DataFrame:
    lineages, space = result.lineages, checker.space
    active = checker.active(lineages.codes)
    if max_edits is not None:  # the edit budget is spent
        active = [",".join(filter(None, [a, "max_edits"])) if e >= max_edits else a
                  for a, e in zip(active, lineages.edits)]
    inserts = [s[len(space.left):len(s) - len(space.right)] for s in space.sequences(lineages.codes)]
    start = (["random"] * len(lineages) if start_ids is None
             else [start_ids[i] for i in lineages.start_id])
    return pd.DataFrame({
        "id": [f"design_{i + 1}" for i in range(len(lineages))],
        "seq": space.sequences(lineages.codes),
        "insert": inserts,
        "prediction": lineages.mean,
        "sd": lineages.sd,
        "score": lineages.score,
        "start": start,
        "edits": lineages.edits,
        "gc": checker.gc_count(lineages.codes) / space.length,
        "longest_homopolymer": checker.longest_homopolymer(lineages.codes),
        "active_constraints": active,
    })


def plot_history(history: pd.DataFrame, path: str | Path, title: str = "") -> Figure:
    """The search's best and median score, and mean prediction and sd, over its iterations."""
    fig = Figure(figsize=(9, 3.6))
    ax_score, ax_pred = fig.subplots(1, 2)
    ax_score.plot(history["iteration"], history["best_score"], label="best")
    ax_score.plot(history["iteration"], history["median_score"], label="median")
    ax_score.set(xlabel="iteration", ylabel="score (toward the goal, less penalty·sd)", title=title or "objective")
    ax_score.legend()
    ax_pred.plot(history["iteration"], history["mean_prediction"], label="mean prediction", color="C2")
    ax_sd = ax_pred.twinx()
    ax_sd.plot(history["iteration"], history["mean_sd"], label="mean sd", color="C3", ls="--")
    ax_pred.set(xlabel="iteration", ylabel="mean prediction of the designs")
    ax_sd.set_ylabel("mean ensemble sd")
    for axis in (ax_score, ax_pred):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    return fig


def write_table(table: pd.DataFrame, output: str | Path, inputs: Sequence[str | Path] = ()) -> None:
    with output_stream(output, inputs) as handle:
        table.to_csv(handle, sep="\t", index=False, lineterminator="\n", float_format="%.6g")


def select_pool(run: Run, pool: str | Path, strategy: str, n: int, goal: Goal | None = None,
                incumbent: float | None = None, seed: int = 0, seq_col: str | None = None,
                id_col: str | None = None, device: str = "cpu", precision: str = "auto") -> pd.DataFrame:
    """Choose ``n`` sequences of a pool file to measure next (:func:`~promoterlab.design.select.select`).

    A sequence that occurs more than once in the pool counts once (its first row).

    Returns
    -------
    pandas.DataFrame
        ``rank``, ``id``, ``seq``, ``prediction``, ``sd``, ``score`` (the strategy's), in the
        order chosen.
    """
    frame = pd.concat(list(iter_sequences(pool, seq_col, id_col)), ignore_index=True)
    frame = frame.loc[~frame["seq"].str.upper().duplicated()].reset_index(drop=True)
    scorer = ModelScorer(run, device, precision)
    codes = encode_sequences(frame["seq"], scorer.layout, pool, frame["line"].to_numpy()).numpy()
    mean, sd = scorer.predict(codes)
    embedding = scorer.embed(codes) if strategy == "diverse-uncertainty" else None
    chosen, score = select(strategy, n, mean, sd, embedding, goal, incumbent, seed)
    return pd.DataFrame({"rank": np.arange(1, len(chosen) + 1), "id": frame["id"].to_numpy()[chosen],
                         "seq": frame["seq"].to_numpy()[chosen], "prediction": mean[chosen], "sd": sd[chosen],
                         "score": score})
