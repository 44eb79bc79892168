"""Train a model from a :class:`RunConfig` into a run directory.

A run directory holds ``config.yaml`` (full resolved config), ``metrics.csv`` (one row per
epoch), ``best.ckpt`` / ``last.ckpt`` (Lightning checkpoints), ``curves.png``,
``val_scatter.png``, ``summary.json`` and, written last and only when training succeeded,
``model.pt`` (plain state dict + config, loadable without Lightning).

On several devices or nodes (``devices``/``num_nodes``/``strategy="ddp"``) every rank runs
:func:`train`; only rank 0 writes the run directory, and the ranks share each epoch's batches
and the validation set (:mod:`promoterlab.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import pandas as pd
import torch
import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from promoterlab import __version__
from promoterlab.config import RunConfig
from promoterlab.data.augment import parse_augment
from promoterlab.data.dataset import EncodedSet, EvalBatches, TrainBatches, batch_loader, load_split
from promoterlab.evaluation.plots import plot_curves, plot_val_scatter
from promoterlab.evaluation.predict import predict
from promoterlab.files import write_text_atomic
from promoterlab.models import build_model, count_parameters
from promoterlab.precision import lightning_precision
from promoterlab.training.averaging import parse_averaging
from promoterlab.training.budget import (MIN_BUDGET_STEPS, BudgetPlan, CatchUp, Deadline, budget_widths,
                                         plan_budget, time_steps)
from promoterlab.training.distributed import RunData, World, lightning_devices, plan_world
from promoterlab.training.hardware import DEFAULT_EPOCHS, accelerator_kind, resolve_train_config
from promoterlab.training.module import PromoterRegressor
from promoterlab.training.objective import Objective
from promoterlab.training.plateau import PlateauSchedule
from promoterlab.training.saved import load_run, save_model

log = logging.getLogger("promoterlab")
RUN_FILES = ("config.yaml", "metrics.csv", "best.ckpt", "last.ckpt", "model.pt", "summary.json", "budget.json",
             "curves.png", "val_scatter.png")


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C; the message says what was kept and how to resume."""


class FineTuneSwitch(Callback):
    """Turns the training batches' augmentation off from the module's first fine-tuning epoch."""

    def __init__(self, batches: TrainBatches):
        self.batches = batches

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: PromoterRegressor) -> None:
        self.batches.augmenting = self.batches.augment is not None and not pl_module.finetuning


