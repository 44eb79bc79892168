"""The one precision vocabulary (``auto``, ``32``, ``bf16``, ``16``) and what ``auto`` resolves to.

Every ``--precision`` option, ``TrainConfig.precision`` and every ``precision=`` argument takes
these values:

- ``auto``: ``bf16`` where the hardware computes bf16 natively (AVX512-BF16 or AMX CPUs,
  Ampere and later GPUs), else ``32``; the environment variable ``PROMOTERLAB_PRECISION``
  (``32`` or ``bf16``) decides instead where it is set;
- ``32``: fp32;
- ``bf16``: bf16 mixed precision (weights in fp32, autocast to bf16);
- ``16``: fp16 mixed precision, on a GPU only.

Lightning's spellings of the same settings (``32-true``, ``bf16-mixed``, ``16-mixed``) are
read as ours: silently where a saved ``config.yaml`` holds them, with a ``FutureWarning`` that
names the new spelling elsewhere. Other values (``bf16-true``, ``64``, ...) are refused.

Only the standard library is imported at module level (torch where hardware is asked about),
so that the command line can check an option before it imports torch.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

PRECISIONS = ("auto", "32", "bf16", "16")
RESOLVED = ("32", "bf16", "16")
# Lightning's spellings that mean one of ours; saved config.yaml files of earlier runs hold them.
OLD_SPELLINGS = {"32-true": "32", "bf16-mixed": "bf16", "16-mixed": "16"}
LIGHTNING_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
ENV_VAR = "PROMOTERLAB_PRECISION"
ENV_VALUES = ("32", "bf16")
# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) under which its CPU kernels still compute bf16 natively.
BF16_ISAS = ("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx", "avx512_core_amx_fp16", "default", "all")
ACCEPTED = "auto, 32, bf16, 16 (fp16 mixed, GPU only)"


def normalize_precision(value: Any, warn: bool = True) -> str:
    """``value`` in the vocabulary (``auto``, ``32``, ``bf16``, ``16``).

    Parameters
    ----------
    value : str or int
        A precision as typed (YAML reads ``32`` as an integer).
    warn : bool
        Warn (``FutureWarning``) that a Lightning spelling such as ``bf16-mixed`` is deprecated;
        False where it is read back from a saved config.

    Raises
    ------
    ValueError
        ``precision must be ...``, listing the accepted values, for anything else.
    """
    text = str(value).strip().lower() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text in PRECISIONS:
        return text
    if text in OLD_SPELLINGS:
        new = OLD_SPELLINGS[text]
        if warn:
            warnings.warn(f"precision {value!r} is deprecated; use {new!r}", FutureWarning, stacklevel=3)
        return new
    raise ValueError(f"precision must be one of {ACCEPTED}; got {value!r}")


def device_type(device: Any) -> str:
    """``"cuda"``, ``"cpu"``, ``"mps"``, ...: the kind of a torch device, a device string
    (``"cuda:1"``) or an accelerator kind (``"gpu"`` is ``"cuda"``)."""
    kind = getattr(device, "type", None) or str(device).split(":", 1)[0].strip().lower()
    return "cuda" if kind == "gpu" else kind


def native_bf16(device: Any = "cpu") -> bool:
    """Whether ``device`` computes bf16 natively (AVX512-BF16 or AMX on a CPU; Ampere+ GPUs).

    Elsewhere bf16 is emulated and slower than fp32. A CPU whose oneDNN kernels are capped below
    AVX512-BF16 (``ONEDNN_MAX_CPU_ISA=AVX2``, as when a laptop is emulated) counts as without.
    """
    import torch

    kind = device_type(device)
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if kind != "cpu":
        return False
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().lower()
    if cap and cap not in BF16_ISAS:
        return False
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def env_precision() -> str | None:
    """``PROMOTERLAB_PRECISION`` (``32`` or ``bf16``), or None where it is not set.

    Raises
    ------
    ValueError
        For another value.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if not value:
        return None
    if value not in ENV_VALUES:
        raise ValueError(f"{ENV_VAR} must be {' or '.join(ENV_VALUES)}, got {os.environ[ENV_VAR]!r}")
    return value


def resolve_precision(precision: Any, device: Any = "cpu") -> str:
    """``"32"``, ``"bf16"`` or ``"16"``: what ``precision`` runs as on ``device``.

    ``auto`` is ``PROMOTERLAB_PRECISION`` where set, else ``bf16`` where ``device`` computes bf16
    natively (:func:`native_bf16`), else ``32``.

    Parameters
    ----------
    precision : str
        A value of the vocabulary (or a deprecated Lightning spelling, with a warning).
    device : str or torch.device
        Where it runs: a torch device (``"cpu"``, ``"cuda:0"``) or ``"gpu"``.

    Raises
    ------
    ValueError
        For a value outside the vocabulary, and for ``16`` on a CPU (fp16 there is neither
        fast nor what Lightning would run: it silently trains bf16 instead).
    """
    value = normalize_precision(precision)
    if value == "16" and device_type(device) == "cpu":
        raise ValueError("precision 16 (fp16 mixed) runs on a GPU only; on a CPU use bf16 or 32")
    if value != "auto":
        return value
    return env_precision() or ("bf16" if native_bf16(device) else "32")


def lightning_precision(resolved: str) -> str:
    """Lightning's ``precision`` setting for a resolved precision: ``32-true``, ``bf16-mixed``
    or ``16-mixed``."""
    if resolved not in LIGHTNING_PRECISION:
        raise ValueError(f"precision must be resolved to one of {', '.join(RESOLVED)} first, got {resolved!r}")
    return LIGHTNING_PRECISION[resolved]


def autocast_dtype(resolved: str):
    """The ``torch.autocast`` dtype of a resolved precision (``torch.float32`` for ``32``: no
    autocast)."""
    import torch

    dtypes = {"32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}
    if resolved not in dtypes:
        raise ValueError(f"precision must be resolved to one of {', '.join(RESOLVED)} first, got {resolved!r}")
    return dtypes[resolved]


def autocast(resolved: str, device: Any = "cpu"):
    """A ``torch.autocast`` context for a resolved precision on ``device`` (disabled for ``32``)."""
    import torch

    return torch.autocast(device_type(device), dtype=autocast_dtype(resolved), enabled=resolved != "32")


def describe_auto() -> str:
    """What ``auto`` resolves to on this machine, for help texts: ``"bf16"``, ``"32, from
    PROMOTERLAB_PRECISION"``, or per device where there is a GPU (``"bf16 on cuda, 32 on the CPU"``)."""
    import torch

    try:
        if env_precision():
            return f"{env_precision()}, from {ENV_VAR}"
    except ValueError as err:
        return f"unknown: {err}"
    cpu = resolve_precision("auto", "cpu")
    if torch.cuda.is_available():
        return f"{resolve_precision('auto', 'cuda')} on cuda, {cpu} on the CPU"
    return cpu


__all__ = ["ACCEPTED", "ENV_VAR", "PRECISIONS", "autocast", "autocast_dtype", "describe_auto", "device_type",
           "env_precision", "lightning_precision", "native_bf16", "normalize_precision", "resolve_precision"]
