"""The run folder: one trained model, or an ensemble of member runs. Every command and API
function that takes a trained model takes a :class:`Run`.

A **model run** is a folder holding ``model.pt`` (written last, only when training succeeded)
beside ``config.yaml``, ``summary.json`` and the other files named below. An **ensemble** is a
folder whose ``config.yaml`` trains several models (``train.ensemble`` > 1): its members are the
model runs ``seed=S/`` below it, and it is finished when its own ``summary.json`` exists and
every member holds ``model.pt``. Several folders, or a folder of runs (a sweep) or a glob
pattern, form an ensemble on the fly. Unfinished runs and ensembles are refused, saying what is
missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from promoterlab.config import RunConfig, budget_widths
from promoterlab.sequence import Layout
from promoterlab.files import atomic_path, read_yaml
from promoterlab.models import build_model
from promoterlab.models.ensemble import EnsembleModel
from promoterlab.objective import Objective

# The files of a run folder (this is the one place their names are spelled).
CONFIG = "config.yaml"
MODEL = "model.pt"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
BEST_CHECKPOINT = "best.ckpt"
LAST_CHECKPOINT = "last.ckpt"
BUDGET = "budget.json"
CURVES = "curves.png"
VAL_SCATTER = "val_scatter.png"
SPLIT = "split.npz"
CARD = "README.md"
TEST_PREDICTIONS = "test_predictions.tsv"
TEST_METRICS = "test_metrics.json"
DREAM_SCORE = "dream_score.json"
AXES = "axes.json"
CALIBRATION = "calibration.json"  # interval calibration (promoterlab.evaluation.calibration)
LOCK = ".lock"
# What a run that starts afresh clears (an interrupted run of the same config keeps them to resume).
TRAINING_FILES = (CONFIG, METRICS, BEST_CHECKPOINT, LAST_CHECKPOINT, MODEL, SUMMARY, BUDGET, CURVES, VAL_SCATTER,
                  SPLIT, CARD, TEST_PREDICTIONS, CALIBRATION)
MEMBER_PREFIX = "seed="
_GLOB_CHARS = set("*?[")


class RunError(ValueError):
    """A folder that is not a finished run or ensemble; the message says what was found."""


def member_dir(ensemble_dir: str | Path, seed: int) -> Path:
    """The folder of an ensemble's member trained with ``seed``."""
    return Path(ensemble_dir) / f"{MEMBER_PREFIX}{seed}"


def ensemble_members(folder: Path) -> list[Path] | None:
    """The member folders an ensemble folder trains (finished or not); None for other folders.

    Read from its ``config.yaml`` (``train.ensemble`` models from ``seed`` on), or, for
    ensembles trained before that field existed, from the ``members`` of its ``summary.json``.
    """
    config_path, summary_path = folder / CONFIG, folder / SUMMARY
    if (folder / MODEL).is_file() or not config_path.is_file():
        return None
    raw = read_yaml(config_path) or {}
    k = (raw.get("train") or {}).get("ensemble")
    if isinstance(k, int) and not isinstance(k, bool) and k > 1:
        seed = int(raw.get("seed", 0))
        return [member_dir(folder, seed + i) for i in range(k)]
    if summary_path.is_file():
        members = (json.loads(summary_path.read_text()) or {}).get("members")
        if isinstance(members, dict) and members:
            return [folder / name for name in members]
    return None


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a model run or an ensemble, finished or not."""
    return any((folder / name).is_file() for name in (MODEL, CONFIG, SUMMARY))


@dataclass(frozen=True)
class Run:
    """A trained model: one model run, or an ensemble of model runs.

    Attributes
    ----------
    members : tuple of Path
        The model-run folders (one for a single model).
    path : Path or None
        The folder that was named (a model run, an ensemble folder, or a folder of runs); None
        for an ensemble of several named folders.
    ensemble : bool
        Whether the predictions are the mean of several models (or of an ensemble folder's one
        member).
    """

    members: tuple[Path, ...]
    path: Path | None = None
    ensemble: bool = False

    @classmethod
    def open(cls, paths: str | Path | Sequence[str | Path]) -> "Run":
        """The run named by a folder (or its ``model.pt``), an ensemble folder, several folders,
        a folder of runs or a glob pattern.

        Raises
        ------
        FileNotFoundError
            A path that does not exist, or a pattern that matches nothing.
        RunError
            An unfinished run or ensemble, or a folder with no run in or below it.
        """
        given = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not given:
            raise RunError("no run given")
        members: list[Path] = []
        named: list[Path] = []
        ensemble_folder = False
        for item in given:
            for path in _expand(item):
                found, is_ensemble = _members_of(path)
                ensemble_folder = ensemble_folder or is_ensemble
                named.append(path)
                members.extend(run for run in found if run not in members)
        return cls(tuple(members), named[0] if len(named) == 1 else None, ensemble_folder or len(members) > 1)

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else ", ".join(str(m) for m in self.members)

    def describe(self) -> str:
        """What was opened, for the user: ``one model (runs/a)`` or ``an ensemble of 3 models (runs/e)``."""
        if not self.ensemble:
            return f"one model ({self.members[0]})"
        where = f" ({self.path})" if self.path is not None else ""
        return f"an ensemble of {len(self.members)} models{where}"

    def configs(self) -> list[RunConfig]:
        """Every member's saved config."""
        return [RunConfig.load(member / CONFIG) if (member / CONFIG).is_file() else _saved_model(member)[0]
                for member in self.members]

    @property
    def config(self) -> RunConfig:
        """The first member's config (every member shares its layout)."""
        return self.configs()[0]

    @property
    def layout(self) -> Layout:
        return self.config.data.layout

    def files(self) -> list[Path]:
        """The files a command reads from this run (so that no output may replace them)."""
        paths = ([self.path] if self.path else []) + list(self.members)
        return paths + [member / MODEL for member in self.members if member.is_dir()]

    def load_members(self, device: str = "cpu") -> list[tuple[nn.Module, RunConfig]]:
        """Every member's model (eval mode) and config; they must share a layout and objective."""
        loaded = [load_model(member, device) for member in self.members]
        check_compatible([config for _, config in loaded], [str(m) for m in self.members])
        return loaded

    def load(self, device: str = "cpu") -> tuple[nn.Module, RunConfig]:
        """The model (an :class:`~promoterlab.models.ensemble.EnsembleModel` of the members for an
        ensemble) in eval mode, and the first member's config."""
        loaded = self.load_members(device)
        if not self.ensemble:
            return loaded[0]
        return EnsembleModel([model for model, _ in loaded]).to(device).eval(), loaded[0][1]


