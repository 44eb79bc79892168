"""A seeded simulator of a sort-seq promoter library with a known regulatory grammar.

Each sequence is ``LEFT_ADAPTER + random 80-mer + RIGHT_ADAPTER`` (110 bp, as in DREAM
2022). Yeast motifs are planted at random positions and orientations, and expression is
computed by scanning the final 80-mer (so chance occurrences count too):

============  =========================  ========  ==================================================
motif         pattern                    effect    grammar
============  =========================  ========  ==================================================
TATA box      ``TATAWAWR``               +3.0      forward strand only (reverse 0.2x); strongest
                                                   near position 60 of 80 (Gaussian, sd 12 bp)
Reb1          ``TTACCCG``                +2.0      either strand; rises linearly towards the 3' end
Abf1          ``RTCRYNNNNNACG``          +2.0      either strand; anywhere
Rap1          ``ACACCCATACAT``           +2.5      either strand; 3' half only (0.3x in 5' half)
poly-dA:dT    ``T{8,}`` / ``A{8,}``      +1.5      poly-dT 1.0x, poly-dA 0.6x; +10 % per extra base
Ume6          ``TAGCCGCCGA``             -2.5      either strand; repressor
============  =========================  ========  ==================================================

Copy number saturates: a motif whose weighted occurrences sum to S contributes
``effect * 2 * (1 - 0.5 ** S)`` (1 copy: 1x, 2 copies: 1.5x, 3 copies: 1.75x). The latent
level ``5 + sum of contributions`` is measured as in sort-seq: each sequence gets
``1 + Poisson(3)`` reads, each read falls into bin ``round(latent + N(0, 1))`` clipped to
0..17, and the reported value is the mean bin (an integer when all reads share a bin).

:func:`true_expression` is the noiseless expression of any sequence: the value this measurement
reports on average (infinitely many reads), ``sum_k k * P(bin k)`` with
``P(bin k) = P(round(latent + N(0, 1)) = k)`` and the bins clipped to 0..17 as above. It is the
latent level squeezed into 0..17 (within 0.01 of ``clip(latent, 0, 17)`` for levels from 2 to 15,
smoothly saturating at the ends), the ground truth against which designs are scored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from promoterlab.sequence import LEFT_ADAPTER, RIGHT_ADAPTER, reverse_complement
from promoterlab.files import atomic_path

INSERT_LEN = 80
BASE_LEVEL = 5.0
READ_NOISE = 1.0
MAX_BIN = 17


@dataclass(frozen=True)
class Motif:
    name: str
    pattern: str
    instances: tuple[str, ...]
    effect: float
    plant_probability: float
    reverse_weight: float = 1.0

    def position_weight(self, center: float) -> float:
        """Weight of an occurrence centred at ``center`` (0..80)."""
        if self.name == "TATA":
            return math.exp(-0.5 * ((center - 60) / 12) ** 2)
        if self.name == "Reb1":
            return 0.4 + 0.6 * center / INSERT_LEN
        if self.name == "Rap1":
            return 1.0 if center >= INSERT_LEN / 2 else 0.3
        return 1.0


MOTIFS = (
    Motif("TATA", "TATA[AT]A[AT][AG]", ("TATAAAAG", "TATATAAA", "TATAAATA"), 3.0, 0.35, reverse_weight=0.2),
    Motif("Reb1", "TTACCCG", ("TTACCCG",), 2.0, 0.3),
    Motif("Abf1", "[AG]TC[AG][CT].....ACG", ("ATCACNNNNNACG", "GTCGTNNNNNACG"), 2.0, 0.25),
    Motif("Rap1", "ACACCCATACAT", ("ACACCCATACAT",), 2.5, 0.2),
    Motif("polyT", "T{8,}", ("TTTTTTTTTT", "TTTTTTTT", "TTTTTTTTTTTT"), 1.5, 0.3, reverse_weight=0.6),
    Motif("Ume6", "TAGCCGCCGA", ("TAGCCGCCGA",), -2.5, 0.2),
)


def motif_score(insert: str, motif: Motif) -> float:
    """Weighted occurrence count of ``motif`` in the 80-mer on both strands."""
    total = 0.0
    for strand_seq, weight in ((insert, 1.0), (reverse_complement(insert), motif.reverse_weight)):
        for match in re.finditer(motif.pattern, strand_seq):
            start, end = match.span()
            if strand_seq is not insert:
                start, end = len(insert) - end, len(insert) - start
            length_bonus = 1 + 0.1 * (end - start - 8) if motif.name == "polyT" else 1.0
            total += weight * length_bonus * motif.position_weight((start + end) / 2)
    return total


def latent_expression(insert: str) -> float:
    """Noise-free expression level of an 80-mer under the grammar above."""
    level = BASE_LEVEL
    for motif in MOTIFS:
        score = motif_score(insert, motif)
        level += motif.effect * 2 * (1 - 0.5 ** score)
    return level


def expected_measurement(latent: np.ndarray) -> np.ndarray:
    """The mean bin that sort-seq reports for latent levels, on average over its read noise."""
    latent = np.asarray(latent, dtype=np.float64)
    # P(bin >= k) = P(latent + noise >= k - 0.5) for k = 1..MAX_BIN (the top bin takes what lies above).
    k = np.arange(1, MAX_BIN + 1)
    return norm.sf((k - 0.5 - latent[..., None]) / READ_NOISE).sum(axis=-1)


def true_expression(seqs: list[str] | tuple[str, ...]) -> np.ndarray:
    """Noiseless expression of each sequence under the simulator's grammar (0..17).

    Parameters
    ----------
    seqs : sequence of str
        80 bp inserts, or whole constructs ``LEFT_ADAPTER + insert + RIGHT_ADAPTER`` (either
        adapter may be missing), in any case.

    Returns
    -------
    numpy.ndarray
        The expected measured value of each sequence (:func:`expected_measurement` of its
        :func:`latent_expression`).

    Raises
    ------
    ValueError
        A sequence whose insert is not 80 bp of A, C, G, T, naming its position (from 1).
    """
    latent = []
    for i, seq in enumerate(seqs):
        insert = seq.upper()
        if len(insert) != INSERT_LEN:
            insert = insert.removeprefix(LEFT_ADAPTER).removesuffix(RIGHT_ADAPTER)
        if len(insert) != INSERT_LEN or set(insert) - set("ACGT"):
            raise ValueError(f"sequence {i + 1}: expected an {INSERT_LEN} bp insert of A, C, G, T (with or without "
                             f"the adapters), got {len(insert)} bp")
        latent.append(latent_expression(insert))
    return expected_measurement(np.array(latent))


def _plant(rng: np.random.Generator, insert: list[str]) -> None:
    for motif in MOTIFS:
        if rng.random() >= motif.plant_probability:
            continue
        for _ in range(1 + rng.binomial(2, 0.3)):
            site = str(rng.choice(motif.instances))
            site = "".join(b if b != "N" else "ACGT"[rng.integers(4)] for b in site)
            if rng.random() < 0.5:
                site = reverse_complement(site)
            start = int(rng.integers(0, INSERT_LEN - len(site) + 1))
            insert[start:start + len(site)] = site


def simulate_library(n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Simulate ``n`` measured promoters.

    Returns
    -------
    pandas.DataFrame
        Columns ``seq`` (110 bp), ``expr`` (measured mean bin, 0..17) and ``latent``.
    """
    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    seqs, latent = [], []
    for _ in range(n):
        insert = list(bases[rng.integers(0, 4, INSERT_LEN)])
        _plant(rng, insert)
        insert_str = "".join(insert)
        seqs.append(LEFT_ADAPTER + insert_str + RIGHT_ADAPTER)
        latent.append(latent_expression(insert_str))
    latent_arr = np.array(latent)
    reads = 1 + rng.poisson(3, size=n)
    measured = np.array([
        np.clip(np.round(level + rng.normal(0, READ_NOISE, k)), 0, 17).mean() for level, k in zip(latent_arr, reads)
    ])
    return pd.DataFrame({"seq": seqs, "expr": measured, "latent": latent_arr})


def write_library(path: str | Path, n: int = 10_000, seed: int = 0) -> Path:
    """Write a simulated library in the DREAM text format (``seq<TAB>expr``, no header)."""
    path = Path(path)
    frame = simulate_library(n, seed)
    with atomic_path(path) as tmp:
        frame[["seq", "expr"]].to_csv(tmp, sep="\t", header=False, index=False, float_format="%.4f")
    return path
