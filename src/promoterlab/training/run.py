"""Train a model from a :class:`RunConfig` into a run directory, and load it back.

A run directory holds ``config.yaml`` (full resolved config), ``metrics.csv`` (one row per
epoch), ``best.ckpt`` (Lightning checkpoint of the best validation Pearson), ``model.pt``
(plain state dict + config, loadable without Lightning), ``curves.png`` and
``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import pandas as pd
import torch
import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import nn

from promoterlab import __version__
from promoterlab.config import RunConfig
from promoterlab.data.dataset import EvalBatches, TrainBatches, batch_loader, load_split
from promoterlab.evaluation.plots import plot_curves
from promoterlab.files import atomic_path, write_text_atomic
from promoterlab.models import build_model, count_parameters
from promoterlab.training.module import PromoterRegressor
from promoterlab.training.objective import check_targets, n_outputs

warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*exists and is not empty.*")


def train(config: RunConfig, out_dir: str | Path, progress: bool = False, resume: bool = False,
          callbacks: Sequence[Callback] = ()) -> dict:
    """Train ``config`` and write a run directory; return the summary.

    Parameters
    ----------
    config : RunConfig
        Fully specified run (data path, model, recipe, seed).
    out_dir : str or Path
        Run directory (created; ``metrics.csv`` of an earlier run there is replaced).
    progress : bool
        Show Lightning's progress bar.
    resume : bool
        Continue from ``last.ckpt`` (written after every epoch) when the run directory holds
        one for the same config, e.g. after the process was killed; else start afresh.
    callbacks : sequence of lightning Callback
        Extra callbacks (e.g. a pruning callback of a hyperparameter search).

    Returns
    -------
    dict
        The contents of ``summary.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    train_set, val_set = load_split(config.data, config.seed)
    check_targets(config.train.loss, train_set.targets, str(config.data.path))
    config = resolve_config(config)
    resume_from = _resumable_checkpoint(out, config) if resume else None
    config.save(out / "config.yaml")
    (out / "summary.json").unlink(missing_ok=True)

    model = build_model(config.model, n_outputs(config.train.loss))
    train_batches = TrainBatches(train_set, rc_augment=config.train.rc_augment)
    batch_size = min(config.train.batch_size, len(train_batches))
    train_loader = batch_loader(train_batches, batch_size, shuffle=True, seed=config.seed)
    val_singleton = val_set.singleton if config.data.val_singleton else None
    val_loader = batch_loader(EvalBatches(val_set.codes, val_set.targets, val_singleton),
                              config.train.eval_batch_size, False)

    metrics_path = out / "metrics.csv"
    module = PromoterRegressor(model, config.train, metrics_path)
    restored = _restore_history(metrics_path, resume_from)
    module.history = list(restored)
    # Saved after the module's on_train_epoch_end, so last.ckpt never runs ahead of metrics.csv.
    checkpoint = ModelCheckpoint(dirpath=out, filename="best", monitor="val_pearson", mode="max",
                                 save_last=True, enable_version_counter=False, save_on_train_epoch_end=True)
    callbacks = [checkpoint, *callbacks]
    if config.train.patience:
        callbacks.append(EarlyStopping(monitor="val_pearson", mode="max", patience=config.train.patience))
    trainer = L.Trainer(
        max_epochs=config.train.epochs,
        max_time={"minutes": config.train.max_time} if config.train.max_time else None,
        accelerator=config.train.accelerator, devices=_devices(config.train.devices),
        strategy=config.train.strategy, num_nodes=config.train.num_nodes,
        precision=config.train.precision, callbacks=callbacks, logger=False,
        deterministic="warn", num_sanity_val_steps=0, enable_progress_bar=progress,
        enable_model_summary=False, default_root_dir=out)
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from)
    seconds = time.perf_counter() - start + sum(row["seconds"] for row in restored)
    if not trainer.is_global_zero:
        return {}

    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    model.load_state_dict({k.removeprefix("model."): v for k, v in best["state_dict"].items()})
    save_model(model, config, out / "model.pt")
    history = pd.DataFrame(module.history)
    plot_curves(history, out / "curves.png")
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
        "stopped_early": bool(len(history) < config.train.epochs),
        "seed": config.seed,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def resolve_config(config: RunConfig) -> RunConfig:
    """``config`` as training saves it: package version set, model length from the data layout."""
    return dataclasses.replace(
        config, version=__version__, model=dataclasses.replace(config.model, seq_len=config.data.seq_len))


def saved_config_matches(run_dir: str | Path, config: RunConfig) -> bool:
    """Whether ``run_dir/config.yaml`` is missing or was written for ``config`` (package version aside)."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.exists():
        return True
    # Loaded through RunConfig so that fields added since the run was saved take their defaults.
    old = yaml.safe_load(yaml.safe_dump(RunConfig.load(saved).to_dict()))
    new = yaml.safe_load(yaml.safe_dump(resolve_config(config).to_dict()))
    old.pop("version", None)
    new.pop("version", None)
    return old == new


def _resumable_checkpoint(out: Path, config: RunConfig) -> Path | None:
    """``last.ckpt`` of ``out`` if it was written for this very config."""
    checkpoint = out / "last.ckpt"
    if not (checkpoint.exists() and (out / "config.yaml").exists()):
        return None
    if not saved_config_matches(out, config):
        raise ValueError(f"{out}: holds a run with a different config; remove it or choose another directory")
    return checkpoint


def _restore_history(metrics_path: Path, checkpoint: Path | None) -> list[dict]:
    """Rows of ``metrics.csv`` up to the checkpoint's epoch; the file is rewritten to match."""
    if checkpoint is None or not metrics_path.exists():
        metrics_path.unlink(missing_ok=True)
        return []
    done = torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"] + 1
    rows = pd.read_csv(metrics_path)
    rows = rows[rows["epoch"] <= done]
    write_text_atomic(metrics_path, rows.to_csv(index=False))
    return rows.to_dict("records")


def _devices(devices: str) -> str | int:
    return int(devices) if str(devices).isdigit() else devices


def save_model(model: nn.Module, config: RunConfig, path: Path) -> None:
    """Plain ``{'config', 'state_dict'}`` file, written atomically."""
    with atomic_path(path) as tmp:
        torch.save({"config": config.to_dict(), "state_dict": model.state_dict()}, tmp)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, RunConfig]:
    """Load the best model of a run directory (or a ``model.pt`` path) in eval mode."""
    path = Path(run_dir)
    path = path / "model.pt" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model here (expected a run directory with model.pt)")
    saved = torch.load(path, map_location=device, weights_only=False)
    config = RunConfig.from_dict(saved["config"])
    model = build_model(config.model, n_outputs(config.train.loss))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), config
