"""Selection: the requested number, no duplicates, deterministic under a seed; what each strategy
prefers; the command over a pool file."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from conftest import assert_error, invoke
from promoterlab.design.optimize import Goal
from promoterlab.design.select import STRATEGIES, expected_improvement, select
from test_design import untrained_ensemble  # noqa: F401  (a fixture)


def pool(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(8, 2, n), rng.uniform(0.05, 1.0, n), rng.normal(size=(n, 5))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_the_requested_number_without_duplicates(strategy):
    mean, sd, embedding = pool()
    for n in (1, 37, 300):
        chosen, score = select(strategy, n, mean, sd, embedding, Goal("max"), seed=4)
        assert len(chosen) == n == len(set(chosen.tolist())) == len(score)
        again, _ = select(strategy, n, mean, sd, embedding, Goal("max"), seed=4)
        assert (again == chosen).all()
    with pytest.raises(ValueError, match="cannot choose 301 of a pool of 300"):
        select(strategy, 301, mean, sd, embedding, Goal("max"))


def test_strategies_prefer_what_they_say():
    mean, sd, embedding = pool()
    chosen, _ = select("uncertainty", 10, mean, sd)
    assert set(chosen) == set(np.argsort(-sd)[:10])
    one, _ = select("random", 50, mean, sd, seed=1)
    other, _ = select("random", 50, mean, sd, seed=2)
    assert set(one) != set(other)
    # Two tight clusters, the uncertain one small: diverse-uncertainty takes from both.
    rng = np.random.default_rng(0)
    embedding = np.concatenate([rng.normal(0, 0.01, (100, 2)), rng.normal(10, 0.01, (100, 2))])
    sd = np.concatenate([np.full(100, 1.0), np.full(100, 0.8)])
    chosen, _ = select("diverse-uncertainty", 2, np.zeros(200), sd, embedding)
    assert chosen[0] < 100 <= chosen[1]
    assert set(select("uncertainty", 2, np.zeros(200), sd)[0]) < set(range(100))
    # One model has no disagreement: ranking by a zero sd would return pool order, so it is refused.
    for strategy in ("uncertainty", "diverse-uncertainty"):
        with pytest.raises(ValueError, match="every sd is 0.*ensemble"):
            select(strategy, 2, np.zeros(200), np.zeros(200), embedding)
    # Goal: a sure candidate just below the incumbent loses to an uncertain one a little lower.
    chosen, gain = select("goal", 1, np.array([9.9, 9.0]), np.array([0.01, 2.0]), goal=Goal("max"), incumbent=10.0)
    assert chosen.tolist() == [1] and gain[0] > 0
    chosen, _ = select("goal", 2, np.array([3.0, 6.0, 5.2]), np.zeros(3), goal=Goal("value", 5.0), incumbent=7.0)
    assert chosen.tolist() == [2, 1]


def test_expected_improvement_matches_the_closed_form():
    mean, sd = np.array([8.0, 10.0, 12.0]), np.array([1.0, 0.5, 2.0])
    best = 10.0
    z = (mean - best) / sd
    exact = (mean - best) * norm.cdf(z) + sd * norm.pdf(z)
    np.testing.assert_allclose(expected_improvement(mean, sd, Goal("max"), best), exact, rtol=1e-9)
    np.testing.assert_allclose(expected_improvement(-mean, sd, Goal("min"), best), exact, rtol=1e-9)
    # A target: the tent max(0, d - |Y - t|) integrated numerically.
    y = np.linspace(-20, 40, 600_001)
    for m, s in zip(mean, sd):
        tent = np.clip(1.5 - np.abs(y - 11.0), 0, None) * norm.pdf(y, m, s)
        numeric = tent.sum() * (y[1] - y[0])
        assert expected_improvement(np.array([m]), np.array([s]), Goal("value", 11.0), -1.5)[0] == \
            pytest.approx(numeric, rel=1e-4, abs=1e-7)
    assert expected_improvement(np.array([10.0, 12.5]), np.zeros(2), Goal("value", 11.0), -1.5).tolist() == [0.5, 0.0]


def test_select_command_deduplicates_and_is_deterministic(untrained_ensemble, tmp_path):  # noqa: F811
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 80)) for _ in range(30)]
    path = tmp_path / "pool.tsv"
    pd.DataFrame({"name": [f"c{i}" for i in range(33)], "seq": seqs + seqs[:3]}).to_csv(path, sep="\t", index=False)
    tables = {}
    for strategy in STRATEGIES:
        out = tmp_path / f"{strategy}.tsv"
        result = invoke("select", untrained_ensemble, path, "--n", "30", "--strategy", strategy, "--goal", "max",
                        "--id-col", "name", "-o", out, "--seed", "3")
        assert result.exit_code == 0, result.output
        table = pd.read_csv(out, sep="\t")
        assert len(table) == 30 and table["seq"].is_unique and set(table["id"]) == {f"c{i}" for i in range(30)}
        assert list(table.columns) == ["rank", "id", "seq", "prediction", "sd", "score"]
        tables[strategy] = table
    again = invoke("select", untrained_ensemble, path, "--n", "5", "--strategy", "random", "--seed", "3", "-o", "-",
                   "--quiet")
    assert again.exit_code == 0 and len(pd.read_csv(io.StringIO(again.stdout), sep="\t")) == 5
    first = invoke("select", untrained_ensemble, path, "--n", "5", "--strategy", "random", "--seed", "3",
                   "-o", tmp_path / "a.tsv", "--json")
    second = invoke("select", untrained_ensemble, path, "--n", "5", "--strategy", "random", "--seed", "3",
                    "-o", tmp_path / "b.tsv")
    assert json.loads(first.stdout)["chosen"] == 5 and second.exit_code == 0
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()
    assert_error(invoke("select", untrained_ensemble, path, "--n", "31", "-o", tmp_path / "c.tsv"),
                 "cannot choose 31 of a pool of 30")
    assert_error(invoke("select", untrained_ensemble, path, "--n", "3", "--strategy", "goal", "-o",
                        tmp_path / "c.tsv"), "--goal")
    assert not (tmp_path / "c.tsv").exists()