def train(config: RunConfig, out_dir: str | Path, progress: bool = False, resume: bool = True,
          overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> dict:
    """Train ``config`` and write a run directory; return the summary.

    Parameters
    ----------
    config : RunConfig
        The run (data path, model, recipe, seed); ``"auto"`` settings are resolved for this
        machine and saved resolved in ``config.yaml``.
    out_dir : str or Path
        Run directory, created once the data has been read and checked.
    progress : bool
        Show Lightning's progress bar.
    resume : bool
        Continue from ``last.ckpt`` (written after every epoch) when the directory holds a run
        of the same config, e.g. after Ctrl-C or a killed process; else start afresh.
    overwrite : bool
        Replace a run of another config in ``out_dir`` (refused otherwise).
    callbacks : sequence of lightning Callback
        Extra callbacks (e.g. a pruning callback of a hyperparameter search).

    Returns
    -------
    dict
        The contents of ``summary.json`` (empty on the ranks other than 0 of a multi-process run).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    world = plan_world(config.train)
    L.seed_everything(config.seed, workers=True, verbose=False)
    augment = parse_augment(config.train.augment)
    train_set, val_set = load_split(config.data, config.seed, windows=augment is not None)
    objective = Objective.of(config)
    objective.check_targets(train_set.targets, str(config.data.path))
    config = resolve_config(config, len(train_set), len(val_set))
    resume_from = _prepare_directory(out, config, resume, overwrite, writes=world.rank == 0)
    train_batches = TrainBatches(train_set, rc_augment=config.train.rc_augment, augment=augment, seed=config.seed)
    batch_size = min(config.train.batch_size, len(train_batches))
    val_flags = val_set.singleton if config.data.val_singleton else None
    data = RunData(train_batches, EvalBatches(val_set.codes, val_set.targets, val_flags), batch_size,
                   config.train.eval_batch_size, config.seed)
    config, plan = _budget_plan(out, config, objective, data, start, resume_from)
    if world.rank == 0:
        config.save(out / "config.yaml")
    model = build_model(config.model, objective.n_outputs)
    epochs = plan.epochs if plan else (DEFAULT_EPOCHS if config.train.epochs == "auto" else config.train.epochs)
    epochs += config.train.finetune_epochs
    if world.rank == 0:
        log.info(_plan_line(config, train_set, val_set, model, batch_size, epochs, plan, resume_from, out, world))

    metrics_path = out / "metrics.csv"
    module = PromoterRegressor(model, objective, config.train, metrics_path)
    restored = _restore_history(metrics_path, resume_from) if world.rank == 0 else []
    module.history = list(restored)
    # Saved after the module's on_train_epoch_end, so last.ckpt never runs ahead of metrics.csv.
    checkpoint = ModelCheckpoint(dirpath=out, filename="best", monitor="val_pearson", mode="max",
                                 save_last=True, enable_version_counter=False, save_on_train_epoch_end=True)
    averaging = parse_averaging(config.train.averaging)
    callbacks = [checkpoint, FineTuneSwitch(train_batches), *([averaging] if averaging else []), *callbacks]
    if config.train.schedule == "plateau":
        cfg = config.train
        callbacks.append(PlateauSchedule(cfg.max_lr, cfg.div_factor, cfg.final_div_factor, cfg.patience,
                                         cfg.cooldown_epochs, epochs))
    elif config.train.patience:
        callbacks.append(EarlyStopping(monitor="val_pearson", mode="max", patience=config.train.patience))
    if config.train.max_time:  # the plan's reserve is for the model save and figures after training
        reserve = plan.val_seconds + 2.0 if plan else 0.0
        callbacks.append(Deadline(start + config.train.max_time * 60 - reserve))
        if plan and not config.train.finetune_epochs:
            callbacks.append(CatchUp(start + config.train.max_time * 60 - reserve, plan.val_seconds,
                                     plan.check_val_every_n_epoch))
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=plan.limit_train_batches if plan and plan.limit_train_batches else None,
        check_val_every_n_epoch=plan.check_val_every_n_epoch if plan else 1,
        accelerator=config.train.accelerator, devices=lightning_devices(config.train.devices),
        strategy=config.train.strategy, num_nodes=config.train.num_nodes, use_distributed_sampler=False,
        precision=lightning_precision(config.train.precision), callbacks=callbacks, logger=False,
        deterministic="warn", num_sanity_val_steps=0, enable_progress_bar=progress,
        enable_model_summary=False, default_root_dir=out)
    _fit(trainer, module, data, resume_from, out)
    seconds = time.perf_counter() - start + sum(row["seconds"] for row in restored)
    if not trainer.is_global_zero:
        return {}

    if averaging is None or averaging.updates == 0:
        # Without an average, the best validation epoch; with one, the averaged final weights
        # (which the callback copied into the model when training ended) are the model.
        best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
        model.load_state_dict({k.removeprefix("model."): v for k, v in best["state_dict"].items()})
    history = pd.DataFrame(module.history)
    plot_curves(history, out / "curves.png")
    val_pred = predict(model.eval(), val_set.codes, batch_size=config.train.eval_batch_size, singleton=val_flags)
    plot_val_scatter(val_pred, val_set.targets.numpy(), out / "val_scatter.png",
                     title=f"validation ({config.model.name})")
    best_row = history.loc[history["val_pearson"].idxmax()]
    summary = {
        "best_val_pearson": float(best_row["val_pearson"]),
        "best_val_spearman": float(best_row["val_spearman"]),
        "best_epoch": int(best_row["epoch"]),
        "epochs": int(len(history)),
        "train_seconds": round(seconds, 2),
        "params": count_parameters(model),
        "train_size": len(train_set),
        "val_size": len(val_set),
        "batch_size": batch_size,
        "world_size": trainer.world_size,
        "precision": config.train.precision,
        "steps": int(trainer.global_step),
        "stopped_early": bool(len(history) < epochs),
        "seed": config.seed,
        "augment": config.train.augment,
        "finetune_epochs": [int(e) for e in history["epoch"] if e > epochs - config.train.finetune_epochs],
        "averaging": config.train.averaging,
        "model_weights": (f"final {config.train.averaging} average" if averaging and averaging.updates
                          else "best validation epoch"),
    }
    if plan:  # skipped_steps: schedule steps jumped over when the machine slowed down after the probe
        summary["budget"] = {**plan.to_dict(), "skipped_steps": CatchUp.skipped(trainer)}
    schedule = next((c for c in callbacks if isinstance(c, PlateauSchedule)), None)
    if schedule is not None and schedule.cooldown_start is not None:
        summary["cooldown"] = {"first_epoch": schedule.cooldown_start + 1, "epochs": schedule.cooldown_length,
                               "reason": schedule.reason}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    save_model(model, config, out / "model.pt")
    log.info(f"best val Pearson {summary['best_val_pearson']:.4f} (epoch {summary['best_epoch']}); "
             f"run directory: {out}")
    return summary


def resolve_config(config: RunConfig, n_train: int | None = None, n_val: int | None = None) -> RunConfig:
    """``config`` as training saves it: package version set, model length from the data layout,
    precision and batch size chosen for this machine (``n_train`` sequences) where ``"auto"``,
    and an ``"auto"`` validation size as the ``n_val`` rows it chose (which split the same way)."""
    train_cfg = resolve_train_config(config.train, n_train or 0)
    if config.data.val_size == "auto" and n_val is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, val_size=n_val))
    return dataclasses.replace(config, version=__version__, train=train_cfg,
                               model=dataclasses.replace(config.model, seq_len=config.data.seq_len))


def saved_config_matches(run_dir: str | Path, config: RunConfig) -> bool:
    """Whether ``run_dir/config.yaml`` is missing or was written for ``config``.

    The package version and ``data.store`` (where the same sequences are read from) are
    ignored, and a setting left ``"auto"`` in ``config`` matches the value the saved run
    resolved it to.
    """
    saved = Path(run_dir) / "config.yaml"
    if not saved.exists():
        return True
    # Loaded through RunConfig so that fields added since the run was saved take their defaults.
    old = yaml.safe_load(yaml.safe_dump(RunConfig.load(saved).to_dict()))
    new = yaml.safe_load(yaml.safe_dump(config.to_dict()))
    new["model"]["seq_len"] = new["data"]["seq_len"]
    if (new["train"].get("fit_width") and new["train"]["max_time"] and new["train"]["epochs"] == "auto"
            and old["model"]["width"] in budget_widths(new["model"]["width"])):
        new["model"]["width"] = old["model"]["width"]  # the width that the budget chose
        new["train"]["fit_width"] = old["train"]["fit_width"]
    for section in ("train", "data"):
        for key, value in new[section].items():
            if value == "auto":
                new[section][key] = old[section].get(key)
    for settings in (old, new):
        settings.pop("version", None)
        settings["data"].pop("store", None)
    return old == new


def _prepare_directory(out: Path, config: RunConfig, resume: bool, overwrite: bool,
                       writes: bool = True) -> Path | None:
    """Create ``out``; return ``last.ckpt`` to resume from, or clear the files of an earlier run.

    Without ``writes`` (the ranks other than 0) only the answer is worked out, the same way:
    nothing is created or removed.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    same = saved_config_matches(out, config)
    if not same and not overwrite:
        raise ValueError(f"{out}: holds a run with a different config; choose another --out, or pass "
                         "--overwrite to replace it")
    checkpoint = out / "last.ckpt"
    resuming = same and resume and checkpoint.exists() and (out / "config.yaml").exists()
    if not writes:
        return checkpoint if resuming else None
    out.mkdir(parents=True, exist_ok=True)
    if resuming:
        (out / "model.pt").unlink(missing_ok=True)
        return checkpoint
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    return None


def _budget_plan(out: Path, config: RunConfig, objective: Objective, data: RunData, start: float,
                 resume_from: Path | None) -> tuple[RunConfig, BudgetPlan | None]:
    """The plan of a ``max_time`` run whose epochs are not given, and the config it trains.

    With ``fit_width`` the model is the widest of :func:`budget_widths` whose plan holds
    :data:`MIN_BUDGET_STEPS` steps (the narrowest when none does): each width is probed briefly
    and rejected, or probed in full and planned. A resumed run keeps its plan and width.
    Single-process runs only (:func:`~promoterlab.training.distributed.plan_world` refuses others).
    """
    if not config.train.max_time or config.train.epochs != "auto":
        return config, None
    saved = out / "budget.json"
    if resume_from is not None and saved.exists():
        plan = BudgetPlan(**json.loads(saved.read_text()))
        return _with_width(config, plan.width), plan
    train_loader = batch_loader(data.train_batches, data.batch_size, shuffle=True, seed=data.seed)
    val_loader = batch_loader(data.val_batches, data.eval_batch_size, shuffle=False)
    device = torch.device("cuda" if accelerator_kind(config.train.accelerator) == "gpu" else "cpu")
    budget, lr = config.train.max_time * 60, config.train.max_lr / config.train.div_factor

    def plan_for(model, **probe) -> BudgetPlan:
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
                plan = plan_for(model, min_steps=2, min_seconds=0.0, warmup=1)
                if plan.steps < MIN_BUDGET_STEPS:
                    steps_by_width[f"{width:g}"] = plan.steps
                    continue
            plan = plan_for(model, min_seconds=min(3.0, budget * 0.01))
            steps_by_width[f"{width:g}"] = plan.steps
            if plan.steps >= MIN_BUDGET_STEPS or last:
                break
    if config.train.fit_width:
        plan = dataclasses.replace(plan, width=width, steps_by_width=steps_by_width)
        config = _with_width(config, width)
    write_text_atomic(saved, json.dumps(dataclasses.asdict(plan), indent=2))
    return config, plan


def _with_width(config: RunConfig, width: float | None) -> RunConfig:
    """``config`` training the model at the ``width`` a budget chose (unchanged for ``None``),
    saved with ``fit_width`` off so that its ``config.yaml`` trains that width again."""
    if width is None:
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, width=width),
                               train=dataclasses.replace(config.train, fit_width=False))


