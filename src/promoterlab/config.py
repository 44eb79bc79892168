"""Typed run configuration, saved next to every run as ``config.yaml``."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promoterlab.data.augment import parse_augment
from promoterlab.config_checks import build_section, check_keys, section_mapping, shown_value
from promoterlab.files import read_yaml, write_text_atomic
from promoterlab.models import LegNetConfig, model_config
from promoterlab.objective import LOSSES
from promoterlab.precision import normalize_precision
from promoterlab.sequence import Layout


SCHEDULES = ("onecycle", "plateau")  # learning-rate schedules (TrainConfig.schedule)
NARROWEST_WIDTH = 0.125  # the narrowest model a time budget trains (TrainConfig.fit_width)
# Minutes the default `train` (no --epochs, no --max-time) may take, shared by an ensemble's
# models: a small table trains on a 2-core laptop within a quarter of an hour (BENCHMARKS.md).
DEFAULT_TIME_BUDGET = 12.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_count(name: str, value: Any, low: int, auto: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``low`` (or ``"auto"`` where allowed)."""
    if auto and value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}{' or auto' if auto else ''}, got {value!r}")


def _check_number(name: str, value: Any, low: float, high: float | None = None, inclusive: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number above ``low`` (and below ``high``)."""
    ok = _is_number(value) and math.isfinite(value) and (value >= low if inclusive else value > low)
    if ok and high is not None:
        ok = value < high
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and < {high:g}" if high is not None else "")
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")


def budget_widths(width: float) -> list[float]:
    """Widths a time budget may train (``TrainConfig.fit_width``), widest first: ``width``, then
    halved while at least :data:`NARROWEST_WIDTH` (a model already narrower keeps its width)."""
    widths = [width]
    while widths[-1] / 2 >= NARROWEST_WIDTH:
        widths.append(widths[-1] / 2)
    return widths


def time_budget(train: "TrainConfig") -> float | None:
    """The minutes a run may take: ``max_time``, or for ``"auto"`` :data:`DEFAULT_TIME_BUDGET`
    unless the run's length is set otherwise (``epochs``, the plateau schedule, fine-tuning epochs,
    SWA) or it trains on several processes; None: no budget."""
    if train.max_time != "auto":
        return train.max_time
    own_length = (train.epochs != "auto" or train.schedule == "plateau" or train.finetune_epochs
                  or str(train.averaging).strip().lower().startswith("swa"))
    several = (str(train.strategy).startswith("ddp") or train.num_nodes > 1
               or str(train.devices).replace(" ", "") not in ("auto", "1"))
    return None if own_length or several else DEFAULT_TIME_BUDGET


def averaging_spec(spec: str) -> tuple[str, float | int] | None:
    """``("ema", decay)`` or ``("swa", epochs)`` of ``"ema[:DECAY]"`` (default 0.999) or
    ``"swa[:EPOCHS]"`` (default 5); None for ``"none"``.

    Raises
    ------
    ValueError
        Naming the unknown kind or the bad value.
    """
    kind, colon, value = (part.strip() for part in spec.strip().lower().partition(":"))
    if kind in ("", "none") and not colon:
        return None
    if kind not in ("ema", "swa"):
        raise ValueError(f"average: unknown weight averaging {spec.strip()!r}; use none, ema[:DECAY] or "
                         "swa[:EPOCHS]")
    if colon and not value:
        raise ValueError(f"average: no value after '{kind}:'")
    if kind == "ema":
        try:
            decay = float(value) if colon else 0.999
        except ValueError:
            raise ValueError(f"average: ema takes a number in [0, 1), got {value!r}") from None
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"average: ema decay must be in [0, 1), got {decay!r}")
        return kind, decay
    try:
        epochs = int(value) if colon else 5
    except ValueError:
        raise ValueError(f"average: swa takes a whole number of epochs >= 1, got {value!r}") from None
    if epochs < 1:
        raise ValueError(f"average: swa epochs must be a whole number >= 1, got {epochs!r}")
    return kind, epochs


@dataclass
class DataConfig:
    """Where the data comes from and how it is laid out and split."""

    path: str | None = None
    seq_col: str | None = None
    target_col: str | None = None
    group_col: str | None = None
    drop_missing: bool = False
    train_size: int | None = None
    val_size: int | str = "auto"  # a tenth of the rows, 256 to 2,048 (data.splits.auto_val_size)
    # Held out before validation is drawn and never used to train, choose a checkpoint or stop:
    # "auto" (the validation rule on all rows), a count, a fraction in (0, 1), or 0 for none.
    test_size: int | float | str = "auto"
    # A measured file to test on instead of a held-out split (test_size is then 0).
    test_path: str | None = None
    seq_len: int = Layout().seq_len  # the layout's fields, with its defaults
    left_adapter: str = Layout().left_adapter
    upstream: str = Layout().upstream
    singleton_channel: bool = True
    # Validation inputs carry the data's is_singleton flags, as LegNet's DREAM code validates
    # (the flag is computed on the whole training file before the split); False sets them to 0,
    # as at prediction time. Test sets and new sequences always get 0.
    val_singleton: bool = True
    # [low, high]: clip training targets (not validation ones) into this range, e.g. [0, 17]
    # for libraries whose normalised values slightly overshoot the sort-seq bin scale.
    clip_targets: list[float] | None = None
    # Where training reads the encoded sequences: "auto" (the cached sequence store for tables of
    # STORE_AUTO_BYTES or more, else in memory), "on" (always the cached store), "off" (in
    # memory), or the folder of a store made by `promoterlab data encode`. Batches are the same.
    store: str = "auto"
    # Seed of the train/validation split; None: the run's seed. The members of an ensemble
    # (`train --ensemble K`) share the first member's split, so the ensemble is validated on
    # sequences that none of its members trained on.
    split_seed: int | None = None

    def _check_test(self) -> None:
        if isinstance(self.test_path, os.PathLike):
            self.test_path = os.fspath(self.test_path)
        if self.test_path is not None and (not isinstance(self.test_path, str) or not self.test_path.strip()):
            raise ValueError(f"test_path must be a file name, got {self.test_path!r}")
        size = self.test_size
        if isinstance(size, float) and not isinstance(size, bool) and size.is_integer() and size >= 1:
            self.test_size = size = int(size)
        fraction = isinstance(size, float) and 0 < size < 1
        count = isinstance(size, int) and not isinstance(size, bool) and size >= 0
        if not (size == "auto" or fraction or count):
            raise ValueError(f"test_size must be auto, a number of rows >= 0 or a fraction between 0 and 1, "
                             f"got {size!r}")
        if self.test_path:
            if size not in ("auto", 0):
                raise ValueError(f"test_size {size!r} and test_path {self.test_path}: give a held-out test size or "
                                 "a test file, not both")
            self.test_size = 0

    @property
    def layout(self) -> Layout:
        """The run's :class:`~promoterlab.sequence.Layout` (saved as the three fields above)."""
        return Layout(self.seq_len, self.left_adapter, self.upstream)

    def __post_init__(self) -> None:
        # Every message starts with the field name (the command line turns it into its option).
        if self.train_size is not None:
            _check_count("train_size", self.train_size, 1)
        _check_count("val_size", self.val_size, 1, auto=True)
        self._check_test()
        _check_count("seq_len", self.seq_len, 1)
        if isinstance(self.store, bool):  # YAML 1.1 reads a bare on/off as a boolean
            self.store = "on" if self.store else "off"
        if isinstance(self.store, os.PathLike):
            self.store = os.fspath(self.store)
        if not isinstance(self.store, str) or not self.store.strip():
            raise ValueError(f"store must be auto, on, off or the folder of a sequence store, got {self.store!r}")
        if self.clip_targets is not None:
            bounds = list(self.clip_targets) if isinstance(self.clip_targets, (list, tuple)) else []
            if (len(bounds) != 2 or not all(_is_number(b) and math.isfinite(b) for b in bounds)
                    or not bounds[0] < bounds[1]):
                raise ValueError(f"clip_targets must be LOW,HIGH with LOW < HIGH, got {self.clip_targets!r}")


