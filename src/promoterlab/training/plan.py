"""What a run will train: the time budget's plan (and the width it fits), and the line that says so."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from promoterlab.config import RunConfig, budget_widths
from promoterlab.data.dataset import batch_loader
from promoterlab.files import write_text_atomic
from promoterlab.models import build_model, count_parameters
from promoterlab.models.autotune import KernelChoice, apply_choice, choose_kernels, tuning_seconds
from promoterlab.objective import Objective
from promoterlab.runs import BUDGET
from promoterlab.training.budget import MIN_BUDGET_STEPS, BudgetPlan, plan_budget, time_steps
from promoterlab.training.distributed import RunData, World
from promoterlab.training.hardware import accelerator_kind

log = logging.getLogger("promoterlab")
# Seconds after the last epoch beyond two validation-sized passes: figures, summary, model file.
FINISH_SECONDS = 3.0


def budget_plan(out: Path, config: RunConfig, objective: Objective, data: RunData, start: float,
                 resume_from: Path | None) -> tuple[RunConfig, BudgetPlan | None]:
    """The plan of a ``max_time`` run whose epochs are not given, and the config it trains.

    With ``fit_width`` the model is the widest of :func:`budget_widths` whose plan holds
    :data:`MIN_BUDGET_STEPS` steps (the narrowest when none does): each width is probed briefly
    and rejected, or probed in full and planned. A resumed run keeps its plan and width.
    Single-process runs only (:func:`~promoterlab.training.distributed.plan_world` refuses others).
    """
    if not config.train.max_time or config.train.epochs != "auto":
        return config, None
    saved = out / BUDGET
    if resume_from is not None and saved.exists():
        plan = BudgetPlan(**json.loads(saved.read_text()))
        return with_width(config, plan.width), plan
    train_loader = batch_loader(data.train_batches, data.batch_size, shuffle=True, seed=data.seed)
    val_loader = batch_loader(data.val_batches, data.eval_batch_size, shuffle=False)
    device = torch.device("cuda" if accelerator_kind(config.train.accelerator) == "gpu" else "cpu")
    budget, lr = config.train.max_time * 60, config.train.max_lr / config.train.div_factor

    def plan_for(model, measure_kernels: bool = True, **probe) -> BudgetPlan:
        apply_choice(model, train_kernels(model, config, objective, data.batch_size, measure=measure_kernels))
        step_s, val_s = time_steps(model, objective, train_loader, val_loader, config.train.precision, device, lr,
                                   **probe)
        return plan_budget(budget, time.perf_counter() - start, step_s, val_s, len(train_loader),
                           reserve_seconds=val_s + 2.0)

    widths = budget_widths(config.model.width) if config.train.fit_width else [config.model.width]
    steps_by_width: dict[str, int] = {}
    # The probes train throw-away models: the run's own random state stays as it was.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        for width in widths:
            model = build_model(dataclasses.replace(config.model, width=width), objective.n_outputs)
            last = width == widths[-1]
            if not last:  # two steps after one warm-up step: enough to reject a width far too slow
                plan = plan_for(model, measure_kernels=False, min_steps=2, min_seconds=0.0, warmup=1)
                if plan.steps < MIN_BUDGET_STEPS:
                    steps_by_width[f"{width:g}"] = plan.steps
                    continue
            plan = plan_for(model, min_seconds=min(3.0, budget * 0.01))
            steps_by_width[f"{width:g}"] = plan.steps
            if plan.steps >= MIN_BUDGET_STEPS or last:
                break
    if config.train.fit_width:
        plan = dataclasses.replace(plan, width=width, steps_by_width=steps_by_width)
        config = with_width(config, width)
    write_text_atomic(saved, json.dumps(dataclasses.asdict(plan), indent=2))
    return config, plan


def estimate_seconds(config: RunConfig, objective: Objective, data: RunData, plan: BudgetPlan | None,
                     epochs: int, model, elapsed: float) -> tuple[float, float]:
    """Seconds the whole run will take and seconds per epoch, from measured steps: the budget's
    probe when there is a plan, else a short probe of ``model``'s steps (a few seconds)."""
    if plan is None:
        device = torch.device("cuda" if accelerator_kind(config.train.accelerator) == "gpu" else "cpu")
        train_loader = batch_loader(data.train_batches, data.batch_size, shuffle=True, seed=data.seed)
        val_loader = batch_loader(data.val_batches, data.eval_batch_size, shuffle=False)
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
            step_s, val_s = time_steps(model, objective, train_loader, val_loader, config.train.precision, device,
                                       config.train.max_lr / config.train.div_factor, min_steps=3,
                                       min_seconds=1.0, max_steps=10, warmup=2)
        per_epoch = len(train_loader) * step_s + val_s
        return elapsed + epochs * per_epoch + 2 * val_s + FINISH_SECONDS, per_epoch
    per_epoch = plan.steps / plan.epochs * plan.step_seconds + plan.val_seconds / plan.check_val_every_n_epoch
    return elapsed + plan.epochs * per_epoch + 2 * plan.val_seconds + FINISH_SECONDS, per_epoch


