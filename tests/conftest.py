"""Shared fixtures: paths to ../shared/data and tiny simulated libraries."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from promoterlab.cli import app
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.sequence import LEFT_ADAPTER, RIGHT_ADAPTER
from promoterlab.data.simulate import write_library
from promoterlab.models import model_config
from promoterlab.precision import native_bf16

# Tests that request bf16 check what bf16 does where it is fast; elsewhere it is emulated (slowly).
needs_native_bf16 = pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU lacks native bf16 "
                                       "(AVX512-BF16/AMX, or oneDNN is capped below it by ONEDNN_MAX_CPU_ISA)")

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


def write_tata_library(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` DREAM-style promoters whose expression is set by one motif, a signal that a tiny
    model learns in a few epochs at any precision: half carry the simulator's strongest motif
    (a TATA box, forward strand, where it counts most), 8 bins above the others, plus N(0, 1)."""
    rng = np.random.default_rng(seed)
    inserts = np.array(list("ACGT"))[rng.integers(0, 4, (n, 80))]
    tata = rng.random(n) < 0.5
    for row, start in zip(np.flatnonzero(tata), rng.integers(50, 60, n)):
        inserts[row, start:start + 8] = list("TATAAAAG")
    expr = np.clip(4.0 + 8.0 * tata + rng.normal(0, 1, n), 0, 17)
    path.write_text("".join(f"{LEFT_ADAPTER}{''.join(insert)}{RIGHT_ADAPTER}\t{value:.4f}\n"
                            for insert, value in zip(inserts, expr)))
    return path


@pytest.fixture(scope="session")
def tata_library(tmp_path_factory) -> Path:
    """1,200 promoters of :func:`write_tata_library` in DREAM text format."""
    return write_tata_library(tmp_path_factory.mktemp("tata") / "library.txt", n=1200, seed=1)


def tiny_config(path: Path, seed: int = 0, epochs: int = 2, loss: str = "kl", width: float = 0.125,
                train_size: int | None = 1500, val_size: int = 500, name: str = "legnet", test_size="auto",
                **model_opts) -> RunConfig:
    """A run that trains in seconds on two CPU cores, in fp32 whatever ``auto`` would pick here."""
    return RunConfig(
        data=DataConfig(path=str(path), train_size=train_size, val_size=val_size, test_size=test_size),
        model=model_config(name, width=width, **model_opts),
        train=TrainConfig(loss=loss, epochs=epochs, batch_size=64, precision="32", accelerator="cpu", devices="1",
                          ensemble=1),
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


def invoke(*args: object, **kwargs):
    """``promoterlab ARGS`` in-process (typer's runner); keyword arguments go to the runner."""
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def assert_one_error(result, code: int, *fragments: str) -> str:
    """Exit ``code`` and exactly one ``error:`` line on stderr holding every fragment; no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output and "Errno" not in result.output
    return lines[0]


def assert_error(result, *fragments: str) -> None:
    """Exit 2 (bad usage or input) and exactly one ``error:`` line naming every fragment."""
    assert_one_error(result, 2, *fragments)


class FakeClock:
    """The clock of a budgeted run, for tests that must not depend on the machine's speed.

    :meth:`install` replaces ``time`` in the modules that read the clock for budgets and
    deadlines and the budget's probe of the step cost; time then passes only when a training
    step ends (``step`` seconds, times ``slowdown(epoch)``) and when a validation ends (``val``
    seconds). Pass :attr:`callback` to :func:`promoterlab.train`.
    """

    def __init__(self, step: float = 0.0, val: float = 0.0, slowdown=lambda epoch: 1.0,
                 probe: dict[float, float] | None = None):
        from lightning.pytorch.callbacks import Callback

        self.now, self.step, self.val, self.slowdown, self.probe = 1000.0, step, val, slowdown, probe
        clock = self

        class Tick(Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                clock.now += clock.step * clock.slowdown(trainer.current_epoch)

            def on_validation_end(self, trainer, pl_module):
                clock.now += clock.val

        self.callback = Tick()

    def perf_counter(self) -> float:
        return self.now

    def time_steps(self, model, *args, **kwargs) -> tuple[float, float]:
        """The probe: ``probe[width]`` (else ``step``) seconds per step, ``val`` per validation."""
        return (self.probe or {}).get(model.cfg.width, self.step), self.val

    def install(self, monkeypatch) -> "FakeClock":
        from types import SimpleNamespace

        from promoterlab.training import budget, module, plan, run

        for where in (run, budget, module, plan):
            monkeypatch.setattr(where, "time", SimpleNamespace(perf_counter=self.perf_counter))
        monkeypatch.setattr(plan, "time_steps", self.time_steps)
        return self


@pytest.fixture(autouse=True)
def _ctrl_c_restored():
    """Give Ctrl-C back after each test: Lightning ignores SIGINT after a KeyboardInterrupt in
    ``fit`` (so that a second Ctrl-C cannot break its teardown), and the processes a later test
    starts would inherit that and never see their Ctrl-C."""
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)
