"""Optimise inserts toward a goal under constraints: greedy substitution guided by in-silico
mutagenesis, or an evolutionary search; both on arrays of insert codes.

The score of a sequence is its predicted mean toward the goal, less ``penalty`` times its
ensemble sd (:class:`Goal`): designs are kept where the members agree, away from regions the
models have never seen, whose predictions they would otherwise exploit.

Each design is one *lineage*: a start (random, or one of the given sequences) improved step by
step; a lineage only ever holds feasible inserts within ``max_edits`` of its start. The designs
returned are the lineages' final inserts, best first, at least ``min_distance`` substitutions
apart (:func:`pick_diverse`).

- **greedy**: each step, every substitution of a lineage is rated by the gradient of the score
  with respect to the bases (a first-order in-silico mutagenesis through every member), the
  ``candidates`` best-rated feasible ones are predicted exactly, and the best is taken if it
  improves the score; where none does, the next step predicts twice as many of the next-rated
  ones, up to every substitution, before the lineage stops, so a design ends only where no
  single substitution improves it; without a gradient every substitution is predicted each step.
- **evolve**: each generation, every lineage makes a child (uniform crossover with a partner
  from a tournament of two, then on average ``mutation_rate`` random substitutions), which
  replaces it when it scores at least as well.

tangermeme's ``greedy_substitution`` designs one sequence per call through one model output,
with no hook for constraints, an edit budget or an ensemble's sd, so these loops are written
here, batched over lineages; the gradient comes through tangermeme's view of the model
(:class:`~promoterlab.interpret.wrapper.OneHotExpression`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from promoterlab.design.constraints import Checker, random_inserts, repair, required_positions

ALGORITHMS = ("greedy", "evolve")


@dataclass(frozen=True)
class Goal:
    """``max``, ``min`` or a target expression value."""

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Goal":
        """``"max"``, ``"min"`` or a number.

        Raises
        ------
        ValueError
            For anything else.
        """
        text = str(text).strip().lower()
        if text in ("max", "min"):
            return cls(text)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"goal must be max, min or a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"goal must be max, min or a finite number, got {text!r}")
        return cls("value", value)

    def fitness(self, mean):
        """How good a predicted mean is (higher is better): works on numpy arrays and tensors."""
        if self.kind == "max":
            return mean
        if self.kind == "min":
            return -mean
        return -abs(mean - self.value)

    def score(self, mean, sd, penalty: float):
        """``fitness(mean) - penalty * sd``."""
        return self.fitness(mean) - penalty * sd

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.value:g}"


class Oracle(Protocol):
    """What the search asks of a model: mean and sd of inserts, and optionally the gradient of a
    score ``f(mean, sd)`` with respect to their one-hot bases, ``(n, 4, L)``."""

    def predict(self, inserts: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    gradient: Callable | None


@dataclass
class Settings:
    """How to search (see the module docstring)."""

    goal: Goal
    penalty: float = 1.0
    algorithm: str = "greedy"
    steps: int = 40
    candidates: int = 24
    mutation_rate: float = 1.5
    crossover: float = 0.5
    max_edits: int | None = None
    min_distance: int = 1
    tolerance: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if not (math.isfinite(self.penalty) and self.penalty >= 0):
            raise ValueError(f"penalty must be a number >= 0, got {self.penalty!r}")
        for name in ("steps", "candidates", "min_distance"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_edits is not None and self.max_edits < 0:
            raise ValueError(f"max_edits must be >= 0, got {self.max_edits}")


@dataclass
class Lineages:
    """The designs under way: current inserts, their starts and frozen positions, and predictions."""

    codes: np.ndarray
    start: np.ndarray
    frozen: np.ndarray
    start_id: np.ndarray
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def edits(self) -> np.ndarray:
        return (self.codes != self.start).sum(axis=1)

    def take(self, index: np.ndarray) -> "Lineages":
        return Lineages(*(getattr(self, name)[index] for name in
                          ("codes", "start", "frozen", "start_id", "mean", "sd", "score")))


@dataclass
class DesignResult:
    """The designs (best first) and the search's trace: one row per step or generation."""

    lineages: Lineages
    history: list[dict]
    dropped_starts: int = 0
    evaluations: int = 0


