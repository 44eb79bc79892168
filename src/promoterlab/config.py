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
from promoterlab.data.layout import LEFT_ADAPTER, PLASMID_UPSTREAM, Layout
from promoterlab.files import write_text_atomic
from promoterlab.models import LegNetConfig, model_config
from promoterlab.objective import LOSSES
from promoterlab.transfer_options import freeze_spec, teacher_extra_spec


# Lightning's precision settings ("auto": chosen for the hardware).
PRECISIONS = ("auto", "32", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "64-true",
              "16", "bf16")
SCHEDULES = ("onecycle", "plateau")  # learning-rate schedules (TrainConfig.schedule)
NARROWEST_WIDTH = 0.125  # the narrowest model a time budget trains (TrainConfig.fit_width)


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
    seq_len: int = 150
    left_adapter: str = LEFT_ADAPTER
    upstream: str = PLASMID_UPSTREAM
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
        """The run's :class:`~promoterlab.data.layout.Layout` (saved as the three fields above)."""
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
    (:func:`promoterlab.training.hardware.resolve_train_config`): ``epochs`` is
    ``DEFAULT_EPOCHS``, or what fits ``max_time`` when a budget is given; ``batch_size`` is 128
    on a CPU (cache-sized; the recipe's 1,024 runs at half the speed there) and 1,024 on a GPU
    for large data; ``precision`` is ``bf16-mixed`` where the hardware computes bf16 natively
    (AVX512-BF16/AMX CPUs, Ampere+ GPUs), else ``32``.

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

    ``init_from`` fine-tunes (:mod:`promoterlab.training.transfer`) and ``teacher`` distils
    (:mod:`promoterlab.training.distill`); BENCHMARKS.md "Fine-tuning and distillation" says
    when each helped.
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
    max_time: float | None = None
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
    # Fine-tuning (promoterlab.training.transfer): start from the weights of a run folder (an
    # ensemble's member of the same seed) or a registered pretrained model (`promoterlab models
    # list`); the architecture is then the init run's. None: random initialisation.
    init_from: str | None = None
    # A run with init_from peaks at max_lr times this; training saves max_lr scaled and this 1.
    init_lr_scale: float = 0.2
    # Parameters kept fixed: none; blocks:N (the stem and the first N blocks, the whole run);
    # head:EPOCHS (only the head trains for the first EPOCHS epochs, then every layer).
    freeze: str = "none"
    # Distillation (promoterlab.training.distill): a run, ensemble or registered model whose
    # predictions are mixed into the training labels with teacher_weight (1: the teacher's alone).
    teacher: str | None = None
    teacher_weight: float = 0.5
    # Sequences labelled by the teacher alone, added to the training set: none, mutate[:RATE]
    # (that fraction of each training insert redrawn) or shuffle (each insert's bases shuffled),
    # teacher_copies per training sequence, drawn once; and the sequences of teacher_sequences.
    teacher_extra: str = "none"
    teacher_copies: int = 1
    teacher_sequences: str | None = None
    # What init_from and teacher were when training started ("PATH sha256:HASH"), for the
    # record; set by training.
    init_resolved: str | None = None
    teacher_resolved: str | None = None

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
        if self.max_time is not None:
            _check_number("max_time", self.max_time, low=0.0)
        if self.patience is not None:
            _check_count("patience", self.patience, 1)
        _check_count("num_nodes", self.num_nodes, 1)
        _check_count("ensemble", self.ensemble, 1, auto=True)
        if not isinstance(self.fit_width, bool):
            raise ValueError(f"fit_width must be true or false, got {self.fit_width!r}")
        if str(self.precision) not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        devices = str(self.devices).replace(" ", "")
        ids = re.fullmatch(r"\[?[0-9]+(,[0-9]+)*,?\]?", devices) and devices != "0"  # "0,": GPU 0; 0: none
        if not (devices == "auto" or re.fullmatch(r"-1|[1-9][0-9]*", devices) or ids):
            raise ValueError(f"devices must be auto, a count >= 1, -1 (all) or device ids like 0,1; "
                             f"got {self.devices!r}")
        if not isinstance(self.augment, str):
            raise ValueError(f"augment must be evoaug[:KEY=VALUE,...] or none, got {self.augment!r}")
        parse_augment(self.augment)  # its messages start with "augment:"
        _check_count("finetune_epochs", self.finetune_epochs, 0)
        if self.finetune_epochs and self.max_time:
            raise ValueError("finetune_epochs cannot be combined with max_time (the budget plans the epochs "
                             "of one schedule); give --epochs and --finetune-epochs without --max-time")
        if not isinstance(self.averaging, str):
            raise ValueError(f"averaging must be none, ema[:DECAY] or swa[:EPOCHS], got {self.averaging!r}")
        try:
            averaging_spec(self.averaging)
        except ValueError as err:
            raise ValueError("averaging:" + str(err).removeprefix("average:")) from None
        self._check_schedule()
        self._check_transfer()

    def _check_transfer(self) -> None:
        for name in ("init_from", "teacher", "teacher_sequences"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, value := os.fspath(value))
            if value is not None and (not isinstance(value, str) or not value.strip()):
                what = "a file name" if name == "teacher_sequences" else "a run folder or a registered model name"
                raise ValueError(f"{name} must be {what}, got {value!r}")
        _check_number("init_lr_scale", self.init_lr_scale, low=0.0)
        _check_number("teacher_weight", self.teacher_weight, low=0.0, inclusive=True)
        if self.teacher_weight > 1:
            raise ValueError(f"teacher_weight must be between 0 and 1, got {self.teacher_weight!r}")
        _check_count("teacher_copies", self.teacher_copies, 1)
        if freeze_spec(self.freeze) and not self.init_from:
            raise ValueError(f"freeze {self.freeze}: freezing keeps layers of the init run; give init_from too")
        for name, on in (("teacher_extra", teacher_extra_spec(self.teacher_extra)),
                         ("teacher_sequences", self.teacher_sequences)):
            if on and not self.teacher:
                raise ValueError(f"{name} sequences are labelled by a teacher; give teacher too")

    def _check_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        _check_count("cooldown_epochs", self.cooldown_epochs, 1)
        if self.schedule != "plateau":
            return
        if not self.patience:
            raise ValueError("schedule plateau anneals when validation stops improving: give patience "
                             "(--patience N)")
        clashes = [name for name, on in (("max_time", self.max_time), ("finetune_epochs", self.finetune_epochs),
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
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        raw = dict(raw)
        data_raw = dict(raw.pop("data", {}) or {})
        train_raw = dict(raw.pop("train", {}) or {})
        if raw.get("version") and _version_tuple(raw["version"]) < (0, 2):
            # Saved before test splits and ensemble configs existed: one model, without a test split.
            data_raw.setdefault("test_size", 0)
            train_raw.setdefault("ensemble", 1)
        try:
            data = DataConfig(**data_raw)
            train = TrainConfig(**train_raw)
            model_raw = dict(raw.pop("model", {}))
            model = model_config(model_raw.pop("name", "legnet"), **model_raw)
            return cls(data=data, model=model, train=train, **raw)
        except TypeError as err:
            raise ValueError(f"invalid config: {err}") from None

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])


def replace_fields(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` ignoring ``None`` values (unset command-line options)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
