"""The official DREAM 2022 challenge score, per test subset and weighted.

Truth comes either from the public-leaderboard JSON folder (``{pos: value}`` per subset,
``{"alt,ref": [alt_value, ref_value]}`` for paired subsets) or from a measured file in the
official ``seq<TAB>expr`` format (row index = ``pos``) together with the
``test_subset_ids/*.csv`` folder. Paired subsets (SNV, motif perturbation, motif tiling)
are scored on the differences alt - ref of each pair. Positions lacking a measurement or
a prediction are skipped and counted.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from promoterlab.data.readers import DataError, read_seq_values, seq_values_of_text
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.files import os_error_what, write_text_atomic

SUBSETS = ("all", "high", "low", "yeast", "random", "challenging", "SNV",
           "motif_perturbation", "motif_tiling")
PAIRED = frozenset({"SNV", "motif_perturbation", "motif_tiling"})
WEIGHTS = {"all": 1.0, "high": 0.3, "low": 0.3, "yeast": 0.3, "random": 0.3, "challenging": 0.5,
           "SNV": 1.25, "motif_perturbation": 0.3, "motif_tiling": 0.4}
WEIGHT_TOTAL = 4.65
DREAM_TEST_SIZE = 71_103
# Subset-id CSVs (first name is the published one; the official script used the others).
CSV_NAMES = {"high": ("high_exp_seqs.csv",), "low": ("low_exp_seqs.csv",),
             "yeast": ("yeast_seqs.csv",), "random": ("all_random_seqs.csv",),
             "challenging": ("challenging_seqs.csv",), "SNV": ("all_SNVs_seqs.csv", "SNVs_seqs.csv"),
             "motif_perturbation": ("motif_perturbation_seqs.csv", "motif_perturbation.csv"),
             "motif_tiling": ("motif_tiling_seqs.csv",)}
JSON_NAMES = {name: f"{'SNVs' if name == 'SNV' else name}_exp_indices.json" for name in SUBSETS[1:]}
_MISSING = {"", "nan", "na", "n/a", "null", "none"}


class DreamDataError(DataError):
    """Invalid scoring input; the message names the file, the line if known and the problem."""


@dataclass
class DreamTruth:
    """Measured values by position, and the items of each subset: ``(pos,)`` tuples, or
    ``(alt_pos, ref_pos)`` tuples for the paired subsets."""

    values: dict[int, float]
    subsets: dict[str, list[tuple[int, ...]]]
    source: str
    notes: list[str] = field(default_factory=list)
    size: int | None = None  # positions of the test set (0 .. size - 1); None: not known


@dataclass(frozen=True)
class SubsetScore:
    """Agreement on one subset; ``n`` items used, the others lacked truth or prediction."""

    name: str
    weight: float
    paired: bool
    n: int
    no_truth: int
    no_prediction: int
    pearson: float
    r2: float
    spearman: float


@dataclass(frozen=True)
class DreamScore:
    """Per-subset agreement and the two weighted challenge scores."""

    subsets: tuple[SubsetScore, ...]
    pearson_score: float
    spearman_score: float
    truth: str
    n_predictions: int
    notes: tuple[str, ...] = ()

    def subset(self, name: str) -> SubsetScore:
        """The row of subset ``name``."""
        return next(s for s in self.subsets if s.name == name)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (NaN written as ``None``)."""
        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value
        data = {k: clean(v) for k, v in asdict(self).items() if k != "subsets"}
        data["notes"] = list(self.notes)
        data["subsets"] = [{k: clean(v) for k, v in asdict(s).items()} for s in self.subsets]
        return data


def _position(path: Path, line: int | None, text: str) -> int:
    text = str(text).strip()
    if not text.isdigit():
        raise DreamDataError(path, line, f"{text!r} is not a test-set position (integer >= 0)")
    return int(text)


def _number(path: Path, line: int | None, text, what: str, allow_missing: bool) -> float | None:
    missing = str(text).strip().lower() in _MISSING  # None, NaN, "nan", "NA", ""
    value = math.nan
    try:
        value = math.nan if missing or isinstance(text, bool) else float(text)
    except (TypeError, ValueError):
        pass
    if math.isnan(value) and not missing:
        raise DreamDataError(path, line, f"{what} is {text!r}, not a number")
    if missing and not allow_missing:
        raise DreamDataError(path, line, f"{what} is missing ({text!r})")
    if math.isinf(value):
        raise DreamDataError(path, line, f"{what} is {text!r}, not a finite number")
    return None if missing else value


