"""Train one model from a :class:`RunConfig` into a run folder (:mod:`promoterlab.runs`).

A run folder holds ``config.yaml`` (full resolved config), ``split.npz`` (the rows of each role),
``metrics.csv`` (one row per epoch), ``best.ckpt`` / ``last.ckpt`` (Lightning checkpoints),
``curves.png``, ``val_scatter.png``, ``test_predictions.tsv``, ``summary.json``, ``README.md``
(the model card) and, written last and only when training succeeded, ``model.pt`` (plain state
dict + config, loadable without Lightning).

On several devices or nodes (``devices``/``num_nodes``/``strategy="ddp"``) every rank runs
:func:`train_model`; only rank 0 writes the run folder, and the ranks share each epoch's batches
and the validation set (:mod:`promoterlab.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from promoterlab.config import RunConfig, time_budget
from promoterlab.data.augment import parse_augment
from promoterlab.data.dataset import EvalBatches, TrainBatches, load_split
from promoterlab.data.encoded import SplitSets
from promoterlab.evaluation.calibration import calibrate_run
from promoterlab.evaluation.plots import plot_curves, plot_val_scatter
from promoterlab.evaluation.predict import predict
from promoterlab.files import write_text_atomic
from promoterlab.models import build_model, count_parameters
from promoterlab.models.autotune import KernelChoice, apply_choice
from promoterlab.objective import Objective
from promoterlab.runs import (BEST_CHECKPOINT, CONFIG, CURVES, LAST_CHECKPOINT, METRICS, MODEL, TRAINING_FILES,
                              VAL_SCATTER, save_model, saved_config_matches)
from promoterlab.precision import lightning_precision
from promoterlab.training.averaging import parse_averaging
from promoterlab.training.budget import BudgetPlan, CatchUp, Deadline
from promoterlab.training.distill import needs_windows, with_teacher_labels
from promoterlab.training.distributed import RunData, World, lightning_devices, plan_world
from promoterlab.training.hardware import DEFAULT_EPOCHS, resolve_train_config
from promoterlab.training.module import PromoterRegressor
from promoterlab.training.outcome import (test_report, test_set, val_metrics_flag0, write_model_card, write_split,
                                          write_summary, write_test_predictions)
from promoterlab.training.plan import (budget_plan, estimate_line, estimate_seconds, layout_line, plan_line, took_line,
                                      train_kernels)
from promoterlab.training.plateau import PlateauSchedule
from promoterlab.training.transfer import resolve_transfer, start_from
from promoterlab.version import __version__

log = logging.getLogger("promoterlab")


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C; the message says what was kept and how to resume."""


class FineTuneSwitch(Callback):
    """Turns the training batches' augmentation off from the module's first fine-tuning epoch."""

    def __init__(self, batches: TrainBatches):
        self.batches = batches

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: PromoterRegressor) -> None:
        self.batches.augmenting = self.batches.augment is not None and not pl_module.finetuning


