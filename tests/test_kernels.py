"""Kernels chosen by measurement: every formulation computes the plain function, the choice is
the fastest by an injected clock, and the cache is keyed, reused, and rebuilt when corrupt."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from promoterlab.sequence import model_input
from promoterlab.models import build_model, model_config
from promoterlab.models.kernels import (BF16_KERNELS, FP32_KERNELS, PLAIN_KERNELS, Kernels, apply_kernels,
                                        default_kernels, kernel_candidates, kernels_of)
from promoterlab.models import autotune
from promoterlab.models.autotune import (CACHE_FILE, KERNELS_ENV, KernelChoice, apply_choice, cache_dir,
                                           choose_kernels, measure_rates, tuning_key)
from promoterlab.objective import Objective

MODELS = ["legnet", "legnet-dilated", "legnet-embed", "legnet-lstm", "legnet-transformer"]


@pytest.mark.parametrize("name", MODELS)
def test_every_candidate_computes_the_plain_function_and_gradients(name):
    torch.manual_seed(0)
    model = build_model(model_config(name, width=0.125), 18).double().train()
    x = model_input(torch.randint(0, 4, (6, 150), dtype=torch.uint8), False).double()
    y = torch.rand(6, dtype=torch.float64) * 17
    objective = Objective("kl", 18)

    def loss_and_grads(kernels: Kernels):
        apply_kernels(model, kernels)
        torch.manual_seed(1)  # the same dropout masks
        out = model(x)
        grads = torch.autograd.grad(objective.loss_value(out, y), list(model.parameters()))
        return out.detach(), grads

    plain_out, plain_grads = loss_and_grads(PLAIN_KERNELS)
    for kernels in {*kernel_candidates("32"), *kernel_candidates("bf16-mixed")}:
        out, grads = loss_and_grads(kernels)
        torch.testing.assert_close(out, plain_out, rtol=0, atol=1e-10, msg=kernels.label)
        for a, b in zip(grads, plain_grads):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10, msg=kernels.label)


def test_kernels_are_set_per_model_instance():
    model = build_model(model_config("legnet-dilated", width=0.125), 18)
    other = copy.deepcopy(model)
    apply_kernels(model, Kernels(block_channels=16, planar=False))
    assert kernels_of(model) == Kernels(16, False) and kernels_of(other) == BF16_KERNELS
    merged = {m.merged for m in model.modules() if hasattr(m, "merged")}
    assert merged == {8}  # 16 input channels of 2 per group; the dilated twins too
    assert kernels_of(copy.deepcopy(model)) == Kernels(16, False)  # copies (the budget probe) keep it
    apply_kernels(model, FP32_KERNELS)
    assert {m.merged for m in model.modules() if hasattr(m, "merged")} == {1}


def test_rule_and_candidates_per_precision():
    assert default_kernels("32") == FP32_KERNELS == Kernels(1, True)
    assert default_kernels("bf16-mixed") == default_kernels("bf16") == BF16_KERNELS == Kernels(32, True)
    for precision in ("32", "bf16-mixed"):
        candidates = kernel_candidates(precision)
        assert candidates[0] == default_kernels(precision) and len(set(candidates)) == len(candidates) == 5
    with pytest.raises(ValueError, match="block_channels must be an integer >= 1"):
        Kernels(block_channels=0)
    assert Kernels.from_dict(Kernels(16, False).to_dict()) == Kernels(16, False)
    assert Kernels(1, True).label == "planar/grouped" and Kernels(32, False).label == "3d/block32"


class FakeClock:
    """Seconds that pass only when a fake step says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_steps(clock: FakeClock, seconds: dict[str, float], calls: dict[str, int]):
    def make(label):
        def step():
            calls[label] = calls.get(label, 0) + 1
            clock.now += seconds[label]
        return step
    return {label: make(label) for label in seconds}


def test_measure_rates_interleaves_rounds_and_drops_the_slow():
    clock, calls = FakeClock(), {}
    steps = fake_steps(clock, {"a": 0.5, "b": 0.25, "c": 1.0}, calls)
    rates = measure_rates(steps, batch_size=100, rounds=3, warmup=1, clock=clock)
    assert rates == {"a": 200.0, "b": 400.0, "c": 100.0}
    # warm-up + round 1 for all; a (2x) and c (4x slower than b) are not timed again
    assert calls == {"a": 2, "b": 4, "c": 2}
    clock2, calls2 = FakeClock(), {}
    steps = fake_steps(clock2, {"a": 1.0, "b": 1.0, "c": 1.0}, calls2)
    rates = measure_rates(steps, batch_size=10, rounds=3, warmup=1, clock=clock2, max_seconds=1.5)
    assert set(rates) == {"a", "b"}
    assert "c" not in calls2  # time ran out during the warm-ups


