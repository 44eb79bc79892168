"""Design: constraints always hold, the edit budget is kept, a toy model's known optimum is found,
and the command writes designs, their intervals and the objective plot."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import assert_error, invoke
from promoterlab.config import DataConfig, RunConfig
from promoterlab.design.constraints import Checker, Constraints, DesignSpace, IUPAC, to_codes, to_strings
from promoterlab.design.optimize import Goal, Settings, optimise
from promoterlab.models import build_model, model_config
from promoterlab.runs import save_model

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def site_regex(site: str) -> str:
    return "".join(f"[{IUPAC[letter]}]" for letter in site)


def satisfies(seq: str, space: DesignSpace, constraints: Constraints) -> bool:
    """An independent check of one insert, on strings: what a lab would check before ordering it."""
    left, right = space.left, space.right
    full, lo, hi = left + seq + right, len(left), len(left) + len(seq)
    gc = sum(b in "GC" for b in seq) / len(seq)
    if not constraints.gc[0] - 1e-9 <= gc <= constraints.gc[1] + 1e-9:
        return False
    for site in constraints.forbidden:
        for pattern in (site, site.translate(str.maketrans("ACGTRYKMBDHV", "TGCAYRMKVHDB"))[::-1]):
            for match in re.finditer(f"(?={site_regex(pattern)})", full):
                if match.start() < hi and match.start() + len(pattern) > lo:
                    return False
    if constraints.max_homopolymer is not None:
        for match in re.finditer(r"(A+|C+|G+|T+)", full):
            if len(match.group()) > constraints.max_homopolymer and match.start() < hi and match.end() > lo:
                return False
    return all(re.search(site_regex(motif), seq) for motif in constraints.required)


class LinearOracle:
    """A random position weight matrix summed over the insert: smooth, with an exact gradient."""

    def __init__(self, length: int, seed: int = 0, n_models: int = 1):
        self.weights = np.random.default_rng(seed).normal(size=(n_models, 4, length))

    def predict(self, inserts):
        onehot = np.eye(4)[inserts].transpose(0, 2, 1)
        values = np.einsum("nbl,kbl->kn", onehot, self.weights)
        return values.mean(axis=0), values.std(axis=0)

    def gradient(self, inserts, score):
        onehot = torch.tensor(np.eye(4)[inserts].transpose(0, 2, 1), requires_grad=True)
        values = torch.einsum("nbl,kbl->kn", onehot, torch.tensor(self.weights))
        score(values.mean(0), values.std(0, unbiased=False)).sum().backward()
        return onehot.grad.numpy()


class MotifOracle:
    """A toy model whose optimum is known: the most bases of ``motif`` matched by any window
    (the motif's length, once it occurs). Its gradient marks the bases that would extend the
    best window, as a real model's gradient points along its best substitutions."""

    def __init__(self, motif: str, with_gradient: bool = True):
        self.motif = to_codes([motif])[0]
        self.gradient = self._gradient if with_gradient else None

    def matches(self, inserts):
        m = len(self.motif)
        windows = np.lib.stride_tricks.sliding_window_view(inserts, m, axis=1)
        return (windows == self.motif).sum(axis=-1)

    def predict(self, inserts):
        return self.matches(inserts).max(axis=1).astype(float), np.zeros(len(inserts))

    def _gradient(self, inserts, score):
        grad = np.zeros((len(inserts), 4, inserts.shape[1]))
        best = self.matches(inserts).argmax(axis=1)
        for i, start in enumerate(best):
            grad[i, self.motif, start + np.arange(len(self.motif))] = 1.0
        return grad


def random_constraints(rng: np.random.Generator) -> Constraints:
    low = float(rng.uniform(0.2, 0.5))
    sites = ["".join(rng.choice(list("ACGTRYSW"), size=int(rng.integers(4, 7)))) for _ in range(rng.integers(0, 4))]
    required = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(3, 6))))] if rng.random() < 0.5 else []
    required = [m for m in required if not any(re.search(site_regex(s), m) or re.search(site_regex(s), m.translate(
        COMPLEMENT)[::-1]) for s in sites)]
    homopolymer = int(rng.integers(3, 7)) if rng.random() < 0.7 else None
    return Constraints((low, low + float(rng.uniform(0.15, 0.4))), tuple(sites), homopolymer, tuple(required))


