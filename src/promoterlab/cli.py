"""Command line: a thin layer over :mod:`promoterlab.api`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
import yaml

from promoterlab import api, cli_experiments
from promoterlab.cli_data import _fail, data_app, dream_app
from promoterlab.config import DataConfig, RunConfig, TrainConfig, replace_fields
from promoterlab.data.readers import DataError
from promoterlab.data.simulate import write_library
from promoterlab.files import write_text_atomic
from promoterlab.models import model_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Predict gene expression from promoter DNA with LegNet and its hybrids.")
app.add_typer(data_app, name="data")
app.add_typer(dream_app, name="dream")


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            _fail(f"--model-opt expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return options


def _parse_range(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--clip-targets expects LOW,HIGH (e.g. 0,17), got {text!r}") from None
    return [low, high]


@app.command()
def train(
    data: Optional[Path] = typer.Argument(None, help="Training table: DREAM text, CSV or TSV (optionally .gz); "
                                                     "default: the path in --config."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write."),
    config: Optional[Path] = typer.Option(None, help="Start from this config.yaml; options below override it."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, help="Target column of a table with a header."),
    group_col: Optional[str] = typer.Option(None, help="Group column: no group is split across train/val."),
    drop_missing: bool = typer.Option(False, help="Drop rows with a missing or non-numeric target."),
    model: Optional[str] = typer.Option(None, help="Registered model name (see `promoterlab models`)."),
    width: Optional[float] = typer.Option(None, help="Channel width multiplier."),
    model_opt: list[str] = typer.Option([], help="Model hyperparameter KEY=VALUE (repeatable)."),
    loss: Optional[str] = typer.Option(None, help="kl (18 soft bins) or mse."),
    train_size: Optional[int] = typer.Option(None, help="Training sequences (default: all not in validation)."),
    val_size: Optional[int] = typer.Option(None, help="Validation sequences (default 2048)."),
    seq_len: Optional[int] = typer.Option(None, help="Model input length (default 150)."),
    left_adapter: Optional[str] = typer.Option(None, help="Leading adapter replaced by the upstream plasmid "
                                               "(default the DREAM one; AACTGCATTTTTTTCACATC for de Boer 2020)."),
    clip_targets: Optional[str] = typer.Option(None, help="LOW,HIGH: clip training targets, e.g. 0,17 for "
                                               "values that slightly overshoot the bin scale."),
    val_singleton: Optional[bool] = typer.Option(None, "--val-singleton/--no-val-singleton",
                                                 help="Validation inputs carry the data's is_singleton flags "
                                                      "(default, as LegNet's DREAM code) or 0, as at prediction."),
    seed: Optional[int] = typer.Option(None, help="Seed of split, initialisation and batch order."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size (capped by the data)."),
    lr: Optional[float] = typer.Option(None, help="OneCycle maximum learning rate (default 0.005)."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay (default 0.01)."),
    max_time: Optional[float] = typer.Option(None, help="Wall-clock budget in minutes; the best checkpoint is kept."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience in epochs."),
    precision: Optional[str] = typer.Option(None, help="32 or bf16-mixed."),
    accelerator: Optional[str] = typer.Option(None, help="Lightning accelerator (cpu, gpu, auto)."),
    devices: Optional[str] = typer.Option(None, help="Lightning devices."),
    strategy: Optional[str] = typer.Option(None, help="Lightning strategy (e.g. ddp)."),
    num_nodes: Optional[int] = typer.Option(None, help="Lightning nodes."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train a model and write a run directory."""
    try:
        base = RunConfig.load(config) if config else RunConfig()
        if data is None and not base.data.path:
            raise ValueError("give a DATA file (or a --config with data.path)")
        data_cfg = replace_fields(base.data, path=str(data) if data else None, seq_col=seq_col, target_col=target_col,
                                  group_col=group_col, drop_missing=drop_missing or None,
                                  train_size=train_size, val_size=val_size, seq_len=seq_len,
                                  left_adapter=left_adapter, clip_targets=_parse_range(clip_targets),
                                  val_singleton=val_singleton)
        train_cfg = replace_fields(base.train, loss=loss, epochs=epochs, batch_size=batch_size, max_lr=lr,
                                   weight_decay=weight_decay, max_time=max_time, patience=patience,
                                   precision=precision, accelerator=accelerator, devices=devices,
                                   strategy=strategy, num_nodes=num_nodes)
        name = model or base.model.name
        inherited = {k: v for k, v in base.model.__dict__.items() if k != "name"} if name == base.model.name else {}
        overrides = {**inherited, **_parse_options(model_opt), **({"width": width} if width else {})}
        model_cfg = model_config(name, **overrides)
        run_cfg = RunConfig(data=data_cfg, model=model_cfg, train=train_cfg,
                            seed=seed if seed is not None else base.seed)
        summary = api.train(run_cfg, out, progress=progress)
    except (DataError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="Run directory (or model.pt)."),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of sequences."),
    output: Path = typer.Option(..., "-o", "--output", help="Output TSV: id, seq, prediction."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, help="Id column of a table with a header (default: row index)."),
    batch_size: int = typer.Option(128, help="Sequences per forward pass (small batches are fastest on CPUs)."),
    device: str = typer.Option("cpu", help="Torch device."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Predict expression for new sequences (forward and reverse complement averaged)."""
    try:
        frame = api.predict_file(run_dir, input, seq_col, id_col, batch_size, device, progress)
    except (DataError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    write_text_atomic(output, frame.to_csv(sep="\t", index=False))
    typer.echo(f"wrote {len(frame)} predictions to {output}", err=True)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory (or model.pt)."),
    data: Path = typer.Argument(..., help="Measured file (DREAM text, CSV/TSV); rows without a value are skipped."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, help="Target column of a table with a header."),
    batch_size: int = typer.Option(128, help="Sequences per forward pass (small batches are fastest on CPUs)."),
    device: str = typer.Option("cpu", help="Torch device."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Pearson, Spearman, MSE and n of a trained model on measured data."""
    try:
        metrics = api.evaluate(run_dir, data, seq_col, target_col, batch_size, device)
    except (DataError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            typer.echo(f"{key:10s} {value:.4f}" if isinstance(value, float) else f"{key:10s} {value}")


@app.command()
def demo(
    out: Path = typer.Option(Path("promoterlab-demo"), "--out", "-o", help="Run directory to write."),
    n: int = typer.Option(6_000, help="Simulated sequences."),
    epochs: int = typer.Option(5, help="Epochs."),
    seed: int = typer.Option(0, help="Seed of the simulator and the run."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Simulate a promoter library and train a small LegNet on it (a few minutes on a laptop CPU)."""
    out.mkdir(parents=True, exist_ok=True)
    library = write_library(out / "simulated_library.txt", n=n, seed=seed)
    typer.echo(f"simulated {n} promoters -> {library}", err=True)
    run_cfg = RunConfig(
        data=DataConfig(path=str(library), val_size=1024),
        model=model_config("legnet", width=0.25),
        train=TrainConfig(loss="kl", epochs=epochs, batch_size=256, accelerator="cpu", devices="1"),
        seed=seed,
    )
    summary = api.train(run_cfg, out, progress=progress)
    typer.echo(json.dumps(summary, indent=2))
    typer.echo(f"best validation Pearson {summary['best_val_pearson']:.3f}; curves in {out / 'curves.png'}",
               err=True)


@app.command()
def models(
    repeats: int = typer.Option(3, help="Timed training steps per model and width (median reported)."),
    device: str = typer.Option("cpu", help="Torch device to time on."),
) -> None:
    """Registered models: parameters and training step time per 1,000 sequences on this machine."""
    from promoterlab.models.timing import models_table

    table = models_table(widths=(1.0, 0.5), repeats=repeats, device=device)
    typer.echo(f"{'model':<20}{'parameters':>12}{'s/1000 seqs (width 1)':>24}{'s/1000 seqs (legnet-s width 0.5)':>34}")
    for row in table.itertuples(index=False):
        typer.echo(f"{row[0]:<20}{row[1]:>12,}{row[2]:>24.2f}{row[3]:>34.2f}")


app.command()(cli_experiments.sweep)
app.command()(cli_experiments.tune)
app.command()(cli_experiments.results)
app.command()(cli_experiments.report)


def main() -> None:  # pragma: no cover
    sys.exit(app())