@pytest.fixture
def fake_timing(monkeypatch, tmp_path):
    """choose_kernels with training steps whose duration is set per formulation label."""
    monkeypatch.setenv("PROMOTERLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(KERNELS_ENV, "auto")
    clock, calls = FakeClock(), {}
    seconds = {"planar/grouped": 1.0, "planar/block16": 0.6, "planar/block32": 0.8, "3d/grouped": 1.5,
               "3d/block32": 2.0}

    def steps(model, objective, batch_size, precision, candidates):
        labels = {autotune.candidate_label(k, t): k.label for k, t in candidates}
        made = fake_steps(clock, seconds, calls)
        return {label: made[kernel] for label, kernel in labels.items()}

    monkeypatch.setattr(autotune, "train_steps", steps)
    return clock, calls, seconds


def test_choice_is_the_fastest_and_is_cached(fake_timing, tmp_path):
    clock, calls, _ = fake_timing
    model = build_model(model_config("legnet", width=0.125), 18)
    choice = choose_kernels(model, "train", "32", 64, clock=clock)
    assert choice.source == "measured" and choice.kernels == Kernels(16, True)
    assert choice.rates[choice.label] == pytest.approx(64 / 0.6)
    assert choice.speedup_over_rule() == pytest.approx(1.0 / 0.6)
    path = tmp_path / "cache" / CACHE_FILE
    assert cache_dir() == tmp_path / "cache" and path.exists()
    before = dict(calls)
    again = choose_kernels(model, "train", "32", 64, clock=clock)
    assert again.source == "cache" and again.kernels == choice.kernels and calls == before  # nothing timed
    assert again.to_dict()["label"] == choice.label
    # another batch size, precision or ISA override is another key: measured again
    choose_kernels(model, "train", "32", 32, clock=clock)
    assert calls != before
    key = tuning_key(model, "train", "32", 64, torch.get_num_threads())
    assert key["config"]["width"] == 0.125 and key["batch_size"] == 64 and key["precision"] == "32"
    assert {"cpu", "isa", "capability", "torch", "env"} <= set(key)


def test_isa_override_is_part_of_the_key(fake_timing, monkeypatch):
    clock, calls, _ = fake_timing
    model = build_model(model_config("legnet", width=0.125), 18)
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):  # CI sets them: start without
        monkeypatch.delenv(name, raising=False)
    choose_kernels(model, "train", "32", 64, clock=clock)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert tuning_key(model, "train", "32", 64, 1)["env"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert choose_kernels(model, "train", "32", 64, clock=clock).source == "measured"


def test_corrupt_or_deleted_cache_is_measured_again(fake_timing, tmp_path):
    clock, _, _ = fake_timing
    model = build_model(model_config("legnet", width=0.125), 18)
    choose_kernels(model, "train", "32", 64, clock=clock)
    path = tmp_path / "cache" / CACHE_FILE
    path.write_text('{"version": 1, "entries": {"x": ')  # cut off mid-write
    choice = choose_kernels(model, "train", "32", 64, clock=clock)
    assert choice.source == "measured"
    assert json.loads(path.read_text())["version"] == 1  # rewritten whole
    path.unlink()
    assert choose_kernels(model, "train", "32", 64, clock=clock).source == "measured"
    assert choose_kernels(model, "train", "32", 64, clock=clock).source == "cache"


def test_a_choice_measured_on_a_busy_machine_is_measured_again_when_quiet(fake_timing, monkeypatch):
    clock, _, _ = fake_timing
    model = build_model(model_config("legnet", width=0.125), 18)
    monkeypatch.setattr(autotune, "load_per_core", lambda: 1.5)
    assert choose_kernels(model, "train", "32", 64, clock=clock).load == 1.5
    monkeypatch.setattr(autotune, "load_per_core", lambda: 0.8)  # still busy-ish: the cache is kept
    assert choose_kernels(model, "train", "32", 64, clock=clock).source == "cache"
    assert choose_kernels(model, "train", "32", 64, clock=clock, max_seconds=0).source == "cache"
    monkeypatch.setattr(autotune, "load_per_core", lambda: 0.1)  # quiet now
    again = choose_kernels(model, "train", "32", 64, clock=clock)
    assert again.source == "measured" and again.load == 0.1
    assert choose_kernels(model, "train", "32", 64, clock=clock).source == "cache"


def test_environment_selects_rule_or_a_formulation(fake_timing, monkeypatch):
    clock, calls, _ = fake_timing
    model = build_model(model_config("legnet", width=0.125), 18)
    monkeypatch.setenv(KERNELS_ENV, "rule")
    choice = choose_kernels(model, "train", "bf16-mixed", 64, clock=clock)
    assert choice.source == "rule" and choice.kernels == BF16_KERNELS and calls == {}
    monkeypatch.setenv(KERNELS_ENV, "3d/grouped")
    assert choose_kernels(model, "train", "32", 64, clock=clock).kernels == Kernels(1, False)
    monkeypatch.setenv(KERNELS_ENV, "fastest")
    with pytest.raises(ValueError, match=r"PROMOTERLAB_KERNELS must be auto, rule or one of planar/grouped"):
        choose_kernels(model, "train", "32", 64, clock=clock)


def test_out_of_time_keeps_the_best_so_far_uncached(fake_timing, tmp_path):
    clock, calls, _ = fake_timing
    model = build_model(model_config("legnet", width=0.125), 18)
    choice = choose_kernels(model, "train", "32", 64, clock=clock, max_seconds=1.2)
    assert choice.source == "measured" and set(choice.rates) < {f"{k.label}@{choice.threads}t"
                                                                for k in kernel_candidates("32")}
    assert not (tmp_path / "cache" / CACHE_FILE).exists()
    assert choose_kernels(model, "train", "32", 64, clock=clock, max_seconds=0).source == "rule"
    # time runs out after the first round, in which every candidate was timed once: cached
    choice = choose_kernels(model, "train", "32", 64, clock=clock, max_seconds=8.0)
    assert len(choice.rates) == 5 and choice.kernels == Kernels(16, True)
    assert choose_kernels(model, "train", "32", 64, clock=clock, max_seconds=0).source == "cache"


def test_real_steps_run_for_both_purposes(monkeypatch, tmp_path):
    """The step functions really train and predict (timed by a fake clock, so no figure matters)."""
    monkeypatch.setenv(KERNELS_ENV, "auto")
    model = build_model(model_config("legnet", width=0.125), 1)
    before = copy.deepcopy(model.state_dict())
    ticks = iter(range(10_000))
    for purpose in ("train", "predict"):
        choice = choose_kernels(model, purpose, "32", 8, clock=lambda: float(next(ticks)),
                                cache_path=tmp_path / CACHE_FILE)
        assert choice.source == "measured" and choice.kernels in kernel_candidates("32")
    for key, value in model.state_dict().items():  # the model itself was not trained
        torch.testing.assert_close(value, before[key])


def test_apply_choice_sets_formulation_and_threads():
    model = build_model(model_config("legnet", width=0.125), 18)
    threads = torch.get_num_threads()
    try:
        apply_choice(model, KernelChoice("train", Kernels(16, False), threads + 1, "32", 64, "measured"))
        assert kernels_of(model) == Kernels(16, False) and torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)
    assert choose_kernels(model, "train", "32", 64, device="cuda").source in ("rule", "env")