def test_checker_agrees_with_a_check_on_strings():
    rng = np.random.default_rng(11)
    space = DesignSpace("TTTTTGCAT", "GGGGTACC", 24)
    verdicts = []
    for _ in range(20):
        constraints = random_constraints(rng)
        checker = Checker(space, constraints) if constraints.gc[1] * 24 >= np.ceil(constraints.gc[0] * 24) else None
        if checker is None:
            continue
        codes = rng.integers(0, 4, (100, 24)).astype(np.uint8)
        expected = [satisfies(seq, space, constraints) for seq in to_strings(codes)]
        assert checker.feasible(codes).tolist() == expected
        verdicts += expected
    assert 0 < sum(verdicts) < len(verdicts)  # both verdicts occur


@pytest.mark.parametrize("algorithm", ["greedy", "evolve"])
def test_returned_designs_satisfy_random_constraint_sets(algorithm):
    rng = np.random.default_rng(7)
    space = DesignSpace("TTTTTGCAT", "GGGGTACC", 24)
    checked = 0
    for trial in range(25):
        constraints = random_constraints(rng)
        try:
            checker = Checker(space, constraints)
        except ValueError:
            continue
        goal = [Goal("max"), Goal("min"), Goal("value", 0.5)][trial % 3]
        settings = Settings(goal, penalty=0.5, algorithm=algorithm, steps=6, candidates=8, seed=trial)
        result = optimise(LinearOracle(space.length, trial, n_models=3), checker, settings, n=6)
        for insert in to_strings(result.lineages.codes):
            assert satisfies(insert, space, constraints), (trial, constraints, insert)
            checked += 1
    assert checked >= 60  # most sets are feasible: the property was exercised


@pytest.mark.parametrize("algorithm", ["greedy", "evolve"])
def test_max_edits_is_respected_and_frozen_motifs_kept(algorithm):
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 4, (3, 30)).astype(np.uint8)
    starts[:, 5:11] = to_codes(["TATAAA"])[0]
    space = DesignSpace("", "", 30)
    checker = Checker(space, Constraints(required=("TATAAA",)))
    for budget in (0, 2, 5):
        settings = Settings(Goal("max"), algorithm=algorithm, steps=15, max_edits=budget, seed=budget)
        result = optimise(LinearOracle(30, budget), checker, settings, n=9, starts=starts)
        lineages = result.lineages
        assert len(lineages) >= 3
        distance = (lineages.codes != starts[lineages.start_id]).sum(axis=1)
        assert (distance <= budget).all() and (distance == lineages.edits).all()
        assert (lineages.codes[:, 5:11] == starts[lineages.start_id][:, 5:11]).all()
        if budget:
            assert distance.max() == budget  # the linear model always gains from more edits


@pytest.mark.parametrize("algorithm,gradient", [("greedy", True), ("greedy", False), ("evolve", False)])
def test_design_finds_the_known_optimum_of_a_motif_counting_model(algorithm, gradient):
    oracle = MotifOracle("TTACCCG", with_gradient=gradient)
    checker = Checker(DesignSpace("", "", 20), Constraints())
    settings = Settings(Goal("max"), algorithm=algorithm, steps=30 if algorithm == "greedy" else 300, candidates=4,
                        seed=1)
    result = optimise(oracle, checker, settings, n=4)
    assert (result.lineages.mean == 7).all()
    assert all("TTACCCG" in s for s in to_strings(result.lineages.codes))
    history = pd.DataFrame(result.history)
    assert history["best_score"].is_monotonic_increasing and history["best_score"].iloc[-1] == 7
    # A target value is met exactly.
    settings = Settings(Goal("value", 4.0), algorithm=algorithm, steps=settings.steps, candidates=4, seed=2)
    assert (optimise(oracle, checker, settings, n=4).lineages.mean == 4).all()


class MisledOracle(MotifOracle):
    """The motif model with a gradient that points nowhere useful (noise): what a first-order
    guess can be at a sharp optimum."""

    def _gradient(self, inserts, score):
        return np.random.default_rng(len(inserts)).normal(size=(len(inserts), 4, inserts.shape[1]))


