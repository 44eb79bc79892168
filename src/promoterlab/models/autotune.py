"""Kernels chosen by measurement on the machine that runs them, cached per machine and model.

The equivalent formulations of :mod:`promoterlab.models.kernels` (and the thread count on
machines with 4 or more cores) are each faster on some CPUs and slower on others. On first use
:func:`choose_kernels` times them for a few steps of what will run (a training step: forward,
backward, AdamW; or an RC-averaged forward pass of a BatchNorm-folded copy), in interleaved
rounds, dropping candidates far behind after each round, keeps the fastest and caches the choice
in ``kernels.json`` of the user cache folder (:mod:`promoterlab.models.kernel_cache`). The cache is keyed by what the
choice depends on (:func:`~promoterlab.models.kernel_cache.tuning_key`): CPU model and ISA flags, PyTorch's CPU capability and
version, the ISA environment overrides, the model's class and config, outputs, purpose,
precision, batch size and threads. Deleting the file only costs the next run its measurement; a
corrupt file is measured again and rewritten.

Timings taken while the machine is busy with other programs are unreliable: a choice measured at
a load above one runnable process per core is measured again on a later use when the machine is
quiet. ``$PROMOTERLAB_KERNELS`` overrides: ``auto`` (the default: cached, else measured), ``rule``
(never measure: :func:`~promoterlab.models.kernels.default_kernels`) or one formulation's label
(e.g. ``planar/grouped``).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from promoterlab.files import write_text_atomic
from promoterlab.models.kernel_cache import (CACHE_ENV, CACHE_FILE, CACHE_VERSION, ISA_ENV_VARS, ISA_FLAGS,  # noqa: F401
                                             key_hash, cache_dir, load_per_core, machine_signature, read_cache,
                                             tuning_key)
from promoterlab.sequence import model_input
from promoterlab.models.fold import fold_batchnorm
from promoterlab.models.kernels import Kernels, apply_kernels, default_kernels, is_bf16, kernel_candidates
from promoterlab.objective import Objective

KERNELS_ENV = "PROMOTERLAB_KERNELS"
PURPOSES = ("train", "predict")
# Measuring on first use may take this long, and at most this share of a --max-time budget.
TUNE_SECONDS = 60.0
MIN_TUNE_SECONDS = 5.0
TUNE_BUDGET_SHARE = 0.05
# After each round, candidates this many times slower than the best so far are not timed again.
PRUNE_RATIO = 1.3
# A choice measured while other programs kept the cores busy (load per core above BUSY_LOAD) is
# measured again once the machine is quiet (below QUIET_LOAD).
BUSY_LOAD = 1.0
QUIET_LOAD = 0.5


@dataclass
class KernelChoice:
    """The formulation a model runs with, and how it was chosen.

    ``source`` is ``measured`` (timed now), ``cache`` (timed before on this machine), ``rule``
    (not timed: the precision's default) or ``env`` (``$PROMOTERLAB_KERNELS``); ``rates`` are
    the sequences per second measured for each candidate label, the chosen one included.
    """

    purpose: str
    kernels: Kernels
    threads: int
    precision: str
    batch_size: int
    source: str
    rates: dict[str, float] = field(default_factory=dict)
    tuning_seconds: float = 0.0
    load: float | None = None  # runnable processes per core while measuring (1-minute load average)

    @property
    def label(self) -> str:
        return candidate_label(self.kernels, self.threads)

    def speedup_over_rule(self) -> float | None:
        """Measured rate of the choice over that of the precision's default formulation."""
        rule = self.rates.get(candidate_label(default_kernels(self.precision), self.threads))
        chosen = self.rates.get(self.label)
        return chosen / rule if rule and chosen else None

    def to_dict(self) -> dict:
        """As recorded in ``summary.json`` (``kernels``) and the cache."""
        out = asdict(self)
        out["kernels"] = self.kernels.to_dict()
        out["label"] = self.label
        out["rates"] = {k: round(v, 2) for k, v in self.rates.items()}
        out["tuning_seconds"] = round(self.tuning_seconds, 2)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> KernelChoice:
        return cls(purpose=values["purpose"], kernels=Kernels.from_dict(values["kernels"]),
                   threads=int(values["threads"]), precision=str(values["precision"]),
                   batch_size=int(values["batch_size"]), source=str(values["source"]),
                   rates={str(k): float(v) for k, v in values.get("rates", {}).items()},
                   tuning_seconds=float(values.get("tuning_seconds", 0.0)),
                   load=None if values.get("load") is None else float(values["load"]))


def candidate_label(kernels: Kernels, threads: int) -> str:
    """``planar/grouped@2t``: formulation and thread count."""
    return f"{kernels.label}@{threads}t"


def cached_choice(key: dict, path: Path | None = None) -> KernelChoice | None:
    """The cached choice for ``key``, or ``None`` (an unreadable entry counts as none)."""
    entry = read_cache(path or cache_dir() / CACHE_FILE).get(key_hash(key))
    try:
        return KernelChoice.from_dict(entry["choice"]) if entry else None
    except (KeyError, TypeError, ValueError):
        return None


def save_choice(key: dict, choice: KernelChoice, path: Path | None = None) -> None:
    """Add ``choice`` under ``key`` to the cache (written atomically; an unwritable folder is
    skipped: the cache only saves time)."""
    path = path or cache_dir() / CACHE_FILE
    entries = read_cache(path)
    entries[key_hash(key)] = {"key": key, "choice": choice.to_dict(), "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, default=str))
    except OSError:
        pass


def measure_rates(steps: dict[str, Callable[[], object]], batch_size: int, rounds: int = 3, warmup: int = 1,
                  clock: Callable[[], float] = time.perf_counter, max_seconds: float | None = None,
                  prune: float = PRUNE_RATIO) -> dict[str, float]:
    """Sequences per second of each step function, timed in interleaved rounds.

    Each candidate first runs ``warmup`` untimed steps (memory and kernel set-up); then every
    round times one step of each candidate still in the race, so a drift of the machine hits
    all alike, and drops those more than ``prune`` times slower than the best median so far.
    Stops early once ``max_seconds`` have passed (candidates not timed by then get no rate).

    Parameters
    ----------
    steps : dict
        Candidate label -> a function that runs one step of ``batch_size`` sequences.
    clock : callable
        Seconds (``time.perf_counter``; tests pass a fake clock).
    """
    start = clock()
    times: dict[str, list[float]] = {label: [] for label in steps}
    alive = []
    for label, step in steps.items():
        if max_seconds is not None and alive and clock() - start > max_seconds:
            break
        for _ in range(warmup):
            step()
        alive.append(label)
    for _ in range(rounds):
        for label in alive:
            begin = clock()
            steps[label]()
            times[label].append(clock() - begin)
        best = min(statistics.median(times[label]) for label in alive)
        alive = [label for label in alive if statistics.median(times[label]) <= prune * best]
        if max_seconds is not None and clock() - start > max_seconds:
            break
    return {label: batch_size / max(statistics.median(t), 1e-9) for label, t in times.items() if t}


def _random_batch(model: nn.Module, objective, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the model's length and targets on the objective's scale."""
    generator = torch.Generator().manual_seed(0)
    seq_len = getattr(getattr(model, "cfg", None), "seq_len", 150)
    codes = torch.randint(0, 4, (batch_size, seq_len), generator=generator, dtype=torch.uint8)
    top = max(getattr(objective, "n_bins", 2) or 2, 2) - 1
    return model_input(codes, False), torch.rand(batch_size, generator=generator) * top


def train_steps(model: nn.Module, objective, batch_size: int, precision: str,
                candidates: list[tuple[Kernels, int]]) -> dict[str, Callable[[], None]]:
    """One training step function per ``(kernels, threads)`` candidate, all on one throw-away
    copy of ``model`` (switched between formulations in place)."""
    probe = copy.deepcopy(model).cpu().train()
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-6)
    x, y = _random_batch(model, objective, batch_size)

    def step_with(kernels: Kernels, threads: int) -> Callable[[], None]:
        def step() -> None:
            apply_kernels(probe, kernels)
            torch.set_num_threads(threads)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=is_bf16(precision)):
                out = probe(x)
            optimizer.zero_grad(set_to_none=True)
            objective.loss_value(out, y).backward()
            optimizer.step()
        return step

    return {candidate_label(k, t): step_with(k, t) for k, t in candidates}


def predict_steps(model: nn.Module, batch_size: int, precision: str,
                  candidates: list[tuple[Kernels, int]]) -> dict[str, Callable[[], None]]:
    """One RC-averaged inference step per candidate on a BatchNorm-folded copy of ``model``."""
    folded = fold_batchnorm(model.cpu())
    x, _ = _random_batch(model, None, batch_size)
    x_rc = x.flip(-1)

    def step_with(kernels: Kernels, threads: int) -> Callable[[], None]:
        @torch.inference_mode()
        def step() -> None:
            apply_kernels(folded, kernels)
            torch.set_num_threads(threads)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=is_bf16(precision)):
                folded(x)
                folded(x_rc)
        return step

    return {candidate_label(k, t): step_with(k, t) for k, t in candidates}


def thread_candidates(threads: int) -> list[int]:
    """Thread counts worth timing: the current one, and half of it from 4 threads up (small
    convolutions are bound by memory, and more threads can cost more than they bring)."""
    return [threads] if threads < 4 else [threads, threads // 2]


def choose_kernels(model: nn.Module, purpose: str, precision: str, batch_size: int, objective=None,
                   device: str | torch.device = "cpu", max_seconds: float | None = None, retune: bool = False,
                   clock: Callable[[], float] = time.perf_counter, cache_path: Path | None = None) -> KernelChoice:
    """The fastest formulation of ``model`` for ``purpose`` on this machine (cached; see the module).

    Parameters
    ----------
    model : nn.Module
        The model to run (unchanged: a copy is timed).
    purpose : str
        ``train`` (a training step of ``batch_size`` with ``objective``'s loss) or ``predict``
        (RC-averaged forward passes of a folded copy).
    precision : str
        ``32``, ``bf16-mixed`` or ``bf16`` (resolved, not ``auto``).
    batch_size : int
        Sequences per step.
    objective : Objective, optional
        Loss of the training step (default: KL over the model's bins).
    device : str
        Only CPUs are timed; elsewhere the precision's rule is returned.
    max_seconds : float, optional
        Time the measurement may take; when it runs out, the best candidate timed so far is
        kept, and cached only if every candidate was timed at least once (0: do not measure,
        use the cache or the rule).
    retune : bool
        Measure even when a cached choice exists.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    threads = torch.get_num_threads()
    rule = KernelChoice(purpose, default_kernels(precision), threads, precision, batch_size, "rule")
    mode = os.environ.get(KERNELS_ENV, "auto").strip() or "auto"
    if mode not in ("auto", "rule"):
        forced = next((k for k in kernel_candidates(precision) if k.label == mode), None)
        if forced is None:
            labels = ", ".join(k.label for k in kernel_candidates(precision))
            raise ValueError(f"${KERNELS_ENV} must be auto, rule or one of {labels}; got {mode!r}")
        return KernelChoice(purpose, forced, threads, precision, batch_size, "env")
    if mode == "rule" or torch.device(device).type != "cpu":
        return rule
    key = tuning_key(model, purpose, precision, batch_size, threads)
    cached = None if retune else cached_choice(key, cache_path)
    busy_then = cached is not None and cached.load is not None and cached.load > BUSY_LOAD
    load_now = load_per_core()
    if cached is not None and not (busy_then and load_now is not None and load_now < QUIET_LOAD):
        cached.source = "cache"
        return cached
    if max_seconds is not None and max_seconds <= 0:
        if cached is not None:
            cached.source = "cache"
        return cached or rule
    candidates = [(k, threads) for k in kernel_candidates(precision)]
    start = clock()
    rates = _measure(model, purpose, precision, batch_size, objective, candidates, clock, max_seconds)
    best = max(rates, key=rates.get)
    kernels = next(k for k, t in candidates if candidate_label(k, t) == best)
    chosen_threads = threads
    if len(thread_candidates(threads)) > 1 and (max_seconds is None or clock() - start < max_seconds / 2):
        # the thread count for the fastest formulation, in a race of its own
        by_threads = _measure(model, purpose, precision, batch_size, objective,
                              [(kernels, t) for t in thread_candidates(threads)], clock, max_seconds)
        rates.update(by_threads)
        best = max(by_threads, key=by_threads.get)
        chosen_threads = next(t for t in thread_candidates(threads) if candidate_label(kernels, t) == best)
    torch.set_num_threads(threads)
    complete = all(candidate_label(k, t) in rates for k, t in candidates)  # each timed at least once
    choice = KernelChoice(purpose, kernels, chosen_threads, precision, batch_size, "measured", rates,
                          clock() - start, load=_max_load(load_now, load_per_core()))
    if complete and len(rates) > 1:
        save_choice(key, choice, cache_path)
    return choice


def _measure(model, purpose, precision, batch_size, objective, candidates, clock, max_seconds) -> dict[str, float]:
    if purpose == "train":
        if objective is None:
            n_outputs = getattr(model, "n_outputs", 18)
            objective = Objective("kl", n_outputs) if n_outputs > 1 else Objective("mse")
        steps = train_steps(model, objective, batch_size, precision, candidates)
    else:
        steps = predict_steps(model, batch_size, precision, candidates)
    with torch.random.fork_rng():  # dropout in the timed copies leaves the run's random state alone
        return measure_rates(steps, batch_size, clock=clock, max_seconds=max_seconds)


def _max_load(*loads: float | None) -> float | None:
    known = [value for value in loads if value is not None]
    return round(max(known), 2) if known else None


def tuning_seconds(max_time_minutes: float | None) -> float:
    """Seconds a run may spend measuring kernels: :data:`TUNE_SECONDS`, and at most
    :data:`TUNE_BUDGET_SHARE` of a ``--max-time`` budget; 0 (the cache or the rule) when that
    share is under :data:`MIN_TUNE_SECONDS`, too short to time every candidate."""
    if not max_time_minutes:
        return TUNE_SECONDS
    seconds = min(TUNE_SECONDS, TUNE_BUDGET_SHARE * max_time_minutes * 60)
    return seconds if seconds >= MIN_TUNE_SECONDS else 0.0


def apply_choice(model: nn.Module, choice: KernelChoice) -> nn.Module:
    """Set ``choice``'s formulation on ``model`` and its thread count on this process."""
    apply_kernels(model, choice.kernels)
    if choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)
    return model