@dataclass
class TrainConfig:
    """Optimisation recipe (LegNet's DREAM 2022 defaults) and Lightning hardware settings.

    ``"auto"`` values are resolved for the machine and the data when training starts
    (:func:`promoterlab.training.hardware.resolve_train_config`): ``max_time`` is
    :data:`DEFAULT_TIME_BUDGET` minutes unless the run's length is given otherwise
    (:func:`time_budget`); ``epochs`` is what fits the budget, or ``DEFAULT_EPOCHS`` without
    one; ``batch_size`` is 128
    on a CPU (cache-sized; the recipe's 1,024 runs at half the speed there) and 1,024 on a GPU
    for large data; ``precision`` (:mod:`promoterlab.precision`: ``auto``, ``32``, ``bf16`` or
    ``16``) is ``bf16`` where the hardware computes bf16 natively (AVX512-BF16/AMX CPUs, Ampere+
    GPUs), else ``32``. Lightning's spellings in the config files of earlier runs
    (``bf16-mixed``, ``32-true``, ``16-mixed``) are read as ``bf16``, ``32`` and ``16``.

    ``augment`` (``"evoaug[:KEY=VALUE,...]"``, :func:`promoterlab.data.augment.parse_augment`)
    augments the training inserts for ``epochs`` epochs; ``finetune_epochs`` more epochs then
    train on unaugmented data at a constant ``max_lr / 10`` (EvoAug's fine-tuning step, at
    the authors' 10x lower learning rate). ``averaging`` (``"ema[:DECAY]"`` or
    ``"swa[:EPOCHS]"``) makes the saved model the final weight average instead of the best
    validation epoch.

    ``schedule`` is ``"onecycle"`` (LegNet's: OneCycle over all ``epochs``) or ``"plateau"``
    (:mod:`promoterlab.training.plateau`: warm up, hold ``max_lr`` until validation Pearson has
    not improved for ``patience`` epochs, then anneal over ``cooldown_epochs`` and stop;
    ``epochs`` is the cap), for runs trained to convergence.

    ``fit_width``: a ``max_time`` run whose epochs are ``"auto"`` trains a narrower model (the
    width halved, down to 1/8) when the budget fits fewer than 400 steps of the model asked for
    (:mod:`promoterlab.training.budget`); the saved config then holds the width trained, with
    ``fit_width`` false. The command line turns it off when ``--model`` or ``--width`` is given.
    """

    loss: str = "kl"
    epochs: int | str = "auto"
    batch_size: int | str = "auto"
    max_lr: float = 0.005
    weight_decay: float = 0.01
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    rc_augment: bool = True
    max_time: float | str | None = "auto"
    patience: int | None = None
    precision: str = "auto"
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    eval_batch_size: int | str = "auto"
    augment: str = "none"
    finetune_epochs: int = 0
    averaging: str = "none"
    schedule: str = "onecycle"
    cooldown_epochs: int = 4
    fit_width: bool = True
    # Models trained on one split with seeds seed, seed + 1, ... ("auto": 3 for training sets
    # of at most 20,480 sequences without a time budget, else 1; resolved before training).
    ensemble: int | str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        # Every message starts with the field name (the command line turns it into its option).
        _check_count("epochs", self.epochs, 1, auto=True)
        _check_count("batch_size", self.batch_size, 1, auto=True)
        _check_count("eval_batch_size", self.eval_batch_size, 1, auto=True)
        _check_number("max_lr", self.max_lr, low=0.0)
        _check_number("weight_decay", self.weight_decay, low=0.0, inclusive=True)
        _check_number("pct_start", self.pct_start, low=0.0, high=1.0)
        _check_number("div_factor", self.div_factor, low=0.0)
        _check_number("final_div_factor", self.final_div_factor, low=0.0)
        if self.max_time not in (None, "auto"):
            _check_number("max_time", self.max_time, low=0.0)
        if self.patience is not None:
            _check_count("patience", self.patience, 1)
        _check_count("num_nodes", self.num_nodes, 1)
        _check_count("ensemble", self.ensemble, 1, auto=True)
        if not isinstance(self.fit_width, bool):
            raise ValueError(f"fit_width must be true or false, got {self.fit_width!r}")
        self.precision = normalize_precision(self.precision, warn=False)
        if self.precision == "16" and self.accelerator == "cpu":
            raise ValueError("precision 16 (fp16 mixed) runs on a GPU only; with accelerator cpu use bf16 or 32")
        devices = str(self.devices).replace(" ", "")
        ids = re.fullmatch(r"\[?[0-9]+(,[0-9]+)*,?\]?", devices) and devices != "0"  # "0,": GPU 0; 0: none
        if not (devices == "auto" or re.fullmatch(r"-1|[1-9][0-9]*", devices) or ids):
            raise ValueError(f"devices must be auto, a count >= 1, -1 (all) or device ids like 0,1; "
                             f"got {self.devices!r}")
        if not isinstance(self.augment, str):
            raise ValueError(f"augment must be evoaug[:KEY=VALUE,...] or none, got {self.augment!r}")
        parse_augment(self.augment)  # its messages start with "augment:"
        _check_count("finetune_epochs", self.finetune_epochs, 0)
        if self.finetune_epochs and self.max_time not in (None, "auto"):
            raise ValueError("finetune_epochs cannot be combined with max_time (the budget plans the epochs "
                             "of one schedule); give --epochs and --finetune-epochs without --max-time")
        if not isinstance(self.averaging, str):
            raise ValueError(f"averaging must be none, ema[:DECAY] or swa[:EPOCHS], got {self.averaging!r}")
        try:
            averaging_spec(self.averaging)
        except ValueError as err:
            raise ValueError("averaging:" + str(err).removeprefix("average:")) from None
        self._check_schedule()

    def _check_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        _check_count("cooldown_epochs", self.cooldown_epochs, 1)
        if self.schedule != "plateau":
            return
        if not self.patience:
            raise ValueError("schedule plateau anneals when validation stops improving: give patience "
                             "(--patience N)")
        budget = self.max_time not in (None, "auto")
        clashes = [name for name, on in (("max_time", budget), ("finetune_epochs", self.finetune_epochs),
                                         ("averaging swa", self.averaging.strip().lower().startswith("swa")))
                   if on]
        if clashes:
            raise ValueError(f"schedule plateau decides the run's length from validation; it cannot be "
                             f"combined with {' or '.join(clashes)}, which need the length in advance")


