"""Settings chosen for the machine: precision, batch size and epochs left as ``"auto"``."""

from __future__ import annotations

import dataclasses

import torch

DEFAULT_EPOCHS = 20
CPU_BATCH_SIZE = 128
GPU_BATCH_SIZE = 1024
# Inference (RC-averaged, BN folded, bf16) is fastest per sequence at 64 on a CPU: 1.3-1.4x
# the rate at 128 (benchmarks/speed.py).
CPU_EVAL_BATCH_SIZE = 64


def accelerator_kind(accelerator: str) -> str:
    """``"gpu"`` or ``"cpu"``: what Lightning's ``accelerator`` setting will run on."""
    if accelerator in ("gpu", "cuda"):
        return "gpu"
    if accelerator == "auto" and torch.cuda.is_available():
        return "gpu"
    return "cpu"


def native_bf16(kind: str) -> bool:
    """Whether the hardware computes bf16 natively (AVX512-BF16 or AMX on a CPU; Ampere+ GPUs).

    Elsewhere bf16 is emulated and slower than fp32.
    """
    if kind == "gpu":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def auto_precision(kind: str) -> str:
    """``bf16-mixed`` where bf16 is native (about 2x faster for LegNet on such a CPU), else ``32``."""
    return "bf16-mixed" if native_bf16(kind) else "32"


def auto_batch_size(kind: str, n_train: int) -> int:
    """128 on a CPU, where batches that fit the cache run about twice as fast per sequence as the
    recipe's 1,024; on a GPU 1,024 once the data gives 100 such steps an epoch, else 256."""
    if kind == "cpu":
        return CPU_BATCH_SIZE
    return GPU_BATCH_SIZE if 2 * n_train >= 100 * GPU_BATCH_SIZE else 256


def resolve_train_config(train, n_train: int):
    """``train`` (a :class:`~promoterlab.config.TrainConfig`) with precision and batch sizes resolved.

    ``epochs`` stays ``"auto"`` here: it is :data:`DEFAULT_EPOCHS`, or the budget's choice under
    ``max_time`` (:mod:`promoterlab.training.budget`), recorded in ``summary.json``.
    """
    kind = accelerator_kind(train.accelerator)
    precision = auto_precision(kind) if train.precision == "auto" else train.precision
    batch_size = auto_batch_size(kind, n_train) if train.batch_size == "auto" else train.batch_size
    eval_batch_size = train.eval_batch_size
    if eval_batch_size == "auto":
        eval_batch_size = CPU_EVAL_BATCH_SIZE if kind == "cpu" else GPU_BATCH_SIZE
    return dataclasses.replace(train, precision=precision, batch_size=batch_size, eval_batch_size=eval_batch_size)
