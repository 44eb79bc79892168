"""A small set of known yeast promoter motifs, as PWMs written from their published consensus.

Each motif is the consensus sequence as published (IUPAC letters), turned into a position
weight matrix by :func:`consensus_pwm`: the bases a letter allows share its weight equally, and
a pseudocount keeps every probability above zero. These are not measured matrices; they are
what the papers below state as the site, enough to name what a model learned.

==============  ==================  =====================================================================
motif           consensus           source
==============  ==================  =====================================================================
TATA box        ``TATAWAWR``        Basehoar, Zanton & Pugh 2004, Cell 116:699 (genome-wide consensus)
Reb1            ``TTACCCGG``        Morrow, Ju & Warner 1990, J Biol Chem (REB1 binds ``CCGGGTAA``;
                                    given here on the other strand)
Abf1            ``RTCRYYYNNNACG``   yeast ABF1/RAP1/REB1/CPF1 review, Table 1 (PMC6057378)
Rap1            ``ACACCCATACATTT``  same review, Table 1 (PMC6057378)
Cbf1            ``RTCACGTG``        same review, Table 1 (CPF1 = Cbf1; PMC6057378)
poly-dA:dT      ``TTTTTTTTTT``      Iyer & Struhl 1995, EMBO J 14:2570 (poly(dA:dT) promoter element)
Ume6 (URS1)     ``TAGCCGCCGA``      Buckingham et al. 1990, PNAS 87:9406 (URS1 in meiotic promoters)
Gcn4            ``ATGASTCAT``       Hill, Hope, Macke & Struhl 1986, Science 234:451 (HIS3 GCN4 site)
==============  ==================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
         "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
BASES = "ACGT"
PSEUDOCOUNT = 0.05


def consensus_pwm(consensus: str, pseudocount: float = PSEUDOCOUNT) -> np.ndarray:
    """``(4, len)`` base probabilities (rows A, C, G, T) of an IUPAC consensus.

    Each column gives the letter's bases equal counts summing to 1, adds ``pseudocount`` to
    every base and normalises.

    Raises
    ------
    ValueError
        For a letter that is not an IUPAC nucleotide code.
    """
    counts = np.full((4, len(consensus)), pseudocount)
    for column, letter in enumerate(consensus.upper()):
        if letter not in IUPAC:
            raise ValueError(f"{consensus!r}: {letter!r} is not an IUPAC nucleotide code")
        for base in IUPAC[letter]:
            counts[BASES.index(base), column] += 1 / len(IUPAC[letter])
    return counts / counts.sum(axis=0, keepdims=True)


def consensus_site(consensus: str) -> str:
    """One concrete site of a consensus: each degenerate letter becomes the first base it allows
    (alphabetical), N stays N (``TATAWAWR`` -> ``TATAAAAA``)."""
    return "".join(letter if letter == "N" else IUPAC[letter][0] for letter in consensus.upper())


@dataclass(frozen=True)
class KnownMotif:
    """A published yeast motif.

    Parameters
    ----------
    name : str
        Short name (used on the command line and in reports).
    consensus : str
        The consensus as published (IUPAC).
    source : str
        Where the consensus is published.
    """

    name: str
    consensus: str
    source: str

    @property
    def pwm(self) -> np.ndarray:
        """``(4, len)`` PWM of the consensus (:func:`consensus_pwm`)."""
        return consensus_pwm(self.consensus)


KNOWN_MOTIFS: tuple[KnownMotif, ...] = (
    KnownMotif("TATA", "TATAWAWR", "Basehoar, Zanton & Pugh 2004, Cell 116:699"),
    KnownMotif("Reb1", "TTACCCGG", "Morrow, Ju & Warner 1990, J Biol Chem (CCGGGTAA, other strand)"),
    KnownMotif("Abf1", "RTCRYYYNNNACG", "review of ABF1, RAP1, REB1, CPF1, Table 1 (PMC6057378)"),
    KnownMotif("Rap1", "ACACCCATACATTT", "review of ABF1, RAP1, REB1, CPF1, Table 1 (PMC6057378)"),
    KnownMotif("Cbf1", "RTCACGTG", "review of ABF1, RAP1, REB1, CPF1, Table 1 (PMC6057378)"),
    KnownMotif("polyA:T", "TTTTTTTTTT", "Iyer & Struhl 1995, EMBO J 14:2570"),
    KnownMotif("Ume6", "TAGCCGCCGA", "Buckingham et al. 1990, PNAS 87:9406 (URS1)"),
    KnownMotif("Gcn4", "ATGASTCAT", "Hill, Hope, Macke & Struhl 1986, Science 234:451"),
)


def known_motif(name: str) -> KnownMotif:
    """The known motif called ``name`` (case-insensitive).

    Raises
    ------
    KeyError
        Naming the known motifs.
    """
    for motif in KNOWN_MOTIFS:
        if motif.name.lower() == name.lower():
            return motif
    raise KeyError(f"no known motif {name!r}; known: {', '.join(m.name for m in KNOWN_MOTIFS)}")