@dataclass
class RunConfig:
    """Everything that determines a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: LegNetConfig = field(default_factory=LegNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | Path | None = None) -> "RunConfig":
        """A config from its nested dict (``config.yaml``'s data).

        Raises
        ------
        ValueError
            Naming ``source`` (when given), the section and the key: an unknown key (with the
            closest known one, or all of them), a section that is not a mapping, a value of the
            wrong type, or a value the config's own checks refuse.
        """
        prefix = f"{source}: " if source is not None else ""
        try:
            return cls._from_dict(raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{prefix}{err}") from None

    @classmethod
    def _from_dict(cls, raw: Any) -> "RunConfig":
        if not isinstance(raw, dict):
            raise ValueError(f"a config is a mapping with the keys {', '.join(_TOP_LEVEL)}, not {shown_value(raw)}")
        raw = dict(raw)
        check_config_keys(raw)
        sections = {name: section_mapping(name, raw.pop(name, None)) for name in ("data", "train", "model")}
        if raw.get("version") and _version_tuple(raw["version"]) < (0, 2):
            # Saved before test splits, ensemble configs and the default time budget existed: one
            # model, without a test split, trained for its epochs.
            sections["data"].setdefault("test_size", 0)
            sections["train"].setdefault("ensemble", 1)
            sections["train"].setdefault("max_time", None)
        data = build_section("data", DataConfig, sections["data"])
        train = build_section("train", TrainConfig, sections["train"])
        model_raw = sections["model"]
        name = model_raw.pop("name", "legnet")
        if not isinstance(name, str):
            raise ValueError(f"model.name must be a registered model name, not {shown_value(name)}")
        model = build_section("model", lambda **values: model_config(name, **values), model_raw,
                              type(model_config(name)))
        seed = raw.pop("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {shown_value(seed)}")
        return cls(data=data, model=model, train=train, seed=seed, version=str(raw.pop("version", "") or ""))

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """Read a ``config.yaml`` (:func:`promoterlab.files.read_yaml`); every error names the file.

        Raises
        ------
        ValueError
            :class:`~promoterlab.files.InputError` for a file that cannot be read or is not
            YAML (with the line), else the errors of :meth:`from_dict`, naming ``path``.
        """
        return cls.from_dict(read_yaml(path) or {}, source=path)


_TOP_LEVEL = ("data", "model", "train", "seed", "version")


def check_config_keys(raw: dict[str, Any]) -> None:
    """Check the keys of a nested config dict without building it: the top-level keys, that each
    section is a mapping, and the keys of ``data`` and ``train`` (those of ``model`` depend on the
    model, which a sweep may set later).

    Raises
    ------
    ValueError
        As :meth:`RunConfig.from_dict` does (without the file).
    """
    sections = _section_fields()
    check_keys("", raw, _TOP_LEVEL, sections)
    for name, fields in sections.items():
        check_keys(name, section_mapping(name, raw.get(name)), fields, sections)
    section_mapping("model", raw.get("model"))


def _section_fields() -> dict[str, list[str]]:
    return {"data": [f.name for f in dataclasses.fields(DataConfig)],
            "train": [f.name for f in dataclasses.fields(TrainConfig)]}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])


def replace_fields(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` ignoring ``None`` values (unset command-line options)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