def estimate_line(models: int, epochs: int, per_epoch: float, total: float) -> str:
    """``estimate: about 12 min: 3 models x 6 epochs x 38 s``."""
    count = f"{models} models x " if models > 1 else ""
    return (f"estimate: about {_minutes(models * total)}: {count}{epochs} epochs x {per_epoch:.0f} s "
            f"(measured on this machine)")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def took_line(seconds: float, estimated: float | None) -> str:
    """``took 11.6 min (estimated 12 min)``."""
    text = f"took {seconds / 60:.1f} min" if seconds >= 90 else f"took {seconds:.0f} s"
    return text + (f" (estimated {_minutes(estimated)})" if estimated else "")


def train_kernels(model, config: RunConfig, objective: Objective, batch_size: int, world: World = World(),
                  measure: bool = True) -> KernelChoice:
    """The formulation ``model`` trains fastest with on this machine (:mod:`promoterlab.models.autotune`):
    cached, else measured within :func:`~promoterlab.models.autotune.tuning_seconds` of the budget;
    the precision's rule in multi-process runs, where timings would disturb each other."""
    device = "cuda" if accelerator_kind(config.train.accelerator) == "gpu" else "cpu"
    seconds = tuning_seconds(config.train.max_time) if measure and world.size == 1 else 0.0
    choice = choose_kernels(model, "train", config.train.precision, batch_size, objective, device=device,
                            max_seconds=seconds)
    if choice.source == "measured":
        log.info(f"kernels: {choice.label} measured fastest in {choice.tuning_seconds:.0f} s "
                 f"({', '.join(f'{k} {v:.0f}' for k, v in choice.rates.items())} seq/s)")
    return choice


def with_width(config: RunConfig, width: float | None) -> RunConfig:
    """``config`` training the model at the ``width`` a budget chose (unchanged for ``None``),
    saved with ``fit_width`` off so that its ``config.yaml`` trains that width again."""
    if width is None:
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, width=width),
                               train=dataclasses.replace(config.train, fit_width=False))


def plan_line(config: RunConfig, sizes: tuple[int, int, int], model, batch_size: int, epochs: int,
              plan: BudgetPlan | None, resumed_epochs: int | None, out: Path, world: World = World()) -> str:
    """One line that says what will run: data and its split (``sizes``: train, validation and
    held-out test sequences), model, recipe and schedule."""
    schedule = f"{epochs} epochs"
    if plan:
        schedule = (f"budget {config.train.max_time:g} min -> {plan.steps} steps ({schedule}, "
                    f"{plan.step_seconds:.2f} s/step measured)")
        if len(plan.steps_by_width) > 1:
            tried = ", ".join(f"width {w}: {n}" for w, n in plan.steps_by_width.items())
            schedule += (f"; narrowed to fit at least {MIN_BUDGET_STEPS} steps ({tried}; give --width or "
                         f"--model to keep a model)")
    n_train, n_val, n_test = sizes
    test = (f" / {n_test:,} test" if n_test else
            f"; test: {config.data.test_path}" if config.data.test_path else "; no test set")
    asked = config.train.batch_size
    capped = f" (capped at the data; {asked:,} asked)" if isinstance(asked, int) and asked > batch_size else ""
    start = f"resuming {out} from epoch {resumed_epochs}" if resumed_epochs is not None else f"training into {out}"
    return (f"{start}: {config.data.path}: {n_train:,} train / {n_val:,} val{test} sequences; "
            f"{config.model.name} (width {config.model.width:g}, {count_parameters(model):,} parameters), "
            f"loss {config.train.loss}, precision {config.train.precision}, batch {batch_size}{capped}"
            f"{f' per process x {world.size} processes' if world.size > 1 else ''}, {schedule}, seed {config.seed}")


def layout_line(config: RunConfig) -> str:
    """How sequences reach the model, said once per run: the plasmid prepended to a lab's own
    construct is a choice the lab must be able to see (and change)."""
    from promoterlab.sequence import PLASMID_UPSTREAM

    data = config.data
    upstream = "the DREAM plasmid" if data.upstream == PLASMID_UPSTREAM else f"your {len(data.upstream)} bp upstream"
    adapter = f"after removing the left adapter {data.left_adapter} where present" if data.left_adapter else \
        "as given (no left adapter)"
    fill = f"{upstream} fills the rest" if data.upstream else "N fills the rest"
    return (f"layout: each insert, {adapter}, is right-aligned in {data.seq_len} bp; {fill} "
            "(--seq-len, --left-adapter, --upstream)")
