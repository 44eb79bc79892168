"""The plain model file of a run (``model.pt``): written last, loaded without Lightning."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from promoterlab.config import RunConfig
from promoterlab.files import atomic_path
from promoterlab.models import build_model
from promoterlab.training.objective import Objective


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
    if not path.is_file():
        raise ValueError(f"{path}: not a model file")
    try:
        # weights_only: model.pt holds only plain types and tensors, so nothing in it can run code.
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # cut short, or not written by torch.save: errors of many types and no help
        raise ValueError(f"{path}: not a promoterlab model file, or cut short") from None
    if not isinstance(saved, dict) or not {"config", "state_dict"} <= set(saved):
        raise ValueError(f"{path}: not a promoterlab model file (expected a config and a state_dict)")
    try:
        config = RunConfig.from_dict(saved["config"])
        model = build_model(config.model, Objective.of(config).n_outputs)
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: model and config do not fit ({first})") from None
    return model.to(device).eval(), config