def _expand(item: str | Path) -> list[Path]:
    path = Path(item)
    if path.exists():
        return [path]
    if _GLOB_CHARS & set(str(item)):
        matches = [Path(p) for p in sorted(glob.glob(str(item)))]
        if matches:
            return matches
        raise FileNotFoundError(f"{item}: matches no run folder")
    raise FileNotFoundError(f"{item}: no such run folder")


def _members_of(path: Path) -> tuple[list[Path], bool]:
    """The finished model runs ``path`` names, and whether it is an ensemble folder."""
    if path.is_file():  # a model file: the model.pt of a run folder, or one saved elsewhere
        return [path.parent if path.name == MODEL else path], False
    members = ensemble_members(path)
    if members is not None:
        missing = [m for m in members if not (m / MODEL).is_file()]
        if missing or not (path / SUMMARY).is_file():
            done = len(members) - len(missing)
            what = (f"{done} of {len(members)} members trained ({missing[0].name} has no {MODEL})" if missing
                    else f"its members are trained but its {SUMMARY} is missing")
            finished = " ".join(str(m) for m in members if m not in missing)
            hint = f"; or name finished members ({finished}) to use them alone" if finished and missing else ""
            raise RunError(f"{path}: unfinished ensemble: {what}; rerun the same train command to finish it{hint}")
        return members, True
    if (path / MODEL).is_file():
        return [path], False
    if (path / CONFIG).is_file():
        raise RunError(f"{path}: unfinished run: training did not complete (no {MODEL}); rerun the same train "
                       "command to resume it")
    found = runs_below(path)
    if not found:
        raise RunError(f"{path}: no trained model ({MODEL}) in it or in any folder below it")
    return [member for run in found for member in _members_of(run)[0]], False


def runs_below(root: Path, max_depth: int | None = None, finished: bool = True) -> list[Path]:
    """Run and ensemble folders below ``root`` (not ``root`` itself), without looking inside them.

    Parameters
    ----------
    max_depth : int, optional
        Look at most this many levels down.
    finished : bool
        Only finished ones (a model run with ``model.pt``; an ensemble with its ``summary.json``).
    """
    found: list[Path] = []

    def visit(folder: Path, depth: int) -> None:
        for child in sorted(p for p in folder.iterdir() if p.is_dir()):
            if is_run_folder(child):
                if not finished or _finished(child):
                    found.append(child)
            elif max_depth is None or depth < max_depth:
                visit(child, depth + 1)

    if root.is_dir():
        visit(root, 1)
    return found


