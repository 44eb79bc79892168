"""Shared fixtures: paths to ../shared/data and tiny simulated libraries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.simulate import write_library
from promoterlab.models import model_config

# Tiny models run fastest on one thread, and CI machines are small: avoid oversubscription.
torch.set_num_threads(1)
# Tests never time kernels for real nor write to the user's cache: the precision's rule is used
# (tests of the measurement set "auto" and inject a clock).
os.environ["PROMOTERLAB_KERNELS"] = "rule"
os.environ["PROMOTERLAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="promoterlab_cache_")

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DREAM_TRAIN = SHARED_DATA / "dream2022" / "train" / "train_sequences_7369.txt"


@pytest.fixture(scope="session")
def sim_library(tmp_path_factory) -> Path:
    """3,000 simulated promoters in DREAM text format."""
    return write_library(tmp_path_factory.mktemp("sim") / "library.txt", n=3000, seed=1)


def tiny_config(path: Path, seed: int = 0, epochs: int = 2, loss: str = "kl", width: float = 0.125,
                train_size: int | None = 1500, val_size: int = 500, name: str = "legnet", **model_opts) -> RunConfig:
    """A run that trains in seconds on two CPU cores."""
    return RunConfig(
        data=DataConfig(path=str(path), train_size=train_size, val_size=val_size),
        model=model_config(name, width=width, **model_opts),
        train=TrainConfig(loss=loss, epochs=epochs, batch_size=64, accelerator="cpu", devices="1"),
        seed=seed,
    )
