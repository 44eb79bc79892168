"""Experiment specs: fixed settings + axes (a grid of runs) or a search space (for ``tune``).

A spec is a YAML file::

    name: seed_study
    base:                        # fixed settings, nested like config.yaml
      data: {path: pool.tsv.gz, seq_col: seq, target_col: el_combined, group_col: group}
      train: {epochs: 20, batch_size: 256}
    axes:                        # the grid: every combination is one run
      model: [legnet, legnet-lstm]
      train_size: [5120, 10240]
      seed: [0, 1, 2]
    test: {path: test.tsv.gz, seq_col: seq, target_col: el_combined}   # optional
    budgets:                     # named overrides, chosen with --budget
      small: {model.width: 0.25, train.epochs: 4}
      narrow:                    # a budget may also replace dimensions of the search space
        model.width: 0.25
        search: {model.hidden: {choices: [16, 32, 64]}}
    search:                      # for `promoterlab tune`
      model.hidden: {choices: [64, 128, 256]}
      train.weight_decay: {low: 1.0e-4, high: 1.0e-2, log: true}
    pruning: {first_epoch: 1, startup_trials: 3}   # tune's median pruner (the default); false: none

A DREAM 2022 test set adds ``dream_leaderboard: public_leaderboard_ids`` (the folder of the
official public-leaderboard JSONs) to ``test``: every run is then also scored with the
challenge's weighted Pearson and Spearman scores (``dream_score.json``).

Keys of ``axes``, ``budgets`` and ``search`` name any config field: ``section.field``
(``data.``, ``model.``, ``train.``), a bare field name of ``data`` or ``train``, ``seed``, or
``model`` (the registered model name); other bare names are model hyperparameters. Relative
paths are resolved against the spec file's folder.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from promoterlab.config import DataConfig, RunConfig, TrainConfig, check_config_keys
from promoterlab.experiments.naming import slug
from promoterlab.files import read_yaml

SECTIONS = {"data": {f.name for f in fields(DataConfig)}, "train": {f.name for f in fields(TrainConfig)}}
# Median pruning: a trial is stopped when its validation Pearson falls below the median of earlier
# trials at the same epoch, from first_epoch on and once startup_trials trials finished.
DEFAULT_PRUNING = {"first_epoch": 1, "startup_trials": 3}
_EXAMPLES = {"base": "e.g. base: {data: {path: train.txt}}", "axes": "e.g. axes: {seed: [0, 1]}",
             "budgets": "e.g. budgets: {small: {train.epochs: 2}}",
             "search": "e.g. search: {model.width: {choices: [0.5, 1]}}"}


@dataclass
class HeldOutSet:
    """A measured file every run of a sweep is evaluated on."""

    path: str
    seq_col: str | None = None
    target_col: str | None = None
    dream_leaderboard: str | None = None


@dataclass
class Spec:
    """A parsed experiment spec (see the module docstring)."""

    name: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    test: HeldOutSet | None = None
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: str | None = None
    pruning: dict[str, int] | None = field(default_factory=lambda: dict(DEFAULT_PRUNING))

    def config(self, values: dict[str, Any]) -> RunConfig:
        """The run config of ``base`` with ``values`` (axis or search values) applied."""
        raw = copy.deepcopy(self.base)
        for key, value in values.items():
            set_field(raw, key, value)
        return RunConfig.from_dict(raw)

    def grid(self) -> list[tuple[str, dict[str, Any], RunConfig]]:
        """Every combination of the axes as ``(run name, axis values, config)``, in spec order."""
        names = list(self.axes)
        runs = []
        for combo in itertools.product(*(self.axes[name] for name in names)):
            values = dict(zip(names, combo))
            runs.append((run_name(values), values, self.config(values)))
        return runs

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "budget": self.budget, "base": self.base, "axes": self.axes}
        if self.test:
            out["test"] = self.test.__dict__
        if self.search:
            out["search"] = self.search
            out["pruning"] = self.pruning if self.pruning is not None else False
        return out


def resolve_key(key: str) -> tuple[str | None, str]:
    """``(section, field)`` of a spec key; section ``None`` means a top-level field (``seed``)."""
    if key == "seed":
        return None, "seed"
    if key == "model":
        return "model", "name"
    if "." in key:
        section, name = key.split(".", 1)
        if section not in ("data", "train", "model"):
            raise ValueError(f"unknown config section {section!r} in key {key!r} (data, train or model)")
        if section in SECTIONS and name not in SECTIONS[section]:
            raise ValueError(f"{section} has no field {name!r}; fields: {', '.join(sorted(SECTIONS[section]))}")
        return section, name
    for section, names in SECTIONS.items():
        if key in names:
            return section, key
    return "model", key


def set_field(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (see :func:`resolve_key`) in a nested config dict."""
    section, name = resolve_key(key)
    target = raw if section is None else raw.setdefault(section, {})
    target[name] = value


