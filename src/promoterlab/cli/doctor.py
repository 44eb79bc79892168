"""``promoterlab doctor``: what this machine computes with, and how fast. torch and the training
modules are imported inside the command, so that help and argument errors answer at once."""

from __future__ import annotations

from typing import Optional

import typer

from promoterlab.cli.base import fail, json_option, print_json

PURPOSES = ("train", "predict")
PRECISIONS = ("auto", "32", "bf16")


def doctor(
    model: list[str] = typer.Option(["legnet", "legnet-s"], metavar="NAME", help="Registered models to check "
                                                                                 "(repeatable)."),
    purpose: list[str] = typer.Option(list(PURPOSES), metavar="train|predict", help="A training step and/or "
                                      "RC-averaged inference (repeatable)."),
    precision: list[str] = typer.Option(["auto"], metavar="auto|32|bf16", help="auto (what training and predict "
                                        "choose here), 32 or bf16 (repeatable: compare both)."),
    batch_size: Optional[int] = typer.Option(None, min=1, metavar="N", help="Sequences per step (default: 128 "
                                             "for train, 64 for predict, as on a CPU)."),
    retune: bool = typer.Option(False, "--retune", help="Measure again even where a choice is cached."),
    as_json: bool = json_option(),
) -> None:
    """This machine's CPU and the kernels each model runs fastest with, measured on first use and
    cached (delete the cache file to measure again; PROMOTERLAB_KERNELS=rule turns measuring off)."""
    for value in purpose:
        if value not in PURPOSES:
            fail(f"--purpose must be train or predict, not {value!r}")
    for value in precision:
        if value not in PRECISIONS:
            fail(f"--precision must be one of {', '.join(PRECISIONS)}, not {value!r}")
    from promoterlab.models import model_names

    for name in model:
        if name not in model_names():
            fail(f"--model: unknown model {name!r}; choose one of {', '.join(model_names())}")
    report = doctor_report(model, purpose, precision, batch_size, retune)
    if as_json:
        print_json(report)
        return
    machine = report["machine"]
    typer.echo(f"cpu: {machine['cpu']} ({machine['cores']} cores, {machine['threads']} threads used)")
    typer.echo(f"isa: {' '.join(machine['isa']) or 'unknown'}; torch {machine['torch']} runs "
               f"{machine['capability']} kernels; native bf16: {'yes' if machine['native_bf16'] else 'no'}")
    if machine["env"]:
        typer.echo("overrides: " + ", ".join(f"{k}={v}" for k, v in machine["env"].items()))
    typer.echo(f"cache: {report['cache']}")
    for row in report["choices"]:
        speedup = f", {row['speedup_over_rule']:.2f}x the rule" if row.get("speedup_over_rule") else ""
        typer.echo(f"\n{row['model']} {row['purpose']} ({row['precision']}, batch {row['batch_size']}): "
                   f"{row['label']} [{row['source']}{speedup}]")
        for label, rate in sorted(row["rates"].items(), key=lambda item: -item[1]):
            typer.echo(f"  {label:<24}{rate:>10.1f} seq/s")


def doctor_report(models: list[str], purposes: list[str], precisions: list[str], batch_size: int | None,
                  retune: bool) -> dict:
    """The machine signature and one kernel choice per model, purpose and precision."""
    import torch

    from promoterlab.models import build_model, model_config
    from promoterlab.models.autotune import choose_kernels
    from promoterlab.models.kernel_cache import CACHE_FILE, cache_dir, machine_signature
    from promoterlab.precision import native_bf16, resolve_precision
    from promoterlab.training.hardware import CPU_BATCH_SIZE, CPU_EVAL_BATCH_SIZE

    machine = {**machine_signature(), "threads": torch.get_num_threads(), "native_bf16": native_bf16("cpu")}
    choices = []
    for name in models:
        net = build_model(model_config(name), 18)
        for purpose in purposes:
            batch = batch_size or (CPU_BATCH_SIZE if purpose == "train" else CPU_EVAL_BATCH_SIZE)
            for asked in dict.fromkeys(precisions):
                resolved = resolve_precision(asked, "cpu")
                choice = choose_kernels(net, purpose, resolved, batch, retune=retune)
                choices.append({"model": name, **choice.to_dict(), "speedup_over_rule": choice.speedup_over_rule()})
    return {"machine": machine, "cache": str(cache_dir() / CACHE_FILE), "choices": choices}