def test_greedy_reaches_the_optimum_when_the_gradient_misleads():
    """A lineage whose gradient-rated candidates fail looks further down the ratings, up to every
    substitution, before it stops, so the guided search still ends at the optimum, and only
    where none improves."""
    checker = Checker(DesignSpace("", "", 20), Constraints())
    settings = Settings(Goal("max"), algorithm="greedy", steps=100, candidates=2, seed=3)
    result = optimise(MisledOracle("TTACCCG"), checker, settings, n=4)
    assert (result.lineages.mean == 7).all()
    assert all("TTACCCG" in s for s in to_strings(result.lineages.codes))
    assert result.evaluations > 4 * 2 * 7  # the full tries were made, not only 2 candidates a step
    assert len(result.history) - 1 < settings.steps  # and every lineage stopped at its optimum


def test_designs_are_apart_and_bad_settings_refused():
    checker = Checker(DesignSpace("", "", 20), Constraints())
    settings = Settings(Goal("max"), algorithm="evolve", steps=5, min_distance=6)
    result = optimise(LinearOracle(20), checker, settings, n=5)
    codes = result.lineages.codes
    assert len(codes) == 5
    assert min((codes[i] != codes[j]).sum() for i in range(5) for j in range(i)) >= 6
    with pytest.raises(ValueError, match="algorithm"):
        Settings(Goal("max"), algorithm="anneal")
    with pytest.raises(ValueError, match="goal must be max, min or a number"):
        Goal.parse("highest")
    with pytest.raises(ValueError, match="GC fraction in 0.51-0.52"):
        Checker(DesignSpace("", "", 20), Constraints(gc=(0.51, 0.52)))
    with pytest.raises(ValueError, match="IUPAC"):
        Constraints(forbidden=("GAXTC",))


@pytest.fixture(scope="module")
def untrained_ensemble(tmp_path_factory):
    """Two untrained tiny LegNets (they disagree, so the ensemble has an sd), without calibration."""
    root = tmp_path_factory.mktemp("design_runs")
    for seed in range(2):
        config = RunConfig(data=DataConfig(), model=model_config("legnet", width=0.125), seed=seed)
        torch.manual_seed(seed)
        (root / f"seed={seed}").mkdir()
        save_model(build_model(config.model, 18), config, root / f"seed={seed}")
    return root