def test_thread_count_is_raced_for_the_fastest_formulation_from_four_threads(monkeypatch, tmp_path):
    monkeypatch.setenv(KERNELS_ENV, "auto")
    clock = FakeClock()
    seconds = {"planar/grouped": 1.0, "planar/block16": 0.6, "planar/block32": 0.8, "3d/grouped": 1.5,
               "3d/block32": 2.0}

    def steps(model, objective, batch_size, precision, candidates):
        def make(kernels, threads):
            def step():  # the fastest formulation gains from fewer threads (memory-bound), say
                clock.now += seconds[kernels.label] * (0.5 if threads == 2 else 1.0)
            return step
        return {autotune.candidate_label(k, t): make(k, t) for k, t in candidates}

    monkeypatch.setattr(autotune, "train_steps", steps)
    model = build_model(model_config("legnet", width=0.125), 18)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert autotune.thread_candidates(4) == [4, 2] and autotune.thread_candidates(2) == [2]
        choice = choose_kernels(model, "train", "32", 64, clock=clock, cache_path=tmp_path / CACHE_FILE)
        assert choice.kernels == Kernels(16, True) and choice.threads == 2
        assert set(choice.rates) == {f"{k.label}@4t" for k in kernel_candidates("32")} | {"planar/block16@2t"}
        assert torch.get_num_threads() == 4  # measuring leaves the process as it was
        apply_choice(model, choice)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