def model_runs(root: str | Path, max_depth: int = 2) -> list[Path]:
    """Model runs whose training finished (their ``summary.json`` exists; the weights may have been
    left out of a copy, as in a committed study) at ``root`` or at most ``max_depth`` levels below
    it, an ensemble's members included: the rows of a table of runs (a sweep, an ensemble, one run)."""
    root = Path(root)
    if ensemble_members(root) is None and is_run_folder(root):
        return [root] if (root / SUMMARY).is_file() else []
    folders = [root] if ensemble_members(root) is not None else runs_below(root, max_depth, finished=False)
    found = []
    for folder in folders:
        members = ensemble_members(folder)
        found += [m for m in (members if members is not None else [folder]) if (m / SUMMARY).is_file()]
    return found


def _finished(folder: Path) -> bool:
    members = ensemble_members(folder)
    if members is None:
        return (folder / MODEL).is_file()
    return (folder / SUMMARY).is_file() and all((m / MODEL).is_file() for m in members)


def check_compatible(configs: Sequence[RunConfig], names: Sequence[str]) -> Layout:
    """The layout every config shares; models of one ensemble also share their objective.

    Raises
    ------
    RunError
        Naming the first run whose layout or objective differs from the first run's, and how.
    """
    if not configs:
        raise RunError("an ensemble needs at least one model")
    first = configs[0]
    for name, config in zip(names[1:], configs[1:]):
        fields = [f for f in ("seq_len", "left_adapter", "upstream")
                  if getattr(config.data.layout, f) != getattr(first.data.layout, f)]
        if fields:
            raise RunError(f"runs {names[0]} and {name} lay sequences out differently ({', '.join(fields)} "
                           "differ); an ensemble's models must share a layout")
        if Objective.of(config) != Objective.of(first):
            raise RunError(f"runs {names[0]} and {name} predict differently (loss {first.train.loss} and "
                           f"{config.train.loss}); an ensemble's models must share their objective")
    return first.data.layout


def save_model(model: nn.Module, config: RunConfig, folder: str | Path) -> Path:
    """Write ``folder/model.pt``: plain ``{'config', 'state_dict'}``, atomically; return its path."""
    path = Path(folder) / MODEL
    with atomic_path(path) as tmp:
        torch.save({"config": config.to_dict(), "state_dict": model.state_dict()}, tmp)
    return path


def _saved_model(folder: Path) -> tuple[RunConfig, dict, Path]:
    path = folder / MODEL if folder.is_dir() else folder
    if not path.exists():
        raise RunError(f"{path}: no trained model here (expected a run folder with {MODEL})")
    if not path.is_file():
        raise RunError(f"{path}: not a model file")
    try:
        # weights_only: model.pt holds only plain types and tensors, so nothing in it can run code.
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # cut short, or not written by torch.save: errors of many types and no help
        raise RunError(f"{path}: not a promoterlab model file, or cut short") from None
    if not isinstance(saved, dict) or not {"config", "state_dict"} <= set(saved):
        raise RunError(f"{path}: not a promoterlab model file (expected a config and a state_dict)")
    try:
        return RunConfig.from_dict(saved["config"]), saved["state_dict"], path
    except (TypeError, ValueError) as err:
        raise RunError(f"{path}: its config is not valid ({err})") from None


def load_model(folder: str | Path, device: str = "cpu") -> tuple[nn.Module, RunConfig]:
    """The model of one model-run folder (or a ``model.pt`` path) in eval mode, and its config."""
    config, state, path = _saved_model(Path(folder))
    try:
        model = build_model(config.model, Objective.of(config).n_outputs)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"{path}: model and config do not fit ({first})") from None
    return model.to(device).eval(), config


def load_run(paths: "Run | str | Path | Sequence[str | Path]", device: str = "cpu") -> tuple[nn.Module, RunConfig]:
    """The model and config of a run or ensemble (:meth:`Run.open`, then :meth:`Run.load`)."""
    return (paths if isinstance(paths, Run) else Run.open(paths)).load(device)


def saved_config_matches(folder: str | Path, config: RunConfig) -> bool:
    """Whether ``folder/config.yaml`` is missing or was written for ``config``.

    The package version and ``data.store`` (where the same sequences are read from) are
    ignored, and a setting left ``"auto"`` in ``config`` matches the value the saved run
    resolved it to (a time budget's narrower width included).
    """
    saved = Path(folder) / CONFIG
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


@contextlib.contextmanager
def writing(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` (created if missing) for one process writing a run into it.

    An exclusive, non-blocking ``flock`` on the folder itself: nothing is written, and the kernel
    releases it when the process ends, however it ends. Only the first rank of a multi-process run
    takes it (the other ranks run the same command and write nothing).

    Raises
    ------
    RunError
        If another process is writing a run into ``folder``.
    """
    folder = Path(folder)
    if any(os.environ.get(name, "0") != "0" for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID")):
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{folder}: another process is writing a run into this folder; wait for it to "
                           "finish or choose another -o/--output") from None
        yield
    finally:
        os.close(handle)