def _plan_line(config: RunConfig, train_set: EncodedSet, val_set: EncodedSet, model, batch_size: int,
               epochs: int, plan: BudgetPlan | None, resume_from: Path | None, out: Path,
               world: World = World()) -> str:
    """One line that says what will run."""
    schedule = f"{epochs} epochs"
    if plan:
        schedule = (f"budget {config.train.max_time:g} min -> {plan.steps} steps ({schedule}, "
                    f"{plan.step_seconds:.2f} s/step measured)")
        if len(plan.steps_by_width) > 1:
            tried = ", ".join(f"width {w}: {n}" for w, n in plan.steps_by_width.items())
            schedule += (f"; narrowed to fit at least {MIN_BUDGET_STEPS} steps ({tried}; give --width or "
                         f"--model to keep a model)")
    start = f"resuming {out} from epoch {_checkpoint_epoch(resume_from)}" if resume_from else f"training into {out}"
    return (f"{start}: {config.data.path}: {len(train_set):,} train / {len(val_set):,} val sequences; "
            f"{config.model.name} (width {config.model.width:g}, {count_parameters(model):,} parameters), "
            f"loss {config.train.loss}, precision {config.train.precision}, batch {batch_size}"
            f"{f' per process x {world.size} processes' if world.size > 1 else ''}, {schedule}, seed {config.seed}")


