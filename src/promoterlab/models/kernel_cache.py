"""Where kernel choices are kept and what they are keyed by: the machine (CPU model, ISA flags,
PyTorch's CPU capability and version, the ISA environment overrides) and the model and purpose.

The cache is one JSON file (:data:`CACHE_FILE`) in the user cache folder (:func:`cache_dir`);
entries are plain dicts under the hash of their key. A missing, corrupt or outdated file reads
as empty, so deleting it only costs the next run its measurement
(:mod:`promoterlab.models.autotune` measures and decides).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from promoterlab.models.kernels import is_bf16

CACHE_ENV = "PROMOTERLAB_CACHE_DIR"
CACHE_FILE = "kernels.json"
CACHE_VERSION = 1
# Environment variables that change which CPU kernels PyTorch and oneDNN run.
ISA_ENV_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS")
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "asimd", "sve", "bf16")

def cache_dir() -> Path:
    """``$PROMOTERLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/promoterlab`` (``~/.cache/promoterlab``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "promoterlab"


def _cpuinfo() -> tuple[str, list[str]]:
    """CPU model name and flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", []
    model, flags = "", []
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name in ("model name", "Model", "CPU part") and not model:
            model = value.strip()
        elif name in ("flags", "Features") and not flags:
            flags = value.split()
    return model, flags


def load_per_core() -> float | None:
    """The 1-minute load average per core (``None`` where the system does not report it)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return None


def machine_signature() -> dict:
    """What the fastest kernels depend on besides the model: CPU model and ISA flags, PyTorch's
    CPU capability and version, core count and the ISA environment overrides."""
    model, flags = _cpuinfo()
    return {"cpu": model or platform.processor() or platform.machine(),
            "isa": sorted(set(flags) & set(ISA_FLAGS)),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__.split("+")[0],
            "cores": os.cpu_count(),
            "env": {name: os.environ[name] for name in ISA_ENV_VARS if os.environ.get(name)}}


def tuning_key(model: nn.Module, purpose: str, precision: str, batch_size: int, threads: int) -> dict:
    """Everything a cached choice is valid for (the cache entry's name is its hash)."""
    cfg = getattr(model, "cfg", None)
    config = asdict(cfg) if cfg is not None else {"repr": repr(model)}
    return {"purpose": purpose, "model": type(model).__name__, "config": config,
            "n_outputs": getattr(model, "n_outputs", None), "precision": "bf16" if is_bf16(precision) else "32",
            "batch_size": int(batch_size), "threads": int(threads), **machine_signature()}


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


def read_cache(path: Path) -> dict:
    """The cache's entries (``{}`` for a missing, corrupt or outdated file)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]
