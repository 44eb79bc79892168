"""Fine-tuning: start a run from the weights of another run or a registered pretrained model
(``train.init_from``), at a lower peak learning rate, optionally with layers frozen.

Where training calls in (:mod:`promoterlab.training.run`, :mod:`promoterlab.training.train`):

- :func:`resolve_transfer` (a config before training): the architecture becomes the init run's
  (a model config left at its registered defaults takes it; another one must describe it, except
  ``n_bins``), ``max_lr`` is scaled by ``init_lr_scale`` (then saved as 1), a time budget keeps
  the width, and ``init_resolved`` / ``teacher_resolved`` record which weights were used
  (``PATH sha256:HASH`` of their ``model.pt``). It refuses an init run of another window length
  or loss, and a teacher of another layout. It is idempotent, so that a run resumed with the
  command that started it matches its saved config.
- :func:`start_from` (the built model): copies the init run's weights into it and returns the
  :class:`Freeze` callback of ``train.freeze``.

The init run may lay sequences out with another adapter or upstream flank than this run's data
(another library): the weights do not depend on them, and fine-tuning adapts the model to the new
context; the window length must be the same. An ensemble's member trained with seed ``S`` starts
from the init ensemble's member ``seed=S`` when it has one, else from its member ``S mod K``.
A registered name (:mod:`promoterlab.pretrained`) that is not a folder here is converted once
into ``DATA_DIR/pretrained/NAME/run`` (downloaded if its weights are not there yet).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import nn

from promoterlab.config import RunConfig
from promoterlab.config.transfer import freeze_spec
from promoterlab.models import LegNetConfig, model_config
from promoterlab.objective import Objective
from promoterlab.runs import MEMBER_PREFIX, MODEL, Run, RunError, load_model

log = logging.getLogger("promoterlab")

PRETRAINED_RUN = "run"  # DATA_DIR/pretrained/NAME/run: a registered model converted into a run folder
_ADAPTED = ("name", "seq_len", "n_bins")  # model fields a fine-tuned model may set differently from its init


def pretrained_run_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """The run folder of the registered pretrained model ``name``, converted on first use (its
    weights downloaded when they are not in the data directory yet)."""
    from promoterlab.datasets.download import resolve_data_dir
    from promoterlab.pretrained import get_pretrained
    from promoterlab.pretrained.fetch import fetch_pretrained

    entry = get_pretrained(name)
    folder = resolve_data_dir(data_dir) / "pretrained" / entry.name / PRETRAINED_RUN
    if not (folder / MODEL).is_file():
        log.info(f"{name}: converting the published weights into {folder}")
        fetch_pretrained(entry, folder, data_dir, progress=False, overwrite=True)
    return folder


def source_run(name: str, role: str) -> Run:
    """The run that ``init_from`` or ``teacher`` (``role``) names: a run or ensemble folder (or
    a glob, or a model.pt), else a registered pretrained model.

    Raises
    ------
    RunError
        Naming ``role`` and ``name``: no such folder or registered model, or an unfinished run.
    """
    from promoterlab.pretrained import PRETRAINED

    try:
        if Path(name).exists() or name not in PRETRAINED:
            return Run.open(name)
        return Run.open(pretrained_run_folder(name))
    except FileNotFoundError:
        raise RunError(f"{role} {name}: no such run folder, and no registered pretrained model of that name "
                       f"(registered: {', '.join(PRETRAINED)})") from None
    except RunError as err:
        raise RunError(f"{role} {name}: {err}") from None


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def fingerprint(members: list[Path], path: Path | None = None) -> str:
    """``PATH sha256:HASH``: a model run and its ``model.pt``, or an ensemble and the hash of its
    members' hashes (``PATH (K models) sha256:HASH``)."""
    digests = [file_digest(member / MODEL if member.is_dir() else member) for member in members]
    if len(members) == 1:
        return f"{members[0].resolve()} sha256:{digests[0]}"
    combined = hashlib.sha256(" ".join(digests).encode()).hexdigest()[:16]
    where = path.resolve() if path is not None else ", ".join(str(m.resolve()) for m in members)
    return f"{where} ({len(members)} models) sha256:{combined}"


def init_member(run: Run, seed: int) -> Path:
    """The model run a model trained with ``seed`` starts from: the member ``seed=S`` of an
    ensemble when there is one, else member ``seed mod K``."""
    for member in run.members:
        if member.name == f"{MEMBER_PREFIX}{seed}":
            return member
    return run.members[seed % len(run.members)]


def _architecture(cfg: LegNetConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _ADAPTED}


def student_model(init: LegNetConfig, asked: LegNetConfig, source: str) -> LegNetConfig:
    """The model a run fine-tuned from ``init`` trains: ``init``'s architecture with the bins of
    ``asked`` when they differ from its registered default.

    ``asked`` left at the registered defaults of its name (bins and length aside) takes the init
    run's architecture; otherwise it must describe it (``legnet`` at width 0.5 is ``legnet-s``).

    Raises
    ------
    RunError
        Naming the settings that contradict the init run's architecture.
    """
    default = model_config(asked.name)
    if not (type(asked) is type(default) and _architecture(asked) == _architecture(default)):
        mine, theirs = _architecture(asked), _architecture(init)
        if type(asked) is not type(init) or mine != theirs:
            differ = [f"{k} {mine[k]} (init: {theirs.get(k)})" for k in mine if mine[k] != theirs.get(k)]
            what = ", ".join(differ) if type(asked) is type(init) else f"model {asked.name} (init: {init.name})"
            raise RunError(f"init run {source}: a fine-tuned model has the init run's architecture ({init.name}, "
                           f"width {init.width:g}); this run asks for {what}: leave --model, --width and "
                           "--model-opt out (only n_bins may differ)")
    n_bins = asked.n_bins if asked.n_bins != default.n_bins else init.n_bins
    return dataclasses.replace(init, n_bins=n_bins)