def test_design_command_from_starts(untrained_ensemble, tmp_path):
    rng = np.random.default_rng(0)
    starts = tmp_path / "starts.fa"
    starts.write_text("".join(f">p{i}\nTGCATTTTTTTCACATC{''.join(rng.choice(list('ACGT'), 80))}GGTTACGGCTGTT\n"
                              for i in range(2)))
    out = tmp_path / "designs.tsv"
    result = invoke("design", untrained_ensemble, "--goal", "max", "--start", starts, "--max-edits", "4", "--n", "4",
                    "--steps", "3", "--gc", "0.2,0.8", "--forbid", "GGTCTC,GAATTC", "--max-homopolymer", "8",
                    "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["designs"] == 4 and summary["plot"] == str(tmp_path / "designs.png")
    assert (tmp_path / "designs.png").stat().st_size > 0
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(table.columns[:6]) == ["id", "seq", "insert", "prediction", "sd", "score"]
    assert "lower" not in table  # no calibration in these runs: said in a note instead
    assert "no interval" in result.stderr
    assert set(table["start"]) <= {"p0", "p1"} and (table["edits"] <= 4).all()
    assert table["seq"].str.startswith("TGCATTTTTTTCACATC").all() and table["seq"].str.endswith("GGTTACGGCTGTT").all()
    assert (table["insert"].str.len() == 80).all()
    constraints = Constraints((0.2, 0.8), ("GGTCTC", "GAATTC"), 8)
    space = DesignSpace("TGCATTTTTTTCACATC", "GGTTACGGCTGTT", 80)
    assert all(satisfies(s, space, constraints) for s in table["insert"])
    np.testing.assert_allclose(table["score"], table["prediction"] - table["sd"], atol=1e-4)  # penalty 1


def test_design_command_refuses_bad_options(untrained_ensemble, tmp_path):
    out = tmp_path / "d.tsv"
    assert_error(invoke("design", untrained_ensemble, "--goal", "max", "--max-edits", "2", "-o", out), "--start")
    assert_error(invoke("design", untrained_ensemble, "--goal", "up", "-o", out), "--goal", "max, min or a number")
    assert_error(invoke("design", untrained_ensemble, "--goal", "max", "--gc", "0.7,0.2", "-o", out), "--gc")
    assert_error(invoke("design", untrained_ensemble, "--goal", "max", "--forbid", "GAQTC", "-o", out), "--forbid")
    assert_error(invoke("design", untrained_ensemble, "--goal", "max", "--gc", "0.5,0.5", "--insert-length", "9",
                        "-o", out), "GC fraction")
    assert_error(invoke("design", untrained_ensemble, "--goal", "max", "--algorithm", "anneal", "-o", out),
                 "--algorithm")
    assert not out.exists()


def test_simulator_true_expression_is_the_noiseless_measurement():
    from promoterlab.data.simulate import LEFT_ADAPTER, RIGHT_ADAPTER, expected_measurement, latent_expression, \
        simulate_library, true_expression

    library = simulate_library(200, seed=3)
    truth = true_expression(list(library["seq"]))
    inserts = [s[len(LEFT_ADAPTER):-len(RIGHT_ADAPTER)] for s in library["seq"]]
    np.testing.assert_array_equal(true_expression(inserts), truth)  # with or without the adapters
    np.testing.assert_allclose(truth, expected_measurement(library["latent"].to_numpy()))
    assert latent_expression(inserts[0]) == library["latent"].iloc[0]
    # The mean of many simulated reads, and the latent level away from the ends of the scale.
    rng = np.random.default_rng(0)
    for level in (0.4, 6.3, 16.8):
        reads = np.clip(np.round(level + rng.normal(0, 1, 400_000)), 0, 17)
        assert expected_measurement(np.array([level]))[0] == pytest.approx(reads.mean(), abs=0.01)
    assert expected_measurement(np.array([7.25]))[0] == pytest.approx(7.25, abs=1e-6)
    assert np.corrcoef(truth, library["expr"])[0, 1] > 0.9
    with pytest.raises(ValueError, match="sequence 2: expected an 80 bp insert"):
        true_expression([inserts[0], "ACGT"])


def test_design_space_comes_from_the_run_and_starts_share_one_length(untrained_ensemble, tmp_path):
    from promoterlab.data.readers import DataError
    from promoterlab.design.files import default_space, read_starts
    from promoterlab.runs import Run

    dream = default_space(Run.open(untrained_ensemble))  # no training file: DREAM's flanks
    assert (dream.left, dream.right, dream.length) == ("TGCATTTTTTTCACATC", "GGTTACGGCTGTT", 80)
    rng = np.random.default_rng(0)
    left, right = "AACTGCATTTTTTTCACATC", "GGTTACGGCTGTTTCTTAAT"
    table = tmp_path / "native.tsv"
    table.write_text("seq\texpr\n" + "".join(f"{left}{''.join(rng.choice(list('ACGT'), 80))}{right}\t{i % 17}\n"
                                             for i in range(50)))
    config = RunConfig(data=DataConfig(path=str(table), left_adapter=left), model=model_config("legnet", width=0.125))
    save_model(build_model(config.model, 18), config, tmp_path)
    native = default_space(Run.open(tmp_path))
    assert (native.left, native.right, native.length) == (left, right, 80)
    assert default_space(Run.open(tmp_path), right_flank="", insert_length=60).length == 60
    starts = tmp_path / "starts.txt"
    starts.write_text(f"{left}{'A' * 70}{right}\t1\n{'C' * 70}\t2\n")
    ids, codes, space = read_starts(starts, native)
    assert ids == ["0", "1"] and codes.shape == (2, 70) and space.length == 70 and (codes[1] == 1).all()
    starts.write_text(f"{'A' * 70}\t1\n{'C' * 71}\t2\n")
    with pytest.raises(DataError, match=r"starts.txt:2: insert of 71 bp where the first start's is 70"):
        read_starts(starts, native)
