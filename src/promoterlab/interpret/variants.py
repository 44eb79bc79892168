"""Variant effects: predicted expression of a reference and an alternative sequence, and the change.

Pairs come from a TSV with a header naming either ``id, ref, alt`` (two whole sequences in the
same context) or ``id, seq, pos, alt`` (a sequence and a substitution: ``alt`` replaces the
bases of ``seq`` from the 1-based position ``pos`` on). Predictions are those of
:func:`promoterlab.evaluation.predict.predict` (RC-averaged), so a delta is exactly
``predict(alt) - predict(ref)``. Files of any size stream through in chunks.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from promoterlab.data.dataset import encode_sequences
from promoterlab.sequence import Layout
from promoterlab.data.readers import DataError, _names_damaged_files, _open_text
from promoterlab.data.repeated_ids import RepeatedIds
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict

CHUNK_ROWS = 50_000
PAIR_COLUMNS = ("id", "ref", "alt")
SUBSTITUTION_COLUMNS = ("id", "seq", "pos", "alt")
_BAD_CHAR = re.compile(r"[^ACGTN]")


def variant_effects(model: nn.Module, refs: Sequence[str], alts: Sequence[str], layout: Layout,
                    batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", precision: str = "auto",
                    fold: bool = True) -> pd.DataFrame:
    """Predicted expression of each reference and alternative sequence, and ``alt - ref``.

    Parameters
    ----------
    model : nn.Module
        Maps ``(batch, 6, L)`` input to bin logits or values (any promoterlab model).
    refs, alts : sequence of str
        Raw sequences, laid out with ``layout`` (the run's ``config.data.layout``).
    batch_size, device, precision, fold
        As for :func:`~promoterlab.evaluation.predict.predict`.

    Returns
    -------
    pandas.DataFrame
        Columns ``ref_pred``, ``alt_pred``, ``delta``, one row per pair.
    """
    if len(refs) != len(alts):
        raise ValueError(f"{len(refs)} reference sequences for {len(alts)} alternative ones")
    codes = encode_sequences(list(refs) + list(alts), layout)
    values = predict(model, codes, batch_size=batch_size, device=device, precision=precision, fold=fold)
    ref_pred, alt_pred = values[:len(refs)], values[len(refs):]
    return pd.DataFrame({"ref_pred": ref_pred, "alt_pred": alt_pred, "delta": alt_pred - ref_pred})


def _check_bases(path: Path, line: int, column: str, text: str) -> str:
    text = text.strip().upper()
    if not text:
        raise DataError(path, line, f"{column} is empty")
    bad = _BAD_CHAR.search(text)
    if bad:
        raise DataError(path, line, f"{column} has character {bad.group()!r}; only A, C, G, T, N (any case) "
                                    "are allowed")
    return text


def _substitute(path: Path, line: int, seq: str, pos_text: str, alt: str) -> str:
    try:
        pos = int(pos_text.strip())
    except ValueError:
        raise DataError(path, line, f"pos {pos_text.strip()!r} is not an integer") from None
    last = len(seq) - len(alt) + 1
    if not 1 <= pos <= last:
        span = f"{len(alt)} bases" if len(alt) > 1 else "a base"
        raise DataError(path, line, f"pos {pos} is out of range: {span} can replace positions 1..{last} of "
                                    f"the {len(seq)} bp seq (pos is 1-based)")
    return seq[:pos - 1] + alt + seq[pos - 1 + len(alt):]


def _check_context(path: Path, line: int, ref: str, alt: str, layout: Layout | None) -> None:
    if len(ref) != len(alt):
        raise DataError(path, line, f"unequal context: ref is {len(ref)} bp and alt {len(alt)} bp; a variant "
                                    "pair needs two sequences of the same length")
    if layout is not None and layout.insert_length(ref) != layout.insert_length(alt):
        which = "ref" if layout.insert_length(ref) < len(ref) else "alt"
        raise DataError(path, line, f"unequal context: only {which} begins with the left adapter "
                                    f"{layout.left_adapter}, so ref and alt would lie differently in the "
                                    "model window")
    if layout is not None and layout.insert_length(ref) > layout.seq_len:
        raise DataError(path, line, f"sequence of {layout.insert_length(ref)} bp (after stripping the left "
                                    f"adapter) is longer than the model length {layout.seq_len}")


def _header(path: Path, fields: list[str]) -> tuple[str, dict[str, int]]:
    names = [f.strip().lower() for f in fields]
    for kind, columns in (("pairs", PAIR_COLUMNS), ("substitutions", SUBSTITUTION_COLUMNS)):
        if all(c in names for c in columns):
            return kind, {c: names.index(c) for c in columns}
    raise DataError(path, 1, f"expected a header naming the columns id, ref, alt (or id, seq, pos, alt); "
                             f"found {', '.join(repr(f) for f in fields)}")


@_names_damaged_files
def iter_variant_pairs(path: str | Path, layout: Layout | None = None, chunk_rows: int = CHUNK_ROWS,
                       strict: bool = False) -> Iterator[pd.DataFrame]:
    """Read a variant TSV in chunks of validated rows: columns ``id``, ``ref``, ``alt``, ``line``.

    Parameters
    ----------
    path : str or Path
        TSV (optionally ``.gz``) with a header ``id, ref, alt`` or ``id, seq, pos, alt``; other
        columns are ignored, blank lines skipped.
    layout : Layout, optional
        The run's layout: then ref and alt must also lie alike in the model window (both or
        neither starting with the left adapter) and fit into it.
    chunk_rows : int
        Rows per chunk.
    strict : bool
        Refuse an id that repeats an earlier row's id; else such ids are kept and counted in one
        warning on stderr at the end (:class:`~promoterlab.data.repeated_ids.RepeatedIds`).

    Raises
    ------
    DataError
        Naming the file, the line and the problem: a missing header column, a row with another
        number of fields, an empty id, a character other than ACGTN, a ``pos`` that is not an
        integer or out of range, ref and alt in unequal context, or (``strict``) a repeated id.
    """
    path = Path(path)
    kind, index, width, rows, seen = None, {}, 0, [], 0
    repeated = RepeatedIds(path, strict)
    with _open_text(path) as handle:
        for line, fields in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not fields or all(not f.strip() for f in fields):
                continue
            if kind is None:
                if line != 1:
                    raise DataError(path, line, "expected the header on line 1")
                kind, index = _header(path, fields)
                width = len(fields)
                continue
            if len(fields) != width:
                raise DataError(path, line, f"expected {width} tab-separated fields as in the header, "
                                            f"found {len(fields)}")
            name = fields[index["id"]].strip()
            if not name:
                raise DataError(path, line, "id is empty")
            alt = _check_bases(path, line, "alt", fields[index["alt"]])
            if kind == "pairs":
                ref = _check_bases(path, line, "ref", fields[index["ref"]])
            else:
                ref = _check_bases(path, line, "seq", fields[index["seq"]])
                alt = _substitute(path, line, ref, fields[index["pos"]], alt)
            _check_context(path, line, ref, alt, layout)
            rows.append((name, ref, alt, line))
            seen += 1
            if len(rows) == chunk_rows:
                yield _pairs_chunk(rows, repeated)
                rows = []
    if kind is None:
        raise DataError(path, None, "file is empty")
    if not seen:
        raise DataError(path, None, "file has a header but no variant rows")
    if rows:
        yield _pairs_chunk(rows, repeated)
    repeated.warn()


def _pairs_chunk(rows: list[tuple[str, str, str, int]], repeated: RepeatedIds) -> pd.DataFrame:
    chunk = pd.DataFrame(rows, columns=["id", "ref", "alt", "line"])
    repeated.add(chunk["id"].to_numpy(), chunk["line"].to_numpy())
    return chunk


def ensemble_variant_effects(models: Sequence[nn.Module], refs: Sequence[str], alts: Sequence[str], layout: Layout,
                             batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", precision: str = "auto",
                             fold: bool = True) -> pd.DataFrame:
    """:func:`variant_effects` of an ensemble: the members' mean ``ref_pred``, ``alt_pred`` and
    ``delta``, with ``delta_sd`` (the members' standard deviation of ``delta``, ``ddof=0``) and
    ``n_models``. One model gives :func:`variant_effects`'s columns only."""
    effects = [variant_effects(model, refs, alts, layout, batch_size, device, precision, fold) for model in models]
    if len(effects) == 1:
        return effects[0]
    stacked = np.stack([e.to_numpy(np.float64) for e in effects])  # (models, pairs, 3)
    mean = pd.DataFrame(stacked.mean(axis=0), columns=effects[0].columns)
    return mean.assign(delta_sd=stacked[:, :, 2].std(axis=0), n_models=len(effects))


def iter_variant_effects(model: nn.Module | Sequence[nn.Module], layout: Layout, path: str | Path,
                         batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", precision: str = "auto",
                         chunk_rows: int = CHUNK_ROWS, strict: bool = False) -> Iterator[pd.DataFrame]:
    """:func:`variant_effects` (for several models, :func:`ensemble_variant_effects`) of every pair
    in a variant TSV, chunk by chunk: columns ``id``, ``ref_pred``, ``alt_pred``, ``delta`` (and
    ``delta_sd``, ``n_models``) in file order (models should be BatchNorm-folded, see
    :func:`promoterlab.models.fold.fold_batchnorm`: they are used as they are)."""
    models = [model] if isinstance(model, nn.Module) else list(model)
    for chunk in iter_variant_pairs(path, layout, chunk_rows, strict):
        effects = ensemble_variant_effects(models, chunk["ref"].tolist(), chunk["alt"].tolist(), layout, batch_size,
                                           device, precision, fold=False)
        effects.insert(0, "id", chunk["id"].to_numpy())
        yield effects


def ranked(effects: pd.DataFrame) -> pd.DataFrame:
    """Effects sorted by delta, largest first, with a ``rank`` column (1 = largest increase)."""
    order = np.argsort(-effects["delta"].to_numpy(), kind="stable")
    out = effects.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def write_variant_effects(run_dir: "Run | str | Path | Sequence[str | Path]", path: str | Path, output: str | Path, plot: str | Path | None = None,
                          batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", precision: str = "auto",
                          progress: bool = False, chunk_rows: int = CHUNK_ROWS, inputs: Sequence[str | Path] = (),
                          strict: bool = False) -> int:
    """Stream the effects of the variants in ``path`` into the TSV ``output`` (``-``: standard output).

    ``run_dir`` is one run, or several (a list, a folder of runs or a glob): an ensemble, whose
    mean effects are written with ``delta_sd`` and ``n_models``
    (:func:`ensemble_variant_effects`). The columns are ``id``, ``ref_pred``, ``alt_pred``,
    ``delta``, in file order; rows are
    written as their chunk is predicted and the file appears, renamed into place, only when
    every row succeeded (:func:`promoterlab.files.output_stream`). With ``plot``, a ranked
    effect plot is saved there afterwards. ``strict`` refuses repeated ids
    (:func:`iter_variant_pairs`). Returns the number of variants.
    """
    from tqdm.auto import tqdm

    from promoterlab.files import check_output, output_stream
    from promoterlab.models.fold import fold_batchnorm
    from promoterlab.runs import Run

    inputs = [path, *inputs]
    check_output(output, inputs)
    if plot is not None:
        check_output(plot, [*inputs, output])
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    members = run.load_members(device)
    layout = members[0][1].data.layout
    models = [fold_batchnorm(model) for model, _ in members]
    ids, deltas, n, bar = [], [], 0, None
    with output_stream(output, inputs=inputs) as handle:
        for chunk in iter_variant_effects(models, layout, path, batch_size, device, precision, chunk_rows, strict):
            chunk.to_csv(handle, sep="\t", index=False, header=n == 0, lineterminator="\n", float_format="%.6g")
            n += len(chunk)
            # Made at the first chunk, so that an error in the file's first rows prints no bar.
            if bar is None:
                bar = tqdm(disable=not progress, desc="variants", unit=" pair")
            bar.update(len(chunk))
            if plot is not None:
                ids.append(chunk["id"].to_numpy())
                deltas.append(chunk["delta"].to_numpy())
    if bar is not None:
        bar.close()
    if plot is not None:
        from promoterlab.interpret.plots import plot_variant_effects

        plot_variant_effects(pd.DataFrame({"id": np.concatenate(ids), "delta": np.concatenate(deltas)}), plot)
    return n
