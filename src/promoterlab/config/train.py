"""The optimisation recipe of a run and its hardware settings (``config.yaml``'s ``train``), and
the rules that resolve its ``auto`` length: the time budget, the widths it may train."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from promoterlab.config.checks import check_count, check_number
from promoterlab.config.setting import setting
from promoterlab.precision import normalize_precision

SCHEDULES = ("onecycle", "plateau")  # learning-rate schedules (TrainConfig.schedule)
NARROWEST_WIDTH = 0.125  # the narrowest model a time budget trains (TrainConfig.fit_width)
# Minutes the default `train` (no --epochs, no --max-time) may take, shared by an ensemble's
# models: a small table trains on a 2-core laptop within a quarter of an hour (BENCHMARKS.md).
DEFAULT_TIME_BUDGET = 12.0


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

    loss: str = setting("kl", "kl (18 soft bins, the 0..17 sort-seq scale) or mse (any scale).")
    epochs: int | str = setting("auto", "Epochs (auto: what fits the time budget, or 20 without one; given: no "
                                "default time budget).")
    batch_size: int | str = setting("auto", "Training batch, capped by the data (auto: 128 on a CPU, 1,024 on a "
                                    "GPU with large data).")
    max_lr: float = setting(0.005, "OneCycle maximum learning rate.", flag="--lr")
    weight_decay: float = setting(0.01, "AdamW weight decay.")
    pct_start: float = setting(0.3, "Share of OneCycle spent warming up.")
    div_factor: float = setting(25.0, "OneCycle: the first learning rate is --lr / this.")
    final_div_factor: float = setting(1e4, "OneCycle: the last learning rate is the first / this.")
    rc_augment: bool = setting(True, "Add the reverse complement of every training sequence.")
    max_time: float | str | None = setting("auto", "Wall-clock budget in minutes for the whole command (an "
                                           "ensemble's models share it); without --model and --width a budget too "
                                           "short for the model trains a narrower one; auto: 12 minutes unless "
                                           "--epochs is given.", metavar="MINUTES|auto")
    patience: int | None = setting(None, "Early-stopping patience in epochs (with --schedule plateau: the epochs "
                                   "without improvement before annealing).")
    precision: str = setting("auto", "auto (here: {auto_precision}), 32, bf16 or 16 (fp16 mixed, GPU only); "
                             "PROMOTERLAB_PRECISION=32 or bf16 sets what auto means.")
    accelerator: str = setting("auto", "Lightning accelerator: cpu, gpu or auto.")
    devices: str = setting("auto", "Lightning devices: a count, -1 (all) or ids like 0,1.")
    strategy: str = setting("auto", "Lightning strategy, e.g. ddp.")
    num_nodes: int = setting(1, "Lightning nodes.")
    eval_batch_size: int | str = setting("auto", "Validation batch (auto: 64 on a CPU, 1,024 on a GPU).")
    augment: str = setting("none", "evoaug[:KEY=VALUE,...]: EvoAug on the training inserts (e.g. "
                           "evoaug:mutation=0.1,max_augs=1), or none.", metavar="SPEC")
    finetune_epochs: int = setting(0, "Epochs after --epochs on unaugmented data at a constant lr/10.")
    averaging: str = setting("none", "Weight averaging: ema[:DECAY], swa[:EPOCHS] or none; the saved model is the "
                             "final average.", metavar="SPEC")
    schedule: str = setting("onecycle", "onecycle over --epochs, or plateau: hold the peak rate until validation "
                            "has not improved for --patience epochs, then anneal over --cooldown-epochs and stop.")
    cooldown_epochs: int = setting(4, "Annealing epochs of --schedule plateau.")
    fit_width: bool = setting(True, "A budget too short for the model trains a narrower one (off when --model "
                              "or --width is given).", cli=False)
    ensemble: int | str = setting("auto", "Models trained on one split with seeds --seed, --seed + 1, ... into "
                                  "OUT/seed=*/ (auto: 3 for training sets of at most 20,480 sequences without "
                                  "an explicit --max-time, else 1).")
    # Fine-tuning (promoterlab.training.transfer) and distillation (promoterlab.training.distill).
    init_from: str | None = setting(None, "Fine-tune: start from the weights of this run folder (an ensemble: its "
                                    "member of the same seed) or registered pretrained model (promoterlab models "
                                    "list); the model is its architecture (only --model-opt n_bins=K may differ: "
                                    "a new head).", metavar="RUN|NAME")
    # A run with init_from peaks at max_lr times this; training saves max_lr scaled and this 1.
    init_lr_scale: float = setting(0.2, "With --init-from the peak learning rate is --lr times this.")
    freeze: str = setting("none", "With --init-from: blocks:N keeps the stem and the first N blocks fixed; "
                          "head:EPOCHS trains only the head for the first EPOCHS epochs.", metavar="SPEC")
    teacher: str | None = setting(None, "Distil: a run folder, ensemble or registered model whose predictions are "
                                  "mixed into the training labels.", metavar="RUN|NAME")
    teacher_weight: float = setting(0.5, "Weight of the teacher's labels, 0..1; 1: the teacher's alone.")
    teacher_extra: str = setting("none", "Sequences the teacher alone labels, added to training: mutate[:RATE] "
                                 "(that fraction of each insert redrawn) or shuffle (each insert's bases shuffled).",
                                 metavar="SPEC")
    teacher_copies: int = setting(1, "--teacher-extra sequences per training sequence, drawn once.")
    teacher_sequences: str | None = setting(None, "A file of sequences (FASTA, table) the teacher alone labels, "
                                            "added to training.", metavar="FILE")
    # What init_from and teacher were when training started ("PATH sha256:HASH"), for the record.
    init_resolved: str | None = setting(None, "The init run as training found it.", cli=False)
    teacher_resolved: str | None = setting(None, "The teacher as training found it.", cli=False)

    def __post_init__(self) -> None:
        from promoterlab.data.augment import parse_augment  # both import torch: not needed to define the config
        from promoterlab.objective import LOSSES

        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        # Every message starts with the field name (the command line turns it into its option).
        check_count("epochs", self.epochs, 1, auto=True)
        check_count("batch_size", self.batch_size, 1, auto=True)
        check_count("eval_batch_size", self.eval_batch_size, 1, auto=True)
        check_number("max_lr", self.max_lr, low=0.0)
        check_number("weight_decay", self.weight_decay, low=0.0, inclusive=True)
        check_number("pct_start", self.pct_start, low=0.0, high=1.0)
        check_number("div_factor", self.div_factor, low=0.0)
        check_number("final_div_factor", self.final_div_factor, low=0.0)
        if self.max_time not in (None, "auto"):
            check_number("max_time", self.max_time, low=0.0)
        if self.patience is not None:
            check_count("patience", self.patience, 1)
        check_count("num_nodes", self.num_nodes, 1)
        check_count("ensemble", self.ensemble, 1, auto=True)
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
        check_count("finetune_epochs", self.finetune_epochs, 0)
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
        self._check_transfer()

    def _check_transfer(self) -> None:
        from promoterlab.config.transfer import freeze_spec, teacher_extra_spec

        for name in ("init_from", "teacher", "teacher_sequences"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, value := os.fspath(value))
            if value is not None and (not isinstance(value, str) or not value.strip()):
                what = "a file name" if name == "teacher_sequences" else "a run folder or a registered model name"
                raise ValueError(f"{name} must be {what}, got {value!r}")
        check_number("init_lr_scale", self.init_lr_scale, low=0.0)
        check_number("teacher_weight", self.teacher_weight, low=0.0, inclusive=True)
        if self.teacher_weight > 1:
            raise ValueError(f"teacher_weight must be between 0 and 1, got {self.teacher_weight!r}")
        check_count("teacher_copies", self.teacher_copies, 1)
        if freeze_spec(self.freeze) and not self.init_from:
            raise ValueError(f"freeze {self.freeze}: freezing keeps layers of the init run; give init_from too")
        for name, on in (("teacher_extra", teacher_extra_spec(self.teacher_extra)),
                         ("teacher_sequences", self.teacher_sequences)):
            if on and not self.teacher:
                raise ValueError(f"{name} sequences are labelled by a teacher; give teacher too")

    def _check_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        check_count("cooldown_epochs", self.cooldown_epochs, 1)
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