def train_model(config: RunConfig, out_dir: str | Path, progress: bool = False, resume: bool = True,
                overwrite: bool = False, callbacks: Sequence[Callback] = (), estimate_for: int = 1) -> dict:
    """Train one model of ``config`` and write its run folder; return the summary.

    Parameters
    ----------
    config : RunConfig
        The run (data path, model, recipe, seed); ``"auto"`` settings are resolved for this
        machine and saved resolved in ``config.yaml``.
    out_dir : str or Path
        Run folder, created once the data has been read and checked.
    progress : bool
        Show Lightning's progress bar.
    resume : bool
        Continue from ``last.ckpt`` (written after every epoch) when the folder holds a run of
        the same config, e.g. after Ctrl-C or a killed process; else start afresh.
    overwrite : bool
        Replace a run of another config in ``out_dir`` (refused otherwise).
    callbacks : sequence of lightning Callback
        Extra callbacks (e.g. a pruning callback of a hyperparameter search).
    estimate_for : int
        Say before training how long this many such models will take (an ensemble's first
        member says it for the ensemble); 0: say nothing.

    Returns
    -------
    dict
        The contents of ``summary.json`` (empty on the ranks other than 0 of a multi-process run).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    world = plan_world(config.train)
    L.seed_everything(config.seed, workers=True, verbose=False)
    split, objective = _read_data(config)
    config = resolve_config(config, len(split.train), len(split.val), split.test)
    config = resolve_transfer(config)  # init run and teacher found and checked, before anything is written
    resume_from = prepare_run_folder(out, config, resume, overwrite, writes=world.rank == 0)
    data = _batches(config, with_teacher_labels(config, split, objective))
    config, plan = budget_plan(out, config, objective, data, start, resume_from)
    if world.rank == 0:
        config.save(out / CONFIG)
        write_split(out, config, split)
    model = build_model(config.model, objective.n_outputs)
    kernels = train_kernels(model, config, objective, data.batch_size, world)  # measured once per machine and model
    apply_choice(model, kernels)
    callbacks = [*start_from(model, config), *callbacks]  # the init run's weights; layers kept frozen
    epochs = plan.epochs if plan else (DEFAULT_EPOCHS if config.train.epochs == "auto" else config.train.epochs)
    epochs += config.train.finetune_epochs
    estimate = None
    if world.rank == 0:
        sizes = (len(split.train), len(split.val), 0 if split.test is None else len(split.test))
        done = checkpoint_epoch(resume_from) if resume_from else None
        log.info(plan_line(config, sizes, model, data.batch_size, epochs, plan, done, out, world))
        log.info(layout_line(config))
        if estimate_for and world.size == 1:
            estimate, per_epoch = estimate_seconds(config, objective, data, plan, epochs - (done or 0), model,
                                                   time.perf_counter() - start)
            log.info(estimate_line(estimate_for, epochs - (done or 0), per_epoch, estimate))
    module = PromoterRegressor(model, objective, config.train, out / METRICS)
    restored = _restore_history(out / METRICS, resume_from) if world.rank == 0 else []
    module.history = list(restored)
    trainer, checkpoint, averaging, callbacks = _trainer(config, out, data, plan, epochs, start, progress, callbacks)
    _fit(trainer, module, data, resume_from, out)
    if not trainer.is_global_zero:
        return {}
    _keep_chosen_weights(model, checkpoint, averaging)
    fitted = _Fitted(trainer, module.history, plan, epochs, data.batch_size, averaging, callbacks,
                     time.perf_counter() - start + sum(row["seconds"] for row in restored), kernels, estimate)
    summary = _finish(out, config, model, split, fitted)
    log.info(_result_line(summary, out))
    if estimate_for == 1:
        log.info(took_line(time.perf_counter() - start, estimate))
    return summary


def _read_data(config: RunConfig) -> tuple[SplitSets, Objective]:
    """The seeded split of the data, checked against the objective before anything is written."""
    augment = parse_augment(config.train.augment)
    split = load_split(config.data, config.seed, windows=augment is not None or needs_windows(config))
    objective = Objective.of(config)
    objective.check_targets(split.train.targets, str(config.data.path))
    return split, objective


def _batches(config: RunConfig, split: SplitSets) -> RunData:
    """Training batches (reverse-complement and EvoAug augmentation) and validation batches."""
    augment = parse_augment(config.train.augment)
    train_batches = TrainBatches(split.train, rc_augment=config.train.rc_augment, augment=augment, seed=config.seed)
    val_flags = split.val.singleton if config.data.val_singleton else None
    return RunData(train_batches, EvalBatches(split.val.codes, split.val.targets, val_flags),
                   min(config.train.batch_size, len(train_batches)), config.train.eval_batch_size, config.seed)


def _trainer(config: RunConfig, out: Path, data: RunData, plan: BudgetPlan | None, epochs: int, start: float,
             progress: bool, extra: Sequence[Callback]):
    """The Lightning trainer with the run's checkpoints, schedule, averaging and time budget."""
    # Saved after the module's on_train_epoch_end, so last.ckpt never runs ahead of metrics.csv.
    checkpoint = ModelCheckpoint(dirpath=out, filename=Path(BEST_CHECKPOINT).stem, monitor="val_pearson", mode="max",
                                 save_last=True, enable_version_counter=False, save_on_train_epoch_end=True)
    averaging = parse_averaging(config.train.averaging)
    callbacks = [checkpoint, FineTuneSwitch(data.train_batches), *([averaging] if averaging else []), *extra]
    cfg = config.train
    if cfg.schedule == "plateau":
        callbacks.append(PlateauSchedule(cfg.max_lr, cfg.div_factor, cfg.final_div_factor, cfg.patience,
                                         cfg.cooldown_epochs, epochs))
    elif cfg.patience:
        callbacks.append(EarlyStopping(monitor="val_pearson", mode="max", patience=cfg.patience))
    if cfg.max_time:  # the plan's reserve is for the model save and figures after training
        reserve = plan.val_seconds + 2.0 if plan else 0.0
        callbacks.append(Deadline(start + cfg.max_time * 60 - reserve))
        if plan and not cfg.finetune_epochs:
            callbacks.append(CatchUp(start + cfg.max_time * 60 - reserve, plan.val_seconds,
                                     plan.check_val_every_n_epoch))
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=plan.limit_train_batches if plan and plan.limit_train_batches else None,
        check_val_every_n_epoch=plan.check_val_every_n_epoch if plan else 1,
        accelerator=cfg.accelerator, devices=lightning_devices(cfg.devices), strategy=cfg.strategy,
        num_nodes=cfg.num_nodes, use_distributed_sampler=False, precision=lightning_precision(cfg.precision), callbacks=callbacks,
        logger=False, deterministic="warn", num_sanity_val_steps=0, enable_progress_bar=progress,
        enable_model_summary=False, default_root_dir=out)
    return trainer, checkpoint, averaging, callbacks