def initial_lineages(n: int, checker: Checker, settings: Settings, rng: np.random.Generator,
                     starts: np.ndarray | None = None) -> tuple[Lineages, int]:
    """``n`` feasible starting lineages: random inserts, or the given starts in turn (copies after
    the first of each start get a few random substitutions, so that they explore apart).
    Returns them and the number of lineages dropped because no feasible start could be made."""
    if starts is None:
        codes, frozen = random_inserts(n, checker, rng)
        return Lineages(codes, codes.copy(), frozen, np.full(len(codes), -1)), n - len(codes)
    starts = np.asarray(starts, dtype=np.uint8)
    which = np.arange(n) % len(starts)
    start, frozen = starts[which], required_positions(starts, checker)[which]
    codes = start.copy()
    shake = min(3, settings.max_edits // 2) if settings.max_edits is not None else 3
    for i in np.flatnonzero(np.arange(n) >= len(starts)):
        free = np.flatnonzero(~frozen[i])
        for position in rng.choice(free, size=min(shake, len(free)), replace=False):
            codes[i, position] = (codes[i, position] + rng.integers(1, 4)) % 4
    codes = repair(codes, checker, ~frozen, rng, start, settings.max_edits)
    ok = checker.feasible(codes)
    return Lineages(codes[ok], start[ok], frozen[ok], which[ok]), int((~ok).sum())


def evaluate(lineages: Lineages, oracle: Oracle, settings: Settings) -> None:
    lineages.mean, lineages.sd = oracle.predict(lineages.codes)
    lineages.score = settings.goal.score(lineages.mean, lineages.sd, settings.penalty)


def _trace(history: list[dict], step: int, lineages: Lineages, evaluations: int) -> None:
    history.append({"iteration": step, "best_score": float(np.max(lineages.score)),
                    "median_score": float(np.median(lineages.score)), "mean_prediction": float(np.mean(lineages.mean)),
                    "mean_sd": float(np.mean(lineages.sd)), "evaluations": evaluations})


def _allowed(lineages: Lineages, max_edits: int | None) -> np.ndarray:
    """``(n, 4, L)``: substitutions a lineage may make (not its base, not frozen, within the edit budget)."""
    codes, start = lineages.codes, lineages.start
    bases = np.arange(4)[None, :, None]
    allowed = (bases != codes[:, None, :]) & ~lineages.frozen[:, None, :]
    if max_edits is not None:
        edits = lineages.edits[:, None, None]
        after = edits - (codes != start)[:, None, :] + (bases != start[:, None, :])
        allowed &= after <= max_edits
    return allowed


def greedy_step(lineages: Lineages, active: np.ndarray, tried: np.ndarray, oracle: Oracle, checker: Checker,
                settings: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One greedy step for the ``active`` lineages (in place).

    ``tried`` holds, per active lineage, how many of its best-rated substitutions were already
    predicted without improving it; this step predicts the next ``max(candidates, tried)`` of
    them (so a stalled lineage looks twice as far each step, up to every substitution: the
    gradient is a first-order guess, and a design should end only where no single substitution
    improves it). Returns which lineages improved, which have no substitution left to try, the
    ``tried`` of the next step, and how many sequences were predicted."""
    part = lineages.take(active)
    allowed = _allowed(part, settings.max_edits).reshape(len(part), -1)
    n, length = part.codes.shape
    available = allowed.sum(axis=1)
    if oracle.gradient is None or settings.candidates >= 3 * length:
        order, keep = _every(allowed)
        improved, used = _substitute(lineages, active, part, order, keep, oracle, checker, settings)
        return improved, ~improved, np.zeros_like(tried), used

    def score(mean, sd):
        return settings.goal.score(mean, sd, settings.penalty)

    grad = oracle.gradient(part.codes, score)
    current = np.take_along_axis(grad, part.codes[:, None, :].astype(np.int64), axis=1)
    rating = np.where(allowed, (grad - current).reshape(n, -1), -np.inf)
    order = np.argsort(-rating, axis=1, kind="stable")
    slot = np.arange(order.shape[1])[None, :]
    end = tried + np.maximum(settings.candidates, tried)
    keep = (slot >= tried[:, None]) & (slot < end[:, None]) & np.take_along_axis(allowed, order, axis=1)
    improved, used = _substitute(lineages, active, part, order, keep, oracle, checker, settings)
    return improved, ~improved & (end >= available), np.where(improved, 0, end), used


def _every(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``order, keep`` that list every allowed substitution of each lineage (``allowed``: ``(n, 4 L)``)."""
    order = np.argsort(~allowed, axis=1, kind="stable")
    return order, np.take_along_axis(allowed, order, axis=1)


def _substitute(lineages: Lineages, active: np.ndarray, part: Lineages, order: np.ndarray, keep: np.ndarray,
                oracle: Oracle, checker: Checker, settings: Settings) -> tuple[np.ndarray, int]:
    """Predict the substitutions ``order[keep]`` (flat ``base * L + position``) of each lineage in
    ``part`` and take each lineage's best where it improves the score (in place in ``lineages``)."""
    n, length = part.codes.shape
    rows, slots = np.nonzero(keep)
    base, position = np.divmod(order[rows, slots], length)
    trial = part.codes[rows].copy()
    trial[np.arange(len(rows)), position] = base
    ok = checker.feasible(trial) if len(trial) else np.zeros(0, bool)
    rows, trial = rows[ok], trial[ok]
    improved = np.zeros(n, dtype=bool)
    if not len(trial):
        return improved, 0
    mean, sd = oracle.predict(trial)
    score = settings.goal.score(mean, sd, settings.penalty)
    best = np.full(n, -np.inf)
    np.maximum.at(best, rows, score)
    for i in np.flatnonzero(best > part.score + settings.tolerance):
        j = np.flatnonzero((rows == i) & (score == best[i]))[0]
        target = active[i]
        lineages.codes[target], lineages.mean[target] = trial[j], mean[j]
        lineages.sd[target], lineages.score[target] = sd[j], score[j]
        improved[i] = True
    return improved, len(trial)


def evolve_step(lineages: Lineages, oracle: Oracle, checker: Checker, settings: Settings,
                rng: np.random.Generator) -> int:
    """One generation (in place); returns how many children were predicted."""
    n, length = lineages.codes.shape
    child = lineages.codes.copy()
    mutable = ~lineages.frozen
    if n > 1:
        a, b = rng.integers(0, n, n), rng.integers(0, n, n)
        partner = np.where(lineages.score[a] >= lineages.score[b], a, b)
        cross = (rng.random(n) < settings.crossover) & (lineages.start_id == lineages.start_id[partner])
        cross &= partner != np.arange(n)
        mix = (rng.random((n, length)) < 0.5) & mutable & cross[:, None]
        child = np.where(mix, lineages.codes[partner], child)
    count = 1 + rng.poisson(max(settings.mutation_rate - 1, 0.0), n)
    for i in range(n):
        free = np.flatnonzero(mutable[i])
        for position in rng.choice(free, size=min(int(count[i]), len(free)), replace=False) if len(free) else []:
            child[i, position] = (child[i, position] + rng.integers(1, 4)) % 4
    if settings.max_edits is not None:
        for i in np.flatnonzero((child != lineages.start).sum(axis=1) > settings.max_edits):
            edited = np.flatnonzero(child[i] != lineages.start[i])
            back = rng.choice(edited, size=len(edited) - settings.max_edits, replace=False)
            child[i, back] = lineages.start[i, back]
    changed = (child != lineages.codes).any(axis=1) & checker.feasible(child)
    rows = np.flatnonzero(changed)
    if not len(rows):
        return 0
    mean, sd = oracle.predict(child[rows])
    score = settings.goal.score(mean, sd, settings.penalty)
    better = score >= lineages.score[rows]
    take = rows[better]
    lineages.codes[take], lineages.mean[take] = child[rows][better], mean[better]
    lineages.sd[take], lineages.score[take] = sd[better], score[better]
    return len(rows)


def pick_diverse(codes: np.ndarray, score: np.ndarray, n: int, min_distance: int = 1) -> np.ndarray:
    """Indices of up to ``n`` inserts, best score first, each at least ``min_distance``
    substitutions from every one picked before it."""
    chosen: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if len(chosen) == n:
            break
        if not chosen or (codes[chosen] != codes[i]).sum(axis=1).min() >= min_distance:
            chosen.append(int(i))
    return np.array(chosen, dtype=np.int64)


def optimise(oracle: Oracle, checker: Checker, settings: Settings, n: int, starts: np.ndarray | None = None,
             population: int | None = None, progress: Callable[[dict], None] | None = None) -> DesignResult:
    """Design up to ``n`` inserts (see the module docstring).

    Parameters
    ----------
    oracle : Oracle
        The model: mean and sd of inserts (and a gradient for the guided greedy search).
    checker : Checker
        The design space and constraints.
    settings : Settings
        Goal, penalty, algorithm and its knobs, edit budget, minimum distance, seed.
    n : int
        Designs wanted.
    starts : numpy.ndarray, optional
        ``(m, L)`` insert codes to start from (default: random feasible inserts).
    population : int, optional
        Lineages searched (default ``n``, or ``2 n`` when ``min_distance`` > 1 so that enough
        distinct designs remain).
    progress : callable, optional
        Called with each row of the history.

    Returns
    -------
    DesignResult
        Fewer than ``n`` designs only when starts could not be made feasible or lineages ended
        closer than ``min_distance``.
    """
    rng = np.random.default_rng(settings.seed)
    size = population or (n if settings.min_distance <= 1 else 2 * n)
    lineages, dropped = initial_lineages(max(size, n), checker, settings, rng, starts)
    history: list[dict] = []
    if not len(lineages):
        return DesignResult(lineages, history, dropped)
    evaluate(lineages, oracle, settings)
    evaluations = len(lineages)
    _trace(history, 0, lineages, evaluations)
    active = np.arange(len(lineages))
    tried = np.zeros(len(lineages), dtype=np.int64)
    for step in range(1, settings.steps + 1):
        if settings.algorithm == "greedy":
            improved, exhausted, tried[active], used = greedy_step(lineages, active, tried[active], oracle, checker,
                                                                   settings)
            active = active[~exhausted]
        else:
            used = evolve_step(lineages, oracle, checker, settings, rng)
        evaluations += used
        _trace(history, step, lineages, evaluations)
        if progress is not None:
            progress(history[-1])
        if settings.algorithm == "greedy" and not len(active):
            break
    picked = pick_diverse(lineages.codes, lineages.score, n, settings.min_distance)
    return DesignResult(lineages.take(picked), history, dropped, evaluations)
