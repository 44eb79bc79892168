"""Parameter counts and training step times of the registered models on this machine."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence

import pandas as pd
import torch

from promoterlab.models import build_model, count_parameters, model_config, model_names
from promoterlab.objective import Objective
from promoterlab.sequence import Layout, model_input
from promoterlab.models.autotune import apply_choice, choose_kernels


def step_time_per_1000(model_name: str, width: float, n_outputs: int = 18, batch_size: int = 128,
                       repeats: int = 3, warmup: int = 1, device: str = "cpu",
                       seq_len: int = Layout().seq_len) -> float:
    """Seconds of training per 1,000 sequences: forward, loss, backward and an AdamW step.

    Parameters
    ----------
    model_name : str
        Registered model name (its preset width is replaced by ``width``).
    width : float
        Channel width multiplier.
    n_outputs : int
        Bin logits (KL loss, e.g. 18) or 1 value (MSE loss).
    batch_size : int
        Sequences per step (random one-hot inputs of length ``seq_len``).
    repeats : int
        Timed steps; the median is reported, which resists load from other processes.
    warmup : int
        Untimed steps first (allocator and kernel warm-up).
    device : str
        Torch device.
    seq_len : int
        Input length.

    Returns
    -------
    float
        Median step time divided by ``batch_size``, times 1,000.
    """
    generator = torch.Generator().manual_seed(0)
    model = build_model(model_config(model_name, width=width, seq_len=seq_len), n_outputs).to(device).train()
    # fp32 steps: with the kernels chosen for fp32 on this machine (cached), else the fp32 rule
    apply_choice(model, choose_kernels(model, "train", "32", batch_size, device=device, max_seconds=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    codes = torch.randint(0, 4, (batch_size, seq_len), generator=generator, dtype=torch.uint8)
    x = model_input(codes, False).to(device)
    objective = Objective("kl", n_outputs) if n_outputs > 1 else Objective("mse")
    y = (torch.rand(batch_size, generator=generator) * (max(n_outputs, 2) - 1)).to(device)

    def step() -> float:
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        objective.loss_value(model(x), y).backward()
        optimizer.step()
        _sync(device)
        return time.perf_counter() - start

    for _ in range(warmup):
        step()
    return statistics.median(step() for _ in range(max(1, repeats))) / batch_size * 1000


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def models_table(widths: Sequence[float] = (1.0, 0.5), names: Sequence[str] | None = None,
                 batch_size: int = 128, repeats: int = 3, device: str = "cpu") -> pd.DataFrame:
    """One row per distinct registered model: parameters and training step time per width.

    Width presets (``legnet-s`` is ``legnet`` at width 0.5) are the same network as their
    base model at every width, so they are folded into its row.

    Parameters
    ----------
    widths : sequence of float
        Widths to time; the default pairs width 1 with the ``legnet-s`` width.
    names : sequence of str, optional
        Models to list (default: every registered model).
    batch_size, repeats, device
        As in :func:`step_time_per_1000`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``params`` (width 1, 18-bin head) and ``step_s_per_1000_w{width}``
        (e.g. ``step_s_per_1000_w1``, ``step_s_per_1000_w0.5``).
    """
    rows, seen = [], set()
    for name in names if names is not None else model_names():
        cfg = model_config(name, width=1.0)
        model = build_model(cfg, 18)
        key = (type(model), repr({k: v for k, v in dataclasses.asdict(cfg).items() if k != "name"}))
        if key in seen:
            continue
        seen.add(key)
        row = {"model": name, "params": count_parameters(model)}
        for width in widths:
            row[f"step_s_per_1000_w{width:g}"] = step_time_per_1000(
                name, width, batch_size=batch_size, repeats=repeats, device=device)
        rows.append(row)
    return pd.DataFrame(rows)