def _keep_chosen_weights(model: torch.nn.Module, checkpoint: ModelCheckpoint, averaging) -> None:
    """The weights the run keeps: the best validation epoch, or with weight averaging the final
    average (which the averaging callback already copied into the model when training ended)."""
    if averaging is None or averaging.updates == 0:
        best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
        model.load_state_dict({k.removeprefix("model."): v for k, v in best["state_dict"].items()})
    model.eval()


@dataclasses.dataclass
class _Fitted:
    """What fitting left for the summary."""

    trainer: L.Trainer
    history: list[dict]
    plan: BudgetPlan | None
    epochs: int
    batch_size: int
    averaging: Callback | None
    callbacks: list[Callback]
    seconds: float
    kernels: KernelChoice
    estimate: float | None = None  # seconds this run was estimated to take before it started


def _finish(out: Path, config: RunConfig, model, split: SplitSets, fitted: _Fitted) -> dict:
    """Figures, validation and test predictions, ``summary.json``, the model card and, last, ``model.pt``."""
    trainer, plan, epochs, averaging = fitted.trainer, fitted.plan, fitted.epochs, fitted.averaging
    history = pd.DataFrame(fitted.history)
    plot_curves(history, out / CURVES)
    val_flags = split.val.singleton if config.data.val_singleton else None
    val_pred = predict(model, split.val.codes, batch_size=config.train.eval_batch_size, singleton=val_flags)
    plot_val_scatter(val_pred, split.val.targets.numpy(), out / VAL_SCATTER,
                     title=f"validation ({config.model.name})")
    best_row = history.loc[history["val_pearson"].idxmax()]
    summary = {
        "best_val_pearson": float(best_row["val_pearson"]),
        "best_val_spearman": float(best_row["val_spearman"]),
        "best_epoch": int(best_row["epoch"]),
        "epochs": int(len(history)),
        "train_seconds": round(fitted.seconds, 2),
        **({"estimated_seconds": round(fitted.estimate, 1)} if fitted.estimate is not None else {}),
        "params": count_parameters(model),
        "train_size": len(split.train),
        "val_size": len(split.val),
        "batch_size": fitted.batch_size,
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
    flag0 = val_metrics_flag0(model, config, split.val)
    if flag0:
        summary["val_flag0"] = flag0
    held_out = test_set(config, split)
    if held_out is not None:
        test, source = held_out
        prediction = predict(model, test.codes, batch_size=config.train.eval_batch_size)
        write_test_predictions(out, test, prediction)
        summary["test"] = test_report(prediction, test, source)
    summary.update(calibrate_run(out, [(model, config)], split.val, held_out[0] if held_out else None,
                                 config.train.eval_batch_size))
    summary["kernels"] = fitted.kernels.to_dict()
    if plan:  # re-plans from the measured pace, and schedule steps jumped over (CatchUp.report)
        summary["budget"] = {**plan.to_dict(), **CatchUp.report(trainer)}
    schedule = next((c for c in fitted.callbacks if isinstance(c, PlateauSchedule)), None)
    if schedule is not None and schedule.cooldown_start is not None:
        summary["cooldown"] = {"first_epoch": schedule.cooldown_start + 1, "epochs": schedule.cooldown_length,
                               "reason": schedule.reason}
    write_summary(out, summary)
    write_model_card(out, config, summary)
    save_model(model, config, out)
    return summary


def _result_line(summary: dict, out: Path) -> str:
    """The line that ends a run: validation and (held-out) test Pearson, and where the run went."""
    text = f"best val Pearson {summary['best_val_pearson']:.4f} (epoch {summary['best_epoch']})"
    test = summary.get("test")
    if test and test.get("pearson") is not None:
        low, high = test["pearson_ci95"]
        text += f"; test Pearson {test['pearson']:.4f} [{low:.3f}, {high:.3f}] (n {test['n']:,})"
    return f"{text}; run directory: {out}"


def resolve_config(config: RunConfig, n_train: int | None = None, n_val: int | None = None,
                   test=None) -> RunConfig:
    """``config`` as training saves it: package version set, model length from the data layout,
    precision and batch size chosen for this machine (``n_train`` sequences) where ``"auto"``,
    ``"auto"`` validation and test sizes as the rows they chose (which split the same way), and
    one model (an ensemble's members are model runs), and the time budget in minutes or None."""
    train_cfg = resolve_train_config(config.train, n_train or 0)
    train_cfg = dataclasses.replace(train_cfg, ensemble=1, max_time=time_budget(train_cfg))
    data = config.data
    if data.val_size == "auto" and n_val is not None:
        data = dataclasses.replace(data, val_size=n_val)
    if data.test_size == "auto" and not data.test_path:
        data = dataclasses.replace(data, test_size=0 if test is None else len(test))
    return dataclasses.replace(config, version=__version__, train=train_cfg, data=data,
                               model=dataclasses.replace(config.model, seq_len=config.data.seq_len))


def prepare_run_folder(out: Path, config: RunConfig, resume: bool, overwrite: bool,
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
    checkpoint = out / LAST_CHECKPOINT
    resuming = same and resume and checkpoint.exists() and (out / CONFIG).exists()
    if not writes:
        return checkpoint if resuming else None
    out.mkdir(parents=True, exist_ok=True)
    if resuming:
        (out / MODEL).unlink(missing_ok=True)
        return checkpoint
    for name in TRAINING_FILES:
        (out / name).unlink(missing_ok=True)
    return None


def _fit(trainer: L.Trainer, module, data: RunData, resume_from: Path | None, out: Path) -> None:
    """``trainer.fit``, turning Lightning's exit on Ctrl-C into :class:`TrainingInterrupted`."""
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning leaves Ctrl-C ignored
        done = checkpoint_epoch(out / LAST_CHECKPOINT)
        kept = f"last.ckpt and metrics.csv after epoch {done}" if done else "no finished epoch"
        raise TrainingInterrupted(f"interrupted; kept {kept} in {out}; run the same command again to "
                                  f"resume") from None


def checkpoint_epoch(checkpoint: Path | None) -> int:
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
    rows = rows[rows["epoch"] <= checkpoint_epoch(checkpoint)]
    write_text_atomic(metrics_path, rows.to_csv(index=False, lineterminator="\n"))
    return rows.to_dict("records")


__all__ = ["TrainingInterrupted", "checkpoint_epoch", "prepare_run_folder", "resolve_config", "train_model"]