def run_name(values: dict[str, Any]) -> str:
    """Folder name of a run, e.g. ``model=legnet__train_size=5120__seed=0``."""
    parts = [f"{key}={value}" for key, value in values.items()]
    return slug("__".join(parts)) or "run"


def load_spec(path: str | Path, budget: str | None = None, data_dir: str | Path | None = None) -> Spec:
    """Read a spec file, apply the named budget and resolve its data paths (:func:`resolve_data_path`:
    ``data:NAME/PATH`` in the data directory ``data_dir``, ``simulate:N[:SEED]``, or relative to the
    spec's folder).

    Raises
    ------
    ValueError
        On an unknown budget, key or section, or a malformed spec (message names the file).
    """
    path = Path(path)
    raw = read_yaml(path) or {}
    if not raw:
        raise ValueError(f"{path}: the spec is empty; it needs at least base (with data.path) and axes")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a spec is a mapping with keys name, base, axes, test, budgets, search")
    unknown = set(raw) - {"name", "base", "axes", "test", "budgets", "search", "pruning"}
    if unknown:
        raise ValueError(f"{path}: unknown spec keys {sorted(unknown)}")
    try:
        for key in ("base", "axes", "budgets", "search"):
            if raw.get(key) is not None and not isinstance(raw[key], dict):
                raise ValueError(f"{key} must be a mapping ({_EXAMPLES[key]}), not {raw[key]!r}")
        base = copy.deepcopy(raw.get("base") or {})
        try:
            check_config_keys(base)
        except ValueError as err:
            raise ValueError(f"base: {err}") from None
        budgets = raw.get("budgets") or {}
        if budget is not None:
            if budget not in budgets:
                raise ValueError(f"no budget {budget!r}; this spec has {sorted(budgets) or 'none'}")
            if not isinstance(budgets[budget], dict):
                raise ValueError(f"budget {budget!r} must map keys to values, not {budgets[budget]!r}")
            for key, value in budgets[budget].items():
                if key not in ("search", "pruning"):
                    set_field(base, key, value)
        data = base.setdefault("data", {})
        # One model per run (the seeds are an axis); a spec's test set replaces a held-out split.
        base.setdefault("train", {}).setdefault("ensemble", 1)
        if raw.get("test"):
            data.setdefault("test_size", 0)
        if data.get("path"):
            data["path"] = resolve_data_path(path, data["path"], data_dir)
        axes = {key: list(values) if isinstance(values, list) else [values]
                for key, values in (raw.get("axes") or {}).items()}
        for key, values in axes.items():
            resolve_key(key)
            if not values:
                raise ValueError(f"axis {key!r} has no values")
        if not data.get("path") and ("data", "path") not in {resolve_key(key) for key in axes}:
            raise ValueError("no training data: set base.data.path (relative to the spec's folder)")
        search = dict(raw.get("search") or {})
        if budget is not None and "search" in budgets[budget]:
            if not isinstance(budgets[budget]["search"], dict):
                raise ValueError(f"budget {budget!r}: search must map keys to dimensions")
            search.update(budgets[budget]["search"])
        for key in search:
            resolve_key(key)
        pruning = raw.get("pruning", DEFAULT_PRUNING)
        if budget is not None and "pruning" in budgets[budget]:
            pruning = budgets[budget]["pruning"]
        pruning = _pruning(pruning)
        test = None
        if raw.get("test"):
            known = [f.name for f in fields(HeldOutSet)]
            unknown = [key for key in raw["test"] if key not in known] if isinstance(raw["test"], dict) else []
            if unknown:
                raise ValueError(f"test has no setting {unknown[0]!r}; its settings are {', '.join(known)}")
            if not isinstance(raw["test"], dict) or "path" not in raw["test"]:
                raise ValueError(f"test must be a mapping with a path (e.g. test: {{path: test.txt}}), "
                                 f"not {raw['test']!r}")
            test = HeldOutSet(**raw["test"])
            test.path = resolve_data_path(path, test.path, data_dir)
            if test.dream_leaderboard:
                test.dream_leaderboard = resolve_data_path(path, test.dream_leaderboard, data_dir)
        spec = Spec(name=str(raw.get("name") or path.stem), base=base, axes=axes, test=test,
                    search=search, budget=budget, pruning=pruning)
        spec.grid()  # fail now on a bad setting in any combination
    except (AttributeError, TypeError, ValueError) as err:  # AttributeError: a list where a mapping belongs
        raise ValueError(f"{path}: {err}") from None
    return spec


