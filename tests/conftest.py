"""Shared fixtures: paths to ../shared/data and tiny simulated libraries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from promoterlab.cli import app
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
                train_size: int | None = 1500, val_size: int = 500, name: str = "legnet", test_size="auto",
                **model_opts) -> RunConfig:
    """A run that trains in seconds on two CPU cores."""
    return RunConfig(
        data=DataConfig(path=str(path), train_size=train_size, val_size=val_size, test_size=test_size),
        model=model_config(name, width=width, **model_opts),
        train=TrainConfig(loss=loss, epochs=epochs, batch_size=64, accelerator="cpu", devices="1", ensemble=1),
        seed=seed,
    )


def snapshot(*folders: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and link under ``folders`` with its mode and content (a link: its target)."""
    files = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                files[str(path)] = (0, os.readlink(path).encode())
            elif path.is_file():
                files[str(path)] = (path.stat().st_mode, path.read_bytes())
            else:
                files[str(path)] = (path.stat().st_mode, b"")
    return files


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_error(result, *fragments: str) -> None:
    """Exit 2 and exactly one ``error:`` line naming every fragment; no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
