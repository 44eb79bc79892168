"""What a lab can build: the design space (a variable insert between fixed flanks) and the
constraints that every returned design satisfies.

Inserts are ``(n, L)`` uint8 code arrays (A, C, G, T = 0, 1, 2, 3). Sites and motifs are
written in IUPAC letters (``GGTCTC``, ``TATAWAWR``). The constraints:

- ``gc``: the insert's G + C fraction lies in ``[low, high]``;
- ``forbidden``: no occurrence of a site on either strand that overlaps the insert, the
  junctions with the flanks included (restriction sites);
- ``max_homopolymer``: no run of one base longer than this that overlaps the insert;
- ``required``: each motif occurs in the insert, as written (forward strand). Its positions are
  frozen: planted in random starts, kept where a given start has it.

A violation that lies wholly inside a fixed flank cannot be changed and is not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BASES = "ACGT"
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
         "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
_IUPAC_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")
_GC = np.array([False, True, True, False, False])  # by code; 4 (N, flanks only) counts as neither


def to_codes(seqs: list[str]) -> np.ndarray:
    """Equal-length A/C/G/T strings (any case) to ``(n, L)`` uint8 codes; N (flanks only) is 4.

    Raises
    ------
    ValueError
        Naming the first sequence of another length or with another letter.
    """
    if not seqs:
        return np.zeros((0, 0), dtype=np.uint8)
    table = np.full(256, 255, dtype=np.uint8)
    for code, base in enumerate("ACGTN"):
        table[ord(base)] = table[ord(base.lower())] = code
    length = len(seqs[0])
    rows = []
    for i, seq in enumerate(seqs):
        if len(seq) != length:
            raise ValueError(f"sequence {i + 1} has {len(seq)} bases where the first has {length}")
        row = table[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]
        if (row == 255).any():
            raise ValueError(f"sequence {i + 1} has letters other than A, C, G, T, N")
        rows.append(row)
    return np.stack(rows)


def to_strings(codes: np.ndarray) -> list[str]:
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)[np.asarray(codes, dtype=np.int64)]
    return [row.tobytes().decode() for row in np.atleast_2d(letters)]


def site_pattern(site: str) -> np.ndarray:
    """``(m, 5)`` bool: which codes (A, C, G, T, N) each position of an IUPAC site accepts (N never)."""
    site = site.strip().upper()
    if not site or set(site) - set(IUPAC):
        raise ValueError(f"site {site!r}: use IUPAC letters (A, C, G, T, R, Y, S, W, K, M, B, D, H, V, N)")
    pattern = np.zeros((len(site), 5), dtype=bool)
    for j, letter in enumerate(site):
        pattern[j, [BASES.index(b) for b in IUPAC[letter]]] = True
    return pattern


def reverse_complement_site(site: str) -> str:
    return site.strip().upper().translate(_IUPAC_COMPLEMENT)[::-1]


def window_matches(codes: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """``(n, L - m + 1)`` count of the positions of each window that match ``pattern``."""
    m = len(pattern)
    if codes.shape[1] < m:
        return np.zeros((len(codes), 0), dtype=np.int64)
    windows = sliding_window_view(codes, m, axis=1)
    return pattern[np.arange(m), windows].sum(axis=-1)


@dataclass(frozen=True)
class DesignSpace:
    """A design is ``left + insert + right``; only the ``length`` bases of the insert change."""

    left: str
    right: str
    length: int

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"insert length must be at least 1, got {self.length}")
        for name, flank in (("left", self.left), ("right", self.right)):
            if set(flank.upper()) - set("ACGTN"):
                raise ValueError(f"{name} flank {flank!r}: only A, C, G, T, N")

    def sequences(self, inserts: np.ndarray) -> list[str]:
        """The whole constructs of insert codes."""
        return [self.left + insert + self.right for insert in to_strings(inserts)]


@dataclass(frozen=True)
class Constraints:
    """Constraints on designs (see the module docstring); the defaults constrain nothing."""

    gc: tuple[float, float] = (0.0, 1.0)
    forbidden: tuple[str, ...] = ()
    max_homopolymer: int | None = None
    required: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        low, high = self.gc
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"GC range must satisfy 0 <= low <= high <= 1, got {low:g}-{high:g}")
        if self.max_homopolymer is not None and self.max_homopolymer < 1:
            raise ValueError(f"longest homopolymer must be at least 1, got {self.max_homopolymer}")
        for site in (*self.forbidden, *self.required):
            site_pattern(site)


class Checker:
    """Vectorised checks of inserts against :class:`Constraints` in a :class:`DesignSpace`.

    Raises
    ------
    ValueError
        When no insert of this length can satisfy the GC range, or the required motifs do not
        fit into it.
    """

    def __init__(self, space: DesignSpace, constraints: Constraints):
        self.space, self.constraints = space, constraints
        length = space.length
        self.gc_bases = (math.ceil(constraints.gc[0] * length - 1e-9), math.floor(constraints.gc[1] * length + 1e-9))
        if self.gc_bases[0] > self.gc_bases[1]:
            raise ValueError(f"no {length} bp insert has a GC fraction in {constraints.gc[0]:g}-{constraints.gc[1]:g}")
        if sum(len(m) for m in constraints.required) > length:
            raise ValueError(f"the required motifs ({', '.join(constraints.required)}) do not fit into a "
                             f"{length} bp insert")
        sites = {s.strip().upper() for s in constraints.forbidden}
        sites |= {reverse_complement_site(s) for s in sites}
        self.forbidden = sorted(sites)
        self.patterns = [site_pattern(s) for s in self.forbidden]
        self.required = [site_pattern(m) for m in constraints.required]
        run = constraints.max_homopolymer
        widths = [len(p) for p in self.patterns] + ([run + 1] if run is not None else [])
        context = max(widths, default=1) - 1
        self.left = to_codes([space.left[-context:]])[0] if context and space.left else np.zeros(0, np.uint8)
        self.right = to_codes([space.right[:context]])[0] if context and space.right else np.zeros(0, np.uint8)

    def _construct(self, codes: np.ndarray) -> np.ndarray:
        n = len(codes)
        return np.concatenate([np.broadcast_to(self.left, (n, len(self.left))), codes,
                               np.broadcast_to(self.right, (n, len(self.right)))], axis=1)

    def _overlapping(self, m: int, total: int) -> np.ndarray:
        """Which windows of width ``m`` in the construct overlap the insert."""
        start = np.arange(total - m + 1)
        lo = len(self.left)
        return (start < lo + self.space.length) & (start + m > lo)

    def site_hits(self, codes: np.ndarray, pattern: np.ndarray, mismatches: int = 0) -> np.ndarray:
        """``(n,)`` windows overlapping the insert with at most ``mismatches`` mismatches."""
        construct = self._construct(codes)
        matches = window_matches(construct, pattern)
        near = matches >= len(pattern) - mismatches
        return (near & self._overlapping(len(pattern), construct.shape[1])).sum(axis=1)

    def gc_count(self, codes: np.ndarray) -> np.ndarray:
        return _GC[codes].sum(axis=1)

    def longest_homopolymer(self, codes: np.ndarray) -> np.ndarray:
        """``(n,)`` longest run of one base overlapping the insert (flank bases counted in the run)."""
        construct = self._construct(codes).astype(np.int16)
        n, total = construct.shape
        run = np.ones((n, total), dtype=np.int32)
        for j in range(1, total):
            same = construct[:, j] == construct[:, j - 1]
            run[:, j] = np.where(same, run[:, j - 1] + 1, 1)
        lo, hi = len(self.left), len(self.left) + self.space.length
        # A run that ends inside the insert, or one that starts inside it and ends in the right flank.
        best = run[:, lo:hi].max(axis=1)
        if hi < total:
            starts_inside = run[:, hi:] > np.arange(1, total - hi + 1)
            best = np.maximum(best, np.where(starts_inside, run[:, hi:], 0).max(axis=1))
        return best

    def homopolymer_hits(self, codes: np.ndarray) -> np.ndarray:
        limit = self.constraints.max_homopolymer
        if limit is None:
            return np.zeros(len(codes), dtype=np.int64)
        construct = self._construct(codes)
        windows = sliding_window_view(construct, limit + 1, axis=1)
        uniform = (windows == windows[..., :1]).all(axis=-1)
        return (uniform & self._overlapping(limit + 1, construct.shape[1])).sum(axis=1)

    def required_present(self, codes: np.ndarray) -> np.ndarray:
        """``(n, n_motifs)`` whether each required motif occurs inside the insert."""
        if not self.required:
            return np.ones((len(codes), 0), dtype=bool)
        return np.stack([(window_matches(codes, p) == len(p)).any(axis=1) for p in self.required], axis=1)

    def violation(self, codes: np.ndarray) -> np.ndarray:
        """``(n,)`` how far each insert is from satisfying every constraint (0: feasible)."""
        codes = np.asarray(codes, dtype=np.uint8)
        gc = self.gc_count(codes)
        amount = np.clip(self.gc_bases[0] - gc, 0, None) + np.clip(gc - self.gc_bases[1], 0, None)
        for pattern in self.patterns:
            amount = amount + self.site_hits(codes, pattern)
        amount = amount + self.homopolymer_hits(codes)
        return amount + (~self.required_present(codes)).sum(axis=1)

    def feasible(self, codes: np.ndarray) -> np.ndarray:
        return self.violation(codes) == 0

    def active(self, codes: np.ndarray) -> list[str]:
        """Per insert, the constraints it is at the limit of (comma-separated; '' for none):
        ``gc_min``/``gc_max`` (one more A/T or G/C would break the range), ``homopolymer`` (the
        longest run is the limit), ``forbidden:SITE`` (a site one substitution away) and
        ``required:MOTIF`` (frozen positions)."""
        codes = np.asarray(codes, dtype=np.uint8)
        columns: list[tuple[str, np.ndarray]] = []
        if self.constraints.gc != (0.0, 1.0):
            gc = self.gc_count(codes)
            columns += [("gc_min", gc <= self.gc_bases[0]), ("gc_max", gc >= self.gc_bases[1])]
        if self.constraints.max_homopolymer is not None:
            columns.append(("homopolymer", self.longest_homopolymer(codes) >= self.constraints.max_homopolymer))
        for site, pattern in zip(self.forbidden, self.patterns):
            columns.append((f"forbidden:{site}", self.site_hits(codes, pattern, mismatches=1) > 0))
        present = self.required_present(codes)
        for j, motif in enumerate(self.constraints.required):
            columns.append((f"required:{motif.strip().upper()}", present[:, j]))
        return [",".join(name for name, flags in columns if flags[i]) for i in range(len(codes))]


def required_positions(codes: np.ndarray, checker: Checker) -> np.ndarray:
    """``(n, L)`` bool: the positions of the first occurrence of each required motif in each insert.

    Raises
    ------
    ValueError
        Naming the first insert (1-based) that lacks a required motif.
    """
    frozen = np.zeros(codes.shape, dtype=bool)
    for motif, pattern in zip(checker.constraints.required, checker.required):
        hits = window_matches(codes, pattern) == len(pattern)
        missing = ~hits.any(axis=1)
        if missing.any():
            raise ValueError(f"start sequence {int(np.argmax(missing)) + 1} lacks the required motif {motif}")
        first = hits.argmax(axis=1)
        for offset in range(len(pattern)):
            frozen[np.arange(len(codes)), first + offset] = True
    return frozen


def plant_required(codes: np.ndarray, checker: Checker, rng: np.random.Generator) -> np.ndarray:
    """Write each required motif (IUPAC letters drawn at random) at random non-overlapping places
    of each insert, in place; return the ``(n, L)`` frozen positions."""
    n, length = codes.shape
    frozen = np.zeros(codes.shape, dtype=bool)
    for i in range(n):
        for pattern in checker.required:
            m = len(pattern)
            free = [s for s in range(length - m + 1) if not frozen[i, s:s + m].any()]
            if not free:
                raise ValueError("the required motifs do not fit into the insert side by side")
            start = int(rng.choice(free))
            for j in range(m):
                codes[i, start + j] = rng.choice(np.flatnonzero(pattern[j, :4]))
            frozen[i, start:start + m] = True
    return frozen


def repair(codes: np.ndarray, checker: Checker, mutable: np.ndarray, rng: np.random.Generator,
           start: np.ndarray | None = None, max_edits: int | None = None, steps: int = 600) -> np.ndarray:
    """Random single substitutions at ``mutable`` positions, each kept when it does not add to the
    violation (and keeps within ``max_edits`` of ``start``), until every insert is feasible or
    ``steps`` rounds have passed. Returns the new codes; check :meth:`Checker.feasible`."""
    codes = np.array(codes, dtype=np.uint8)
    amount = checker.violation(codes)
    for _ in range(steps):
        rows = np.flatnonzero(amount > 0)
        rows = rows[mutable[rows].any(axis=1)]
        if not len(rows):
            break
        position = np.argmax(rng.random((len(rows), codes.shape[1])) * mutable[rows], axis=1)
        trial = codes[rows].copy()
        at = (np.arange(len(rows)), position)
        trial[at] = (trial[at] + rng.integers(1, 4, len(rows))) % 4
        keep = np.ones(len(rows), dtype=bool)
        if start is not None and max_edits is not None:
            keep &= (trial != start[rows]).sum(axis=1) <= max_edits
        new_amount = checker.violation(trial)
        keep &= new_amount <= amount[rows]
        codes[rows[keep]] = trial[keep]
        amount[rows[keep]] = new_amount[keep]
    return codes


def random_inserts(n: int, checker: Checker, rng: np.random.Generator, rounds: int = 5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` random feasible inserts (GC drawn near the middle of the allowed range), with
    their frozen positions (the planted required motifs). Fewer come back only when repair fails
    ``rounds`` times over (constraints that random sequences almost never meet)."""
    length = checker.space.length
    gc_target = min(max((checker.gc_bases[0] + checker.gc_bases[1]) / 2 / length, 0.05), 0.95)
    found_codes, found_frozen = [], []
    missing = n
    for _ in range(rounds):
        if missing <= 0:
            break
        gc = rng.random((missing, length)) < gc_target
        codes = np.where(gc, rng.choice([1, 2], (missing, length)), rng.choice([0, 3], (missing, length)))
        codes = codes.astype(np.uint8)
        frozen = plant_required(codes, checker, rng)
        codes = repair(codes, checker, ~frozen, rng)
        ok = checker.feasible(codes)
        found_codes.append(codes[ok])
        found_frozen.append(frozen[ok])
        missing -= int(ok.sum())
    return (np.concatenate(found_codes)[:n] if found_codes else np.zeros((0, length), np.uint8),
            np.concatenate(found_frozen)[:n] if found_frozen else np.zeros((0, length), bool))