def _pruning(value: Any) -> dict[str, int] | None:
    """The median pruner's settings (``None``: no pruning) from a spec's ``pruning`` value."""
    if value is False or value is None:
        return None
    if value is True:
        return dict(DEFAULT_PRUNING)
    if not isinstance(value, dict) or set(value) - set(DEFAULT_PRUNING):
        raise ValueError(f"pruning must be false or a mapping with keys {sorted(DEFAULT_PRUNING)}; got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()):
        raise ValueError(f"pruning: {value!r}: values are whole numbers >= 0")
    return {**DEFAULT_PRUNING, **value}


def resolve_data_path(spec_path: Path, data_path: str, data_dir: str | Path | None = None) -> str:
    """Where a spec's data path points.

    - ``data:NAME/PATH``: ``PATH`` in the folder of dataset ``NAME`` in the data directory
      (``data_dir``, else ``$PROMOTERLAB_DATA``, else ``~/.cache/promoterlab``; see
      ``promoterlab data fetch NAME``), so that a spec runs wherever its data was fetched;
    - ``simulate:N[:SEED]``: a library of ``N`` simulated promoters (the demo's simulator, seed 0 by
      default), written once into ``DATA_DIR/simulated/`` and reused;
    - anything else: a path, relative to the spec's folder.
    """
    from promoterlab.datasets import resolve_data_dir

    text = str(data_path)
    if text.startswith("data:"):
        return str(resolve_data_dir(data_dir) / text.removeprefix("data:").lstrip("/"))
    if text.startswith("simulate:"):
        parts = text.removeprefix("simulate:").split(":")
        if not 1 <= len(parts) <= 2 or not all(part.isdigit() for part in parts):
            raise ValueError(f"{text}: a simulated library is simulate:N or simulate:N:SEED")
        n, seed = int(parts[0]), int(parts[1]) if len(parts) == 2 else 0
        path = resolve_data_dir(data_dir) / "simulated" / f"library_n{n}_seed{seed}.txt"
        if not path.is_file():
            from promoterlab.data.simulate import write_library

            path.parent.mkdir(parents=True, exist_ok=True)
            write_library(path, n=n, seed=seed)
        return str(path)
    candidate = Path(text).expanduser()
    return str(candidate if candidate.is_absolute() else (spec_path.parent / candidate).resolve())
