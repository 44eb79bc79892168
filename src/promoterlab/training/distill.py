"""Distillation: training labels from a teacher (one model or an ensemble; ``train.teacher``).

The teacher predicts every training sequence once, before training (both strands averaged, the
sequence's own singleton flag, as it was trained), and its prediction is mixed into the measured
label with ``teacher_weight`` ``w``:

- ``kl``: the label is ``w * p_teacher + (1 - w) * soft_labels(y)``, ``p_teacher`` the mean of
  the members' bin probabilities (a teacher with other bins, or an ``mse`` teacher, gives its
  values as soft labels);
- ``mse``: the label is ``w * v_teacher + (1 - w) * y``.

Sequences the teacher alone labels (``w`` = 1) are added to the training set, as in ensemble
distillation, so that the student learns the teacher's function around the data:
``teacher_extra`` draws ``teacher_copies`` variants of each training sequence once, seeded by the
run's seed, by redrawing a fraction of its insert (``mutate[:RATE]``) or shuffling its insert's
bases (``shuffle``); ``teacher_sequences`` adds the sequences of a file. They get the singleton
flag 0, as at prediction. Validation and test sets keep their measured values.
"""

from __future__ import annotations

import logging

import torch

from promoterlab.config import RunConfig
from promoterlab.config.transfer import teacher_extra_spec
from promoterlab.data.augment import random_mutation
from promoterlab.data.dataset import EvalBatches, batch_loader, encode_sequences
from promoterlab.data.encoded import EncodedSet, SplitSets
from promoterlab.data.readers import read_sequences
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE
from promoterlab.models.fold import fold_batchnorm
from promoterlab.objective import Objective, soft_labels
from promoterlab.precision import autocast, resolve_precision
from promoterlab.sequence import insert_windows
from promoterlab.training.hardware import accelerator_kind
from promoterlab.training.transfer import source_run

log = logging.getLogger("promoterlab")
_GENERATOR_SALT = 7_919  # generated sequences draw from their own stream, not the batches' or the model's


@torch.inference_mode()
def teacher_outputs(members: list, codes: torch.Tensor, singleton: torch.Tensor | None, objective: Objective,
                    batch_size: int = PREDICT_BATCH_SIZE, device: str = "cpu", precision: str = "auto") -> torch.Tensor:
    """The teacher's labels in ``objective``'s terms for encoded sequences: ``(n, n_bins)`` bin
    probabilities for a ``kl`` student (the mean over members of each member's strand-averaged
    probabilities), else ``(n,)`` values (the mean of the members' predictions).

    Parameters
    ----------
    members : list of (nn.Module, RunConfig)
        The teacher's models (:meth:`~promoterlab.runs.Run.load_members`).
    codes : torch.Tensor
        ``(n, L)`` uint8 codes laid out as the teacher's data.
    singleton : torch.Tensor, optional
        Per-sequence flags fed to the teacher (0 when omitted).
    """
    resolved = resolve_precision(precision, device)
    total = None
    for model, config in members:
        member = Objective.of(config)
        as_bins = objective.loss == "kl" and member.loss == "kl" and member.n_bins == objective.n_bins
        model = fold_batchnorm(model).to(device).eval()
        parts = []
        for x_fwd, x_rc, _ in batch_loader(EvalBatches(codes, singleton=singleton), batch_size, shuffle=False):
            with autocast(resolved, device):
                out = member.average(model(x_fwd.to(device)), model(x_rc.to(device)))
            parts.append((out.float().exp() if as_bins else member.value(out)).cpu())
        out = torch.cat(parts) if parts else torch.zeros(0)
        if objective.loss == "kl" and not as_bins:
            out = soft_labels(out, objective.n_bins)
        total = out.double() if total is None else total + out.double()
    return (total / len(members)).float()