def _fit(trainer: L.Trainer, module, data: RunData, resume_from: Path | None, out: Path) -> None:
    """``trainer.fit``, turning Lightning's exit on Ctrl-C into :class:`TrainingInterrupted`."""
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning leaves Ctrl-C ignored
        done = _checkpoint_epoch(out / "last.ckpt")
        kept = f"last.ckpt and metrics.csv after epoch {done}" if done else "no finished epoch"
        raise TrainingInterrupted(f"interrupted; kept {kept} in {out}; run the same command again to "
                                  f"resume") from None


def _checkpoint_epoch(checkpoint: Path | None) -> int:
    """Epochs finished in a Lightning checkpoint (0 when there is none)."""
    if checkpoint is None or not checkpoint.exists():
        return 0
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]) + 1


def _restore_history(metrics_path: Path, checkpoint: Path | None) -> list[dict]:
    """Rows of ``metrics.csv`` up to the checkpoint's epoch; the file is rewritten to match."""
    if checkpoint is None or not metrics_path.exists():
        metrics_path.unlink(missing_ok=True)
        return []
    rows = pd.read_csv(metrics_path)
    rows = rows[rows["epoch"] <= _checkpoint_epoch(checkpoint)]
    write_text_atomic(metrics_path, rows.to_csv(index=False, lineterminator="\n"))
    return rows.to_dict("records")


__all__ = ["TrainingInterrupted", "load_run", "resolve_config", "save_model", "saved_config_matches", "train"]
