"""Which candidates to measure next: rank a pool by what the next model would learn from them.

Strategies (:func:`select`), each returning ``n`` distinct pool indices in the order chosen:

- ``random``: a uniform draw (the control), seeded;
- ``uncertainty``: the largest ensemble disagreement (sd) first;
- ``diverse-uncertainty``: a batch that is uncertain *and* spread out: greedily, the candidate
  whose sd times its distance to the nearest one already chosen is largest (distances in the
  model's embedding space, each dimension standardised over the pool; the first pick is the
  most uncertain, scored by its sd);
- ``goal``: expected improvement toward a design goal over the best measured so far
  (``incumbent``), with the prediction taken as Normal(mean, sd): ``E[max(0, f(Y) − f*)]`` for
  the goal's fitness ``f`` (:class:`~promoterlab.design.optimize.Goal`), in closed form; ties
  (e.g. all 0 for one model) go to the better mean.

Every strategy but ``random`` is deterministic; ties are broken by pool order.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from promoterlab.design.optimize import Goal

STRATEGIES = ("uncertainty", "diverse-uncertainty", "random", "goal")
DISTANCE_CHUNK = 8192


def _above(mean: np.ndarray, sd: np.ndarray, level: float) -> np.ndarray:
    """``E[max(0, Y - level)]`` for ``Y ~ Normal(mean, sd)`` (``sd`` 0: ``max(0, mean - level)``)."""
    gap = mean - level
    with np.errstate(divide="ignore", invalid="ignore"):
        z = gap / sd
        smooth = gap * norm.cdf(z) + sd * norm.pdf(z)
    return np.where(sd > 0, smooth, np.clip(gap, 0.0, None))


def expected_improvement(mean: np.ndarray, sd: np.ndarray, goal: Goal, incumbent: float) -> np.ndarray:
    """``E[max(0, fitness(Y) - incumbent)]`` for ``Y ~ Normal(mean, sd)``, in closed form;
    ``incumbent`` is in fitness units (``goal.fitness`` of the best measured value).

    For a target value ``t`` the gain ``max(0, d - |Y - t|)`` (``d = -incumbent``, the best
    distance so far) is a tent of ramps: ``R(t - d) - 2 R(t) + R(t + d)`` with ``R(a) = E[max(0, Y - a)]``.
    """
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    if goal.kind == "max":
        return _above(mean, sd, incumbent)
    if goal.kind == "min":  # E[max(0, -incumbent - Y)] = R(c) - (mean - c) with c = -incumbent
        level = -incumbent
        return _above(mean, sd, level) - (mean - level)
    reach = max(-incumbent, 0.0)
    return np.clip(_above(mean, sd, goal.value - reach) - 2 * _above(mean, sd, goal.value)
                   + _above(mean, sd, goal.value + reach), 0.0, None)


def diverse_uncertain(sd: np.ndarray, embedding: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy max–min selection weighted by sd; returns the indices and each pick's sd × distance."""
    x = np.asarray(embedding, dtype=np.float64)
    spread = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    x = x.astype(np.float32)
    sd = np.asarray(sd, dtype=np.float64)
    nearest = np.full(len(x), np.inf)
    chosen = [int(np.argmax(sd))]
    weights = [float(sd[chosen[0]])]  # the first pick has no nearest neighbour: its score is its sd
    taken = np.zeros(len(x), dtype=bool)
    taken[chosen[0]] = True
    for _ in range(n - 1):
        last = x[chosen[-1]]
        for begin in range(0, len(x), DISTANCE_CHUNK):
            part = x[begin:begin + DISTANCE_CHUNK]
            distance = np.sqrt(((part - last) ** 2).sum(axis=1, dtype=np.float64))
            np.minimum(nearest[begin:begin + DISTANCE_CHUNK], distance, out=nearest[begin:begin + DISTANCE_CHUNK])
        weight = np.where(taken, -np.inf, sd * nearest)
        pick = int(np.argmax(weight))
        chosen.append(pick)
        weights.append(float(weight[pick]))
        taken[pick] = True
    return np.array(chosen, dtype=np.int64), np.array(weights)


def select(strategy: str, n: int, mean: np.ndarray, sd: np.ndarray, embedding: np.ndarray | None = None,
           goal: Goal | None = None, incumbent: float | None = None, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct indices into the pool, in the order chosen, and each one's strategy score.

    Parameters
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    n : int
        How many to choose (at most the pool's size).
    mean, sd : numpy.ndarray
        The pool's predicted means and ensemble sds.
    embedding : numpy.ndarray, optional
        ``(N, D)`` features, for ``diverse-uncertainty``.
    goal : Goal, optional
        For ``goal``.
    incumbent : float, optional
        The best measured expression so far (``goal``); default: the best predicted mean in the pool.
    seed : int
        Seed of ``random``.

    Raises
    ------
    ValueError
        An unknown strategy, ``n`` outside 1..N, a missing input the strategy needs, or an
        uncertainty strategy where every sd is 0 (one model: the ranking would be pool order).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    if not 1 <= n <= len(mean):
        raise ValueError(f"cannot choose {n} of a pool of {len(mean)} distinct sequences")
    if strategy == "random":
        chosen = np.random.default_rng(seed).choice(len(mean), size=n, replace=False)
        return chosen, np.full(n, np.nan)
    if strategy in ("uncertainty", "diverse-uncertainty") and not np.any(sd > 0):
        raise ValueError(f"{strategy} ranks by the models' disagreement, and every sd is 0 (one model has none): "
                         "use an ensemble (train with --ensemble 3), or the strategy random or goal")
    if strategy == "uncertainty":
        chosen = np.argsort(-sd, kind="stable")[:n]
        return chosen, sd[chosen]
    if strategy == "diverse-uncertainty":
        if embedding is None or len(embedding) != len(mean):
            raise ValueError("diverse-uncertainty needs an embedding of every candidate")
        return diverse_uncertain(sd, embedding, n)
    if goal is None:
        raise ValueError("strategy goal needs a goal (max, min or a value)")
    best = float(np.max(goal.fitness(mean))) if incumbent is None else float(goal.fitness(np.float64(incumbent)))
    gain = expected_improvement(mean, sd, goal, best)
    chosen = np.lexsort((np.arange(len(mean)), -goal.fitness(mean), -gain))[:n]
    return chosen, gain[chosen]