def _text(path: Path) -> str:
    """The text of ``path``, read once (a named pipe works), without a UTF-8 byte-order mark."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DreamDataError(path, None, "not a text file") from None
    except OSError as err:
        raise DreamDataError(path, None, os_error_what(err, path)) from None


def _read_json(path: Path, text: str | None = None) -> dict:
    try:
        data = json.loads(_text(path) if text is None else text)
    except json.JSONDecodeError as exc:
        raise DreamDataError(path, exc.lineno, f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DreamDataError(path, None, "expected a JSON object {position: value}")
    return data


def _seq_values(path: Path, text: str | None = None) -> pd.DataFrame:
    """``seq<TAB>value`` rows (:func:`promoterlab.data.readers.read_seq_values`), errors as DreamDataError."""
    try:
        return read_seq_values(path) if text is None else seq_values_of_text(path, text)
    except DreamDataError:
        raise
    except DataError as exc:
        raise DreamDataError(exc.path, exc.line, exc.problem) from None


def load_predictions(path: str | os.PathLike[str]) -> dict[int, float]:
    """Predictions by test-set position.

    Accepts a submission JSON ``{pos: value}``, a TSV with a header naming ``id`` (or
    ``pos``) and ``prediction`` columns (as written by ``promoterlab predict``; ``id`` must
    be the row index in the test file), or headerless ``seq<TAB>value`` rows whose row index
    is the position.

    Raises
    ------
    DreamDataError
        On an unreadable file, a bad position, a duplicate or a non-finite value.
    """
    path = Path(path)
    text = _text(path)
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return {_position(path, None, key): _number(path, None, value, f"prediction for {key!r}", False)
                for key, value in _read_json(path, text).items()}
    lines = text.rstrip("\r\n").splitlines()
    if not lines:
        raise DreamDataError(path, None, "file is empty")
    header = [h.strip().lower() for h in lines[0].split("\t")]
    if "prediction" not in header:
        if len(header) != 2:
            raise DreamDataError(path, 1, "expected a header 'id<TAB>seq<TAB>prediction' or "
                                          "two columns 'seq<TAB>value'")
        rows = _seq_values(path, text)
        return {index: _number(path, int(line), value, "prediction", False)
                for index, (line, value) in enumerate(zip(rows["line"], rows["value"]))}
    id_names = [h for h in ("id", "pos") if h in header]
    if not id_names:
        raise DreamDataError(path, 1, "header has a 'prediction' column but no 'id' column")
    id_col, pred_col = header.index(id_names[0]), header.index("prediction")
    pred: dict[int, float] = {}
    width = len(header)
    for index, text in enumerate(lines[1:]):
        line, fields = index + 2, text.split("\t")
        if len(fields) != width:
            raise DreamDataError(path, line, f"expected {width} tab-separated fields, found {len(fields)}")
        pos = _position(path, line, fields[id_col])
        if pos in pred:
            raise DreamDataError(path, line, f"position {pos} appears twice")
        pred[pos] = _number(path, line, fields[pred_col], "prediction", False)
    return pred


def read_measured(path: str | os.PathLike[str]) -> tuple[dict[int, float], int, int]:
    """Measured values of an official ``seq<TAB>expr`` file (an optional header is skipped).

    Returns
    -------
    tuple
        ``(values, n_rows, n_missing)``: expression by row index (``pos``) without the
        ``nan`` rows, the number of data rows, and the number of rows without a value.
    """
    path = Path(path)
    rows = _seq_values(path)
    values: dict[int, float] = {}
    for index, (line, text) in enumerate(zip(rows["line"], rows["value"])):
        value = _number(path, int(line), text, "expression", True)
        if value is not None:
            values[index] = value
    return values, len(rows), len(rows) - len(values)


def _read_subset_csv(path: Path, paired: bool) -> list:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DreamDataError(path, None, f"not a readable CSV ({exc})") from None
    columns = ("alt_pos", "ref_pos") if paired else ("pos",)
    if any(c not in table.columns for c in columns):
        found = ", ".join(map(str, table.columns))
        raise DreamDataError(path, 1, f"needs column(s) {', '.join(columns)}; found {found}")
    parsed = []
    for col in columns:
        numbers = pd.to_numeric(table[col], errors="coerce")
        bad = numbers.isna() | (numbers < 0) | (numbers != numbers.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DreamDataError(path, row + 2, f"{col} {table[col].iloc[row]!r} is not a test-set position")
        parsed.append(numbers.astype(np.int64).tolist())
    return sorted(set(zip(*parsed)))


def _json_subset(path: Path, name: str, values: dict[int, float]) -> list[tuple[int, ...]]:
    items = []
    for key, value in _read_json(path).items():
        if name in PAIRED:
            if len(str(key).split(",")) != 2 or not isinstance(value, list) or len(value) != 2:
                raise DreamDataError(path, None, f"entry {key!r} is not 'alt,ref': [alt_value, ref_value]")
            item, raws = tuple(_position(path, None, p) for p in key.split(",")), value
        else:
            item, raws = (_position(path, None, key),), [value]
        items.append(item)
        for pos, raw in zip(item, raws):
            number = _number(path, None, raw, f"value of {key!r}", True)
            if number is None:
                continue
            if pos in values and abs(values[pos] - number) > 1e-9:
                raise DreamDataError(path, None, f"position {pos} has value {number} here but "
                                                 f"{values[pos]} in another leaderboard file")
            values[pos] = number
    return sorted(set(items))


def load_leaderboard_truth(directory: str | os.PathLike[str]) -> DreamTruth:
    """Truth from a ``public_leaderboard_ids`` folder; ``all`` is the union of its subsets."""
    directory = Path(directory)
    values: dict[int, float] = {}
    truth = DreamTruth(values, {}, f"public-leaderboard JSON {directory}")
    for name, file_name in JSON_NAMES.items():
        if (directory / file_name).is_file():
            truth.subsets[name] = _json_subset(directory / file_name, name, values)
        else:
            truth.notes.append(f"{name}: {file_name} not found in {directory}; subset left out")
    if not truth.subsets:
        raise DreamDataError(directory, None, "no public-leaderboard files (*_exp_indices.json) found")
    union = {p for items in truth.subsets.values() for item in items for p in item}
    ground = directory / "ground.json"
    if ground.is_file():
        ground_values = {_position(ground, None, k): _number(ground, None, v, f"value of {k!r}", True)
                         for k, v in _read_json(ground).items()}
        if set(ground_values) != union:
            truth.notes.append(f"ground.json holds {len(ground_values)} positions, the subset files "
                               f"{len(union)}; 'all' uses the subset files as the official script does")
        for pos, value in ground_values.items():
            if value is not None:
                values.setdefault(pos, value)
    truth.subsets["all"] = [(p,) for p in sorted(union)]
    truth.size = max(DREAM_TEST_SIZE, max(union, default=-1) + 1)
    return truth


def load_measured_truth(path: str | os.PathLike[str], subsets_dir: str | os.PathLike[str] | None = None,
                        leaderboard_dir: str | os.PathLike[str] | None = None) -> DreamTruth:
    """Truth from a measured file and the ``test_subset_ids`` CSV folder.

    ``subsets_dir`` and ``leaderboard_dir`` default to ``test_subset_ids`` and
    ``public_leaderboard_ids`` next to ``path``. A subset without a CSV takes its ids from
    the leaderboard JSON (public positions only); the coverage is recorded in the notes.
    """
    path = Path(path)
    subsets_dir = Path(subsets_dir) if subsets_dir else path.parent / "test_subset_ids"
    leaderboard_dir = Path(leaderboard_dir) if leaderboard_dir else path.parent / "public_leaderboard_ids"
    if not subsets_dir.is_dir() and not leaderboard_dir.is_dir():
        raise DreamDataError(subsets_dir, None, "subset-id folder not found (pass --subsets DIR)")
    values, n_rows, n_missing = read_measured(path)
    truth = DreamTruth(values, {"all": [(p,) for p in sorted(values)]}, f"measured {path} + {subsets_dir}",
                       size=n_rows)
    if n_missing:
        truth.notes.append(f"{n_missing} of {n_rows} rows of {path.name} have no measured value; skipped")
    for name in SUBSETS[1:]:
        csv = next((subsets_dir / c for c in CSV_NAMES[name] if (subsets_dir / c).is_file()), None)
        if csv is not None:
            items = _read_subset_csv(csv, name in PAIRED)
        elif (leaderboard_dir / JSON_NAMES[name]).is_file():
            items = _json_subset(leaderboard_dir / JSON_NAMES[name], name, {})
            usable = sum(all(p in values for p in item) for item in items)
            kind = "pairs" if name in PAIRED else "positions"
            truth.notes.append(f"{name}: no {CSV_NAMES[name][0]} in {subsets_dir}; {len(items)} {kind} "
                               f"taken from {JSON_NAMES[name]} (public leaderboard only), {usable} of "
                               f"them measured in {path.name}")
        else:
            truth.notes.append(f"{name}: no id file in {subsets_dir} or {leaderboard_dir}; subset left out")
            continue
        truth.subsets[name] = items
        beyond = sum(any(p >= n_rows for p in item) for item in items)
        if beyond:
            truth.notes.append(f"{name}: {beyond} ids lie beyond the {n_rows} rows of {path.name}")
    return truth


def load_truth(path: str | os.PathLike[str], subsets_dir: str | os.PathLike[str] | None = None,
               leaderboard_dir: str | os.PathLike[str] | None = None) -> DreamTruth:
    """A leaderboard JSON folder (if ``path`` is a directory) or a measured file with subset CSVs."""
    path = Path(path)
    if not path.exists():
        raise DreamDataError(path, None, "no such file or directory")
    return load_leaderboard_truth(path) if path.is_dir() else load_measured_truth(
        path, subsets_dir, leaderboard_dir)


def score(pred: Mapping[int, float], truth: DreamTruth, source: str | os.PathLike[str] = "predictions"
          ) -> DreamScore:
    """Per-subset Pearson r, r², Spearman ρ and the weighted Pearson and Spearman scores.

    Raises
    ------
    DreamDataError
        Naming ``source`` (the submission file): positions outside the test set (a wrong
        submission; the first few and how many), or no prediction at any scored position.
    """
    unknown = sorted(pos for pos in pred if truth.size is not None and not 0 <= pos < truth.size)
    if unknown:
        shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
        raise DreamDataError(source, None, f"{len(unknown):,} of its {len(pred):,} positions are not in the test "
                                           f"set of {truth.size:,} positions (0 to {truth.size - 1:,}): {shown}; "
                                           "is it a submission for this test set?")
    rows, notes = [], list(truth.notes)
    for name in SUBSETS:
        measured, predicted, no_truth, no_pred = [], [], 0, 0
        for item in truth.subsets.get(name, []):
            if not all(p in truth.values for p in item):
                no_truth += 1
            elif not all(p in pred for p in item):
                no_pred += 1
            else:  # a single value, or the difference alt - ref of a pair
                measured.append(truth.values[item[0]] - (truth.values[item[1]] if len(item) > 1 else 0.0))
                predicted.append(pred[item[0]] - (pred[item[1]] if len(item) > 1 else 0.0))
        r, rho = pearson(predicted, measured), spearman(predicted, measured)
        rows.append(SubsetScore(name, WEIGHTS[name], name in PAIRED, len(measured), no_truth,
                                no_pred, r, r * r, rho))
    if not any(row.n for row in rows):
        raise DreamDataError(source, None, f"none of its {len(pred):,} predictions is at a measured position "
                                           f"of a scored subset ({truth.source}); nothing to score")
    undefined = [s.name for s in rows if math.isnan(s.pearson) or math.isnan(s.spearman)]
    if undefined:
        notes.append(f"weighted scores undefined: no correlation for {', '.join(undefined)} "
                     f"(fewer than 2 items or constant values)")
    pearson_score = sum(s.weight * s.r2 for s in rows) / WEIGHT_TOTAL
    spearman_score = sum(s.weight * s.spearman for s in rows) / WEIGHT_TOTAL
    return DreamScore(tuple(rows), pearson_score, spearman_score, truth.source, len(pred), tuple(notes))


def write_submission(path: str | os.PathLike[str], values: Sequence[float] | Mapping[int, float]) -> None:
    """Write ``{"pos": value}`` JSON atomically (:func:`promoterlab.files.write_text_atomic`)."""
    path = Path(path)
    items = values.items() if isinstance(values, Mapping) else enumerate(values)
    data = {str(int(pos)): float(value) for pos, value in items}
    bad = next((pos for pos, value in data.items() if not math.isfinite(value)), None)
    if bad is not None:
        raise ValueError(f"prediction for position {bad} is {data[bad]}; a submission needs finite values")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data))
