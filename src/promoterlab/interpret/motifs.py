"""Motifs from attributions: seqlets across many sequences, clustered, and named by known motifs.

1. Seqlets: spans of high attribution, called by tangermeme's recursive seqlet caller on the
   per-position attributions of the inserts, for positive and (negated) negative attributions.
2. Clusters: every pair of seqlets is compared with Tomtom (memelite) on their bases weighted
   by attribution (bases the model ignores count as uniform); average-linkage clustering of the
   pairs' Tomtom p-values (scipy), cut at ``max_p``, groups seqlets of the same motif whatever
   their strand or offset.
3. Motifs: the members of a cluster are aligned on its medoid with Tomtom's offset and strand;
   the motif is their base frequencies (PFM) and mean attribution (CWM), trimmed to the
   columns that carry attribution.
4. Names: each motif is compared with the known yeast motifs
   (:mod:`promoterlab.interpret.known_motifs`) by Tomtom, with the mean Pearson correlation of
   the aligned columns as a similarity in [-1, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from promoterlab.files import atomic_path
from promoterlab.interpret.attribution import N_SHUFFLES, torch_threads_kept
from promoterlab.interpret.explain import attribute, read_laid_out
from promoterlab.interpret.known_motifs import BASES, KNOWN_MOTIFS, KnownMotif
from promoterlab.sequence import tangermeme_one_hot
from promoterlab.runs import load_run

SEQLET_THRESHOLD = 1e-3
MIN_SEQLET_LEN = 4
MAX_SEQLET_LEN = 20
FLANK = 2
MAX_SEQLETS = 2000
CLUSTER_MAX_P = 0.05
MIN_CLUSTER_SIZE = 10
TRIM_FRACTION = 0.2
MATCH_P = 0.05


def call_seqlets(contributions: np.ndarray, mask: np.ndarray | None = None, threshold: float = SEQLET_THRESHOLD,
                 min_len: int = MIN_SEQLET_LEN, max_len: int = MAX_SEQLET_LEN) -> pd.DataFrame:
    """Positive and negative seqlets of per-position attributions.

    Parameters
    ----------
    contributions : numpy.ndarray
        ``(n, L)`` attribution of the base at each position (projected attributions summed over
        the bases).
    mask : numpy.ndarray, optional
        ``(n, L)`` bool, True where seqlets may lie (the inserts); elsewhere the attribution is
        taken as 0 and seqlets reaching there are dropped.
    threshold : float
        Ranking p-value of :func:`tangermeme.seqlet.recursive_seqlets` (a cut-off, not an FDR).
    min_len, max_len : int
        Seqlet lengths.

    Returns
    -------
    pandas.DataFrame
        ``example_idx``, ``start``, ``end``, ``attribution`` (signed sum), ``p-value``, ``sign``
        (+1 or -1), strongest first; a negative seqlet that overlaps a positive one is dropped.
    """
    from tangermeme.seqlet import recursive_seqlets

    contributions = np.asarray(contributions, dtype=np.float64)
    mask = np.ones(contributions.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    values = np.where(mask, contributions, 0.0)
    found = []
    for sign in (1, -1):
        with torch_threads_kept():
            seqlets = recursive_seqlets(sign * values, threshold=threshold, min_seqlet_len=min_len,
                                        max_seqlet_len=max_len)
        inside = [bool(mask[i, s:e].all()) for i, s, e in seqlets[["example_idx", "start", "end"]].itertuples(
            index=False)]
        seqlets = seqlets[np.asarray(inside, dtype=bool)].assign(sign=sign)
        seqlets["attribution"] *= sign
        found.append(seqlets)
    positive, negative = found
    taken = {(int(i), p) for i, s, e in positive[["example_idx", "start", "end"]].itertuples(index=False)
             for p in range(int(s), int(e))}
    clear = [not any((int(i), p) in taken for p in range(int(s), int(e)))
             for i, s, e in negative[["example_idx", "start", "end"]].itertuples(index=False)]
    seqlets = pd.concat([positive, negative[np.asarray(clear, dtype=bool)]], ignore_index=True)
    return seqlets.sort_values("p-value", kind="stable").reset_index(drop=True)


@dataclass
class DiscoveredMotif:
    """A motif found in attributions.

    ``pfm`` (4, w) holds base frequencies of the aligned seqlets (rows A, C, G, T), ``cwm`` (4, w)
    their mean attribution; ``sign`` is +1 for motifs that raise expression, -1 for those that
    lower it; ``seqlets`` are the members' rows in the seqlet table.
    """

    name: str
    sign: int
    pfm: np.ndarray
    cwm: np.ndarray
    seqlets: np.ndarray

    @property
    def consensus(self) -> str:
        """Most frequent base per column (lower case where it has under half of the weight)."""
        best = self.pfm.argmax(axis=0)
        return "".join(BASES[b] if self.pfm[b, i] >= 0.5 else BASES[b].lower() for i, b in enumerate(best))


def _weighted_window(one_hot: np.ndarray, attributions: np.ndarray) -> np.ndarray:
    """A seqlet's bases as probabilities for Tomtom, weighted by attribution.

    A column is its one-hot base (with a small pseudocount) in proportion to the column's share
    of the seqlet's largest attribution, and uniform for the rest: bases the model ignores carry
    no information, so two seqlets are similar where their important bases agree. Columns
    outside the sequence are uniform.
    """
    weight = np.abs(attributions.sum(axis=0))
    weight = weight / weight.max() if weight.max() > 0 else np.ones_like(weight)
    base = 0.94 * one_hot.astype(np.float64) + 0.015
    base[:, one_hot.sum(axis=0) == 0] = 0.25
    return weight * base + (1 - weight) * 0.25


def _tomtom(queries: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """memelite's Tomtom (p-values, scores, offsets, overlaps, strands), on torch's threads.

    Its warning that p-values vary with the choice of targets when there are few is silenced:
    the comparison with the known motifs has only a few targets, and says so in its docs.
    """
    from memelite import tomtom

    with warnings.catch_warnings(), torch_threads_kept() as threads:
        warnings.filterwarnings("ignore", message=".*targets.*")
        return tomtom(list(queries), list(targets), n_jobs=threads)


def _aligned(array: np.ndarray, start: int, width: int, offset: int, strand: int, span: range) -> np.ndarray:
    """Columns of ``array`` (4, L') that align with positions ``span`` of a query whose match with
    the window ``array[:, start:start + width]`` has Tomtom's ``offset`` and ``strand``."""
    if strand == 0:
        return array[:, [start + i + offset for i in span]]
    return array[::-1, [start + width - 1 - i - offset for i in span]]


def _trim(cwm: np.ndarray, fraction: float) -> slice:
    weight = np.abs(cwm.sum(axis=0))
    keep = np.flatnonzero(weight >= fraction * weight.max()) if weight.max() > 0 else np.arange(len(weight))
    return slice(int(keep[0]), int(keep[-1]) + 1)


def cluster_seqlets(one_hot: np.ndarray, attributions: np.ndarray, seqlets: pd.DataFrame, flank: int = FLANK,
                    max_p: float = CLUSTER_MAX_P, min_size: int = MIN_CLUSTER_SIZE,
                    trim_fraction: float = TRIM_FRACTION) -> list[DiscoveredMotif]:
    """Cluster seqlets of one sign into motifs (see the module docstring).

    Parameters
    ----------
    one_hot : numpy.ndarray
        ``(n, 4, L)`` one-hot of the sequences the seqlets come from.
    attributions : numpy.ndarray
        ``(n, 4, L)`` projected attributions.
    seqlets : pandas.DataFrame
        Rows of :func:`call_seqlets`, all of one sign.
    flank : int
        Bases added on each side of a seqlet before comparing and aligning.
    max_p : float
        Clusters are cut where the average Tomtom p-value between them exceeds this.
    min_size : int
        Smallest cluster reported as a motif.
    trim_fraction : float
        Motif edges whose attribution is below this fraction of the strongest column are cut.

    Returns
    -------
    list of DiscoveredMotif
        Largest cluster first, named ``pos_1``, ``pos_2``, ... (``neg_...`` for negative seqlets).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if len(seqlets) < max(2, min_size):
        return []
    sign = int(seqlets["sign"].iloc[0])
    width_max = int((seqlets["end"] - seqlets["start"]).max()) + 2 * flank
    pad = 3 * width_max
    padded_x = np.pad(np.asarray(one_hot, dtype=np.float64), ((0, 0), (0, 0), (pad, pad)))
    padded_a = np.pad(np.asarray(attributions, dtype=np.float64), ((0, 0), (0, 0), (pad, pad)))
    rows = list(seqlets[["example_idx", "start", "end"]].itertuples(index=False))
    starts = [pad + int(s) - flank for _, s, _ in rows]
    widths = [int(e) - int(s) + 2 * flank for _, s, e in rows]
    windows = [_weighted_window(padded_x[int(i), :, st:st + w], padded_a[int(i), :, st:st + w])
               for (i, _, _), st, w in zip(rows, starts, widths)]
    p_values, _, offsets, _, strands = _tomtom(windows, windows)
    distance = np.maximum(p_values, p_values.T)
    np.fill_diagonal(distance, 0.0)
    labels = fcluster(linkage(squareform(distance, checks=False), "average"), t=max_p, criterion="distance")
    motifs = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < min_size:
            continue
        medoid = members[np.argmin(distance[np.ix_(members, members)].sum(axis=1))]
        span = range(-flank, widths[medoid] + flank)
        x_sum, a_sum = np.zeros((4, len(span))), np.zeros((4, len(span)))
        for j in members:
            offset, strand = int(offsets[medoid, j]), int(strands[medoid, j])
            example = int(rows[j][0])
            x_sum += _aligned(padded_x[example], starts[j], widths[j], offset, strand, span)
            a_sum += _aligned(padded_a[example], starts[j], widths[j], offset, strand, span)
        cwm = a_sum / len(members)
        pfm = (x_sum + 0.01) / (x_sum + 0.01).sum(axis=0, keepdims=True)
        keep = _trim(cwm, trim_fraction)
        motifs.append(DiscoveredMotif("", sign, pfm[:, keep], cwm[:, keep], seqlets.index.to_numpy()[members]))
    motifs.sort(key=lambda m: -len(m.seqlets))
    for k, motif in enumerate(motifs, start=1):
        motif.name = f"{'pos' if sign > 0 else 'neg'}_{k}"
    return motifs


def _similarity(query: np.ndarray, target: np.ndarray, offset: int, strand: int) -> float:
    """Mean Pearson correlation of the columns that Tomtom's alignment overlaps (constant columns,
    which have none, left out)."""
    if strand == 1:
        target = target[::-1, ::-1]
    pairs = [(i, i + offset) for i in range(query.shape[1]) if 0 <= i + offset < target.shape[1]]
    if not pairs:
        return float("nan")
    pairs = [(i, j) for i, j in pairs if np.ptp(query[:, i]) > 0 and np.ptp(target[:, j]) > 0]
    if not pairs:
        return float("nan")
    return float(np.mean([np.corrcoef(query[:, i], target[:, j])[0, 1] for i, j in pairs]))


def compare_with_known(motifs: Sequence[DiscoveredMotif], known: Sequence[KnownMotif] = KNOWN_MOTIFS,
                       match_p: float = MATCH_P) -> pd.DataFrame:
    """The best known motif for each discovered one.

    Returns
    -------
    pandas.DataFrame
        One row per motif: ``motif``, ``sign``, ``n_seqlets``, ``consensus``, ``best_match``
        (known motif with the smallest Tomtom p-value), ``p_value``, ``similarity`` (mean column
        Pearson correlation at Tomtom's alignment) and ``match`` (p-value below ``match_p``).
        With few known motifs Tomtom's p-values are rough; they rank the known motifs.
    """
    columns = ["motif", "sign", "n_seqlets", "consensus", "best_match", "p_value", "similarity", "match"]
    if not motifs:
        return pd.DataFrame(columns=columns)
    targets = [m.pwm for m in known]
    p_values, _, offsets, _, strands = _tomtom([m.pfm for m in motifs], targets)
    rows = []
    for q, motif in enumerate(motifs):
        best = int(np.argmin(p_values[q]))
        similarity = _similarity(motif.pfm, targets[best], int(offsets[q, best]), int(strands[q, best]))
        rows.append((motif.name, motif.sign, len(motif.seqlets), motif.consensus, known[best].name,
                     float(p_values[q, best]), similarity, bool(p_values[q, best] < match_p)))
    return pd.DataFrame(rows, columns=columns)


def discover_motifs(one_hot: np.ndarray, attributions: np.ndarray, mask: np.ndarray | None = None,
                    threshold: float = SEQLET_THRESHOLD, max_seqlets: int = MAX_SEQLETS, max_p: float = CLUSTER_MAX_P,
                    min_size: int = MIN_CLUSTER_SIZE) -> tuple[pd.DataFrame, list[DiscoveredMotif]]:
    """Seqlets of projected attributions and the motifs they cluster into.

    Parameters
    ----------
    one_hot, attributions : numpy.ndarray
        ``(n, 4, L)`` one-hot and projected attributions.
    mask : numpy.ndarray, optional
        ``(n, L)``, True on the inserts.
    threshold, max_p, min_size
        See :func:`call_seqlets` and :func:`cluster_seqlets`.
    max_seqlets : int
        Only the strongest seqlets of each sign (by p-value) are clustered.

    Returns
    -------
    tuple
        The seqlet table (with a ``motif`` column: the motif a seqlet joined, or empty) and the
        motifs, positive ones first.
    """
    seqlets = call_seqlets(np.asarray(attributions).sum(axis=1), mask, threshold)
    seqlets["motif"] = ""
    motifs = []
    for sign in (1, -1):
        chosen = seqlets[seqlets["sign"] == sign].head(max_seqlets)
        found = cluster_seqlets(one_hot, attributions, chosen, max_p=max_p, min_size=min_size)
        for motif in found:
            seqlets.loc[motif.seqlets, "motif"] = motif.name
        motifs += found
    return seqlets, motifs


def find_motifs(run_dir: str | Path, path: str | Path, out_dir: str | Path, method: str = "deepliftshap", seq_col: str | None = None,
                id_col: str | None = None, threshold: float = SEQLET_THRESHOLD, max_seqlets: int = MAX_SEQLETS,
                max_p: float = CLUSTER_MAX_P, min_size: int = MIN_CLUSTER_SIZE, n_shuffles: int = N_SHUFFLES,
                seed: int = 0, precision: str = "auto", device: str = "cpu", progress: bool = False
                ) -> tuple[pd.DataFrame, list[DiscoveredMotif], pd.DataFrame]:
    """Motifs a trained run learned, from the attributions of the sequences of a file.

    Writes to ``out_dir``: ``seqlets.tsv`` (id, 1-based ``start``/``end`` on the insert,
    attribution, p-value, sign, motif), ``motifs.tsv`` (:func:`compare_with_known`) and one PNG
    logo per motif (:func:`promoterlab.interpret.plots.plot_motif`). Everything is computed
    before anything is written.

    Returns
    -------
    tuple
        The seqlet table, the motifs and the comparison with the known motifs.
    """
    from promoterlab.interpret.plots import plot_motif

    model, config = load_run(run_dir, device)
    frame, codes, starts = read_laid_out(path, config.data.layout, seq_col, id_col)
    window = attribute(model, codes, starts, method, n_shuffles=n_shuffles, seed=seed,
                       precision=precision, device=device, progress=progress)
    one_hot = tangermeme_one_hot(codes).numpy()
    mask = np.arange(codes.shape[1])[None, :] >= starts[:, None]
    seqlets, motifs = discover_motifs(one_hot, window.attributions, mask, threshold, max_seqlets, max_p, min_size)
    table = compare_with_known(motifs)
    example = seqlets["example_idx"].to_numpy()
    report = pd.DataFrame({"id": frame["id"].to_numpy()[example],
                           "start": seqlets["start"].to_numpy() - starts[example] + 1,
                           "end": seqlets["end"].to_numpy() - starts[example],
                           "attribution": seqlets["attribution"].to_numpy(), "p_value": seqlets["p-value"].to_numpy(),
                           "sign": seqlets["sign"].to_numpy(), "motif": seqlets["motif"].to_numpy()})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in (("seqlets.tsv", report), ("motifs.tsv", table)):
        with atomic_path(out_dir / name) as tmp:
            data.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    for motif, row in zip(motifs, table.itertuples(index=False)):
        title = (f"{motif.name} ({len(motif.seqlets)} seqlets): best known match {row.best_match}, "
                 f"p = {row.p_value:.2g}, similarity {row.similarity:.2f}")
        plot_motif(motif.pfm, motif.cwm, title, out_dir / f"{motif.name}.png")
    return report, motifs, table