def mix_labels(objective: Objective, measured: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight * teacher + (1 - weight) * measured`` labels (measured values as soft labels for ``kl``)."""
    if weight == 1.0:
        return teacher.clone()
    return weight * teacher + (1.0 - weight) * objective.labels(measured)


def shuffle_inserts(codes: torch.Tensor, windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each row's insert window with its bases in random order; the rest unchanged."""
    n, length = codes.shape
    pos = torch.arange(length, dtype=torch.float64).expand(n, length)
    start, stop = windows[:, :1].double(), windows[:, 1:].double()
    inside = (pos >= start) & (pos < stop)
    keys = torch.where(inside, start + torch.rand(n, length, generator=generator, dtype=torch.float64) * (stop - start),
                       pos)  # inside keys fall in [start, stop): they sort among themselves only
    return codes.gather(1, keys.argsort(dim=1))


def generate(train: EncodedSet, spec: tuple[str, float], copies: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``copies`` variants of every training sequence (mutated or shuffled inserts) and their windows."""
    if train.windows is None:
        raise ValueError("generated sequences need the insert windows of the training sequences")
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + _GENERATOR_SALT)
    kind, rate = spec
    codes = train.codes.repeat(copies, 1)
    windows = train.windows.repeat(copies, 1)
    if kind == "mutate":
        return random_mutation(codes.clone(), windows, rate, generator), windows
    return shuffle_inserts(codes, windows, generator), windows


def _file_sequences(config: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    path = config.train.teacher_sequences
    seqs = read_sequences(path)["seq"].tolist()
    layout = config.data.layout
    return encode_sequences(seqs, layout, path), insert_windows(seqs, layout)


def needs_windows(config: RunConfig) -> bool:
    """Whether the run generates sequences for its teacher, which needs the training inserts' windows."""
    return bool(config.train.teacher) and teacher_extra_spec(config.train.teacher_extra) is not None


def with_teacher_labels(config: RunConfig, split: SplitSets, objective: Objective) -> SplitSets:
    """``split`` whose training set carries the teacher's mixed labels and the sequences it alone
    labels (unchanged without ``train.teacher``); validation and test sets are left alone."""
    cfg = config.train
    if not cfg.teacher:
        return split
    train = split.train.load() if hasattr(split.train, "load") else split.train  # a store's rows, in memory
    members = source_run(cfg.teacher, "teacher").load_members()
    device = "cuda" if accelerator_kind(cfg.accelerator) == "gpu" else "cpu"
    batch = cfg.eval_batch_size if isinstance(cfg.eval_batch_size, int) else PREDICT_BATCH_SIZE

    def label(codes: torch.Tensor, flags: torch.Tensor | None) -> torch.Tensor:
        return teacher_outputs(members, codes, flags, objective, batch, device)

    targets = mix_labels(objective, train.targets, label(train.codes, train.singleton), cfg.teacher_weight)
    extra: list[tuple[torch.Tensor, torch.Tensor]] = []
    spec = teacher_extra_spec(cfg.teacher_extra)
    if spec is not None:
        extra.append(generate(train, spec, cfg.teacher_copies, config.seed))
    if cfg.teacher_sequences:
        extra.append(_file_sequences(config))
    codes, flags, windows = [train.codes], [train.singleton], [train.windows]
    labels = [targets]
    for extra_codes, extra_windows in extra:
        labels.append(label(extra_codes, None))
        codes.append(extra_codes.to(train.codes.dtype))
        flags.append(torch.zeros(len(extra_codes), dtype=train.singleton.dtype))
        windows.append(extra_windows)
    n_extra = sum(len(c) for c in codes[1:])
    log.info(f"teacher {cfg.teacher}: labels for {len(train):,} training sequences (weight {cfg.teacher_weight:g})"
             + (f" and {n_extra:,} sequences it alone labels" if n_extra else ""))
    has_windows = all(w is not None for w in windows)
    distilled = EncodedSet(torch.cat(codes), torch.cat(labels), torch.cat(flags),
                           torch.cat(windows) if has_windows else None)
    return split._replace(train=distilled)


__all__ = ["generate", "mix_labels", "needs_windows", "shuffle_inserts", "teacher_outputs", "with_teacher_labels"]