def _resolve_init(config: RunConfig) -> RunConfig:
    run = source_run(config.train.init_from, "init_from")
    member = init_member(run, config.seed)
    init = run.configs()[run.members.index(member)]
    source = str(member)
    data = config.data
    if init.data.seq_len != data.seq_len:
        raise RunError(f"init run {source}: it takes {init.data.seq_len} bp windows, this run's data is laid out "
                       f"in {data.seq_len} (seq_len); give --seq-len {init.data.seq_len}")
    if init.train.loss != config.train.loss:
        raise RunError(f"init run {source}: trained with loss {init.train.loss}, this run uses {config.train.loss}; "
                       f"give --loss {init.train.loss}")
    model = dataclasses.replace(student_model(init.model, config.model, source), seq_len=data.seq_len)
    train = dataclasses.replace(config.train, max_lr=config.train.max_lr * config.train.init_lr_scale,
                                init_lr_scale=1.0, fit_width=False, init_resolved=fingerprint([member]))
    return dataclasses.replace(config, model=model, train=train)


def _resolve_teacher(config: RunConfig) -> RunConfig:
    run = source_run(config.train.teacher, "teacher")
    layout = config.data.layout
    for member, member_config in zip(run.members, run.configs()):
        theirs = member_config.data.layout
        differ = [f for f in ("seq_len", "left_adapter", "upstream") if getattr(theirs, f) != getattr(layout, f)]
        if differ:
            raise RunError(f"teacher {member}: lays sequences out differently from this run's data "
                           f"({', '.join(differ)} differ); a teacher labels the training sequences as this run "
                           "encodes them, so their layouts must be the same")
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, teacher_resolved=fingerprint(list(run.members), run.path)))


def resolve_transfer(config: RunConfig) -> RunConfig:
    """``config`` with its init run's architecture, scaled learning rate and the record of its
    init and teacher weights (see the module docstring); unchanged without either.

    Raises
    ------
    RunError
        An init run or teacher that does not exist or does not fit (the message says which and how).
    """
    if config.train.init_from:
        config = _resolve_init(config)
    elif config.train.init_resolved is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, init_resolved=None))
    if config.train.teacher:
        config = _resolve_teacher(config)
    elif config.train.teacher_resolved is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, teacher_resolved=None))
    return config


def copy_weights(model: nn.Module, source: nn.Module, name: str) -> list[str]:
    """Copy ``source``'s weights into ``model``; return the head tensors left as initialised
    because their shape differs (another number of bins).

    Raises
    ------
    RunError
        A tensor outside the head that is missing or of another shape.
    """
    theirs, mine = source.state_dict(), model.state_dict()
    fresh = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
    unused = [k for k in theirs if k not in mine]
    bad = [k for k in fresh + unused if not k.startswith("head.")]
    if bad:
        raise RunError(f"init run {name}: its weights do not fit this model ({bad[0]} differs)")
    model.load_state_dict({**mine, **{k: v for k, v in theirs.items() if k in mine and k not in fresh}})
    return fresh


def start_from(model: nn.Module, config: RunConfig) -> list[Callback]:
    """Copy the init run's weights into ``model`` (none without ``init_from``) and return the
    callbacks that keep ``train.freeze``'s layers fixed."""
    if not config.train.init_from:
        return []
    member = init_member(source_run(config.train.init_from, "init_from"), config.seed)
    source, _ = load_model(member)
    fresh = copy_weights(model, source, str(member))
    note = f"; head re-initialised for {config.model.n_bins} bins ({', '.join(fresh)})" if fresh else ""
    log.info(f"starting from the weights of {member}{note}")
    spec = freeze_spec(config.train.freeze)
    if spec is None:
        return []
    frozen_modules(model, spec, 0)  # refuses a spec that the model cannot take before training starts
    return [Freeze(model, spec)]


def frozen_modules(model: nn.Module, spec: tuple[str, int], epoch: int) -> list[nn.Module]:
    """The modules ``spec`` keeps fixed in ``epoch`` (0-based): the stem and the first N blocks
    (``("blocks", N)``), or every module but the head during the first EPOCHS epochs
    (``("head", EPOCHS)``)."""
    kind, count = spec
    if kind == "head":
        if not hasattr(model, "head"):
            raise RunError(f"freeze head:{count}: the model has no head module")
        return [module for name, module in model.named_children() if name != "head"] if epoch < count else []
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "stem"):
        raise RunError(f"freeze blocks:{count}: the model has no stem and blocks")
    if count > len(blocks):
        raise RunError(f"freeze blocks:{count}: the model has {len(blocks)} blocks")
    return [model.stem, *list(blocks)[:count]]


class Freeze(Callback):
    """Keeps the modules of a freeze spec fixed: no gradients (so the optimiser leaves their
    weights alone) and BatchNorm statistics not updated (the modules run in eval mode)."""

    def __init__(self, model: nn.Module, spec: tuple[str, int]):
        self.model, self.spec = model, spec
        self.frozen: list[nn.Module] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.frozen = frozen_modules(self.model, self.spec, trainer.current_epoch)
        fixed = {id(p) for module in self.frozen for p in module.parameters()}
        for parameter in self.model.parameters():
            parameter.requires_grad_(id(parameter) not in fixed)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        for module in self.frozen:  # Lightning puts the whole model back in train mode after validation
            module.eval()


__all__ = ["Freeze", "copy_weights", "fingerprint", "frozen_modules", "pretrained_run_folder", "resolve_transfer",
           "source_run", "start_from", "student_model"]
