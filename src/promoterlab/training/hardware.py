"""Settings chosen for the machine: precision, batch size and epochs left as ``"auto"``."""

from __future__ import annotations

import dataclasses

import torch

from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE
from promoterlab.precision import resolve_precision

DEFAULT_EPOCHS = 20
CPU_BATCH_SIZE = 128
GPU_BATCH_SIZE = 1024
CPU_EVAL_BATCH_SIZE = PREDICT_BATCH_SIZE


def accelerator_kind(accelerator: str) -> str:
    """``"gpu"`` or ``"cpu"``: what Lightning's ``accelerator`` setting will run on."""
    if accelerator in ("gpu", "cuda"):
        return "gpu"
    if accelerator == "auto" and torch.cuda.is_available():
        return "gpu"
    return "cpu"


def auto_batch_size(kind: str, n_train: int) -> int:
    """128 on a CPU, where batches that fit the cache run about twice as fast per sequence as the
    recipe's 1,024; on a GPU 1,024 once the data gives 100 such steps an epoch, else 256."""
    if kind == "cpu":
        return CPU_BATCH_SIZE
    return GPU_BATCH_SIZE if 2 * n_train >= 100 * GPU_BATCH_SIZE else 256


def resolve_train_config(train, n_train: int):
    """``train`` (a :class:`~promoterlab.config.TrainConfig`) with precision and batch sizes resolved.

    The precision is ``32``, ``bf16`` or ``16`` (:func:`promoterlab.precision.resolve_precision`;
    ``16`` on a CPU is refused with a ``ValueError``).

    ``epochs`` stays ``"auto"`` here: it is :data:`DEFAULT_EPOCHS`, or the budget's choice under
    ``max_time`` (:mod:`promoterlab.training.budget`), recorded in ``summary.json``.
    """
    kind = accelerator_kind(train.accelerator)
    precision = resolve_precision(train.precision, kind)
    batch_size = auto_batch_size(kind, n_train) if train.batch_size == "auto" else train.batch_size
    eval_batch_size = train.eval_batch_size
    if eval_batch_size == "auto":
        eval_batch_size = CPU_EVAL_BATCH_SIZE if kind == "cpu" else GPU_BATCH_SIZE
    return dataclasses.replace(train, precision=precision, batch_size=batch_size, eval_batch_size=eval_batch_size)
