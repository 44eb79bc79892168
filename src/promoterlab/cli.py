"""Command line: a thin layer over :mod:`promoterlab.api`.

Only typer and the standard library are imported here: torch, pandas, Lightning and the API are
imported inside the commands, so that ``promoterlab --help`` and argument errors answer at once.
Every check that needs no data runs before any work; every error is one ``error:`` line (exit 2);
every file a command writes goes through :func:`promoterlab.files.output_stream`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from promoterlab import cli_experiments, cli_interpret
from promoterlab.version import __version__
from promoterlab.cli_data import (
    LazyHelpCommand,
    _check_device,
    _check_folder,
    _check_output,
    _fail,
    _quiet_lightning,
    _open_run,
    _terminal,
    data_app,
    dream_app,
)
from promoterlab.cli_models import models_app
from promoterlab.cli_options import _bad_model_value, _option_error, _parse_options, _parse_range

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Predict gene expression from promoter DNA with LegNet and its hybrids.")
app.add_typer(data_app, name="data")
app.add_typer(dream_app, name="dream")
app.add_typer(models_app, name="models")

def _version(value: bool) -> None:
    if value:
        typer.echo(f"promoterlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Predict gene expression from promoter DNA with LegNet and its hybrids."""


@app.command(cls=LazyHelpCommand)
def train(
    data: Optional[Path] = typer.Argument(None, help="Training table: DREAM text, CSV or TSV (optionally .gz); "
                                                     "default: the path in --config."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write."),
    config: Optional[Path] = typer.Option(None, help="Start from this config.yaml; options below override it."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, help="Target column of a table with a header."),
    group_col: Optional[str] = typer.Option(None, help="Group column: no group is split across train/val."),
    drop_missing: bool = typer.Option(False, help="Drop rows with a missing or non-numeric target."),
    model: Optional[str] = typer.Option(None, help="Registered model name (see `promoterlab models --benchmark`; "
                                                   "default {model.name})."),
    width: Optional[float] = typer.Option(None, help="Channel width multiplier, > 0 (default: the model's; "
                                                     "{model.width} for {model.name})."),
    model_opt: list[str] = typer.Option([], help="Model hyperparameter KEY=VALUE (repeatable)."),
    loss: Optional[str] = typer.Option(None, help="kl (18 soft bins) or mse (default {train.loss})."),
    train_size: Optional[int] = typer.Option(None, help="Training sequences (default: all not in validation)."),
    val_size: Optional[int] = typer.Option(None, help="Validation sequences (default: a tenth of the rows, "
                                                      "at least 256 and at most 2,048)."),
    test_size: Optional[str] = typer.Option(None, help="Held-out test set, drawn before validation and never used "
                                                       "in training: rows, a fraction (0.1) or 0 for none (default: "
                                                       "a tenth of the rows, at least 256 and at most 2,048)."),
    test: Optional[Path] = typer.Option(None, help="Test on this measured file instead of a held-out split."),
    seq_len: Optional[int] = typer.Option(None, help="Model input length (default {data.seq_len})."),
    left_adapter: Optional[str] = typer.Option(None, help="Leading adapter replaced by the upstream plasmid "
                                               "(default the DREAM one; AACTGCATTTTTTTCACATC for de Boer 2020)."),
    clip_targets: Optional[str] = typer.Option(None, help="LOW,HIGH: clip training targets, e.g. 0,17 for "
                                               "values that slightly overshoot the bin scale."),
    val_singleton: Optional[bool] = typer.Option(None, "--val-singleton/--no-val-singleton",
                                                 help="Validation inputs carry the data's is_singleton flags "
                                                      "(default, as LegNet's DREAM code) or 0, as at prediction."),
    store: Optional[str] = typer.Option(None, help="Read the data through a memory-mapped sequence store: auto "
                                                   "(cached for tables of 32 MB or more), on (always cached), "
                                                   "off (in memory), or a store folder from 'promoterlab data "
                                                   "encode' (default {data.store})."),
    seed: Optional[int] = typer.Option(None, help="Seed of split, initialisation and batch order "
                                                  "(default {run.seed})."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (default {train.epochs})."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size, capped by the data "
                                                        "(default {train.batch_size})."),
    lr: Optional[float] = typer.Option(None, help="OneCycle maximum learning rate (default {train.max_lr})."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay (default {train.weight_decay})."),
    max_time: Optional[float] = typer.Option(None, help="Wall-clock budget in minutes; the best checkpoint is "
                                                        "kept. Without --model and --width, a budget too short "
                                                        "for the model (under 400 steps) trains a narrower one "
                                                        "(default {train.max_time})."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience in epochs "
                                                      "(default {train.patience})."),
    schedule: Optional[str] = typer.Option(None, help="Learning-rate schedule: onecycle over --epochs, or plateau: "
                                                      "hold the peak rate until validation has not improved for "
                                                      "--patience epochs, then anneal over --cooldown-epochs and "
                                                      "stop (default {train.schedule})."),
    cooldown_epochs: Optional[int] = typer.Option(None, help="Annealing epochs of --schedule plateau "
                                                             "(default {train.cooldown_epochs})."),
    precision: Optional[str] = typer.Option(None, help="32, bf16-mixed, ... (default {train.precision})."),
    accelerator: Optional[str] = typer.Option(None, help="Lightning accelerator: cpu, gpu, auto "
                                                         "(default {train.accelerator})."),
    devices: Optional[str] = typer.Option(None, help="Lightning devices (default {train.devices})."),
    strategy: Optional[str] = typer.Option(None, help="Lightning strategy, e.g. ddp (default {train.strategy})."),
    num_nodes: Optional[int] = typer.Option(None, help="Lightning nodes (default {train.num_nodes})."),
    augment: Optional[str] = typer.Option(None, help="evoaug[:KEY=VALUE,...]: EvoAug on the training inserts "
                                                     "(e.g. evoaug:mutation=0.1,max_augs=1), or none "
                                                     "(default {train.augment})."),
    finetune_epochs: Optional[int] = typer.Option(None, help="Epochs after --epochs on unaugmented data at a "
                                                             "constant lr/10 (default {train.finetune_epochs})."),
    averaging: Optional[str] = typer.Option(None, help="Weight averaging: ema[:DECAY], swa[:EPOCHS] or none; the "
                                                       "saved model is the final average (default "
                                                       "{train.averaging})."),
    ensemble: Optional[int] = typer.Option(None, min=1, help="Train this many seeds (--seed, --seed + 1, ...) on one "
                                                             "split into OUT/seed=*/, with the ensemble's validation "
                                                             "metrics in OUT/summary.json; predict and evaluate take "
                                                             "OUT as an ensemble (default: 3 for training sets of at "
                                                             "most 20,480 sequences without --max-time, else 1)."),
    init_from: Optional[str] = typer.Option(None, help="Fine-tune: start from the weights of this run folder "
                                                       "(an ensemble: its member of the same seed) or registered "
                                                       "pretrained model (promoterlab models list); the model is its "
                                                       "architecture (only --model-opt n_bins=K may differ: a new head)."),
    init_lr_scale: Optional[float] = typer.Option(None, help="With --init-from the peak learning rate is --lr times "
                                                             "this (default {train.init_lr_scale})."),
    freeze: Optional[str] = typer.Option(None, help="With --init-from: blocks:N keeps the stem and the first N blocks "
                                                    "fixed; head:EPOCHS trains only the head for the first EPOCHS "
                                                    "epochs (default {train.freeze})."),
    teacher: Optional[str] = typer.Option(None, help="Distil: a run folder, ensemble or registered model whose "
                                                     "predictions are mixed into the training labels."),
    teacher_weight: Optional[float] = typer.Option(None, help="Weight of the teacher's labels, 0..1; 1: the teacher's "
                                                              "alone (default {train.teacher_weight})."),
    teacher_extra: Optional[str] = typer.Option(None, help="Sequences the teacher alone labels, added to training: "
                                                           "mutate[:RATE] (that fraction of each insert redrawn) or "
                                                           "shuffle (each insert's bases shuffled) "
                                                           "(default {train.teacher_extra})."),
    teacher_copies: Optional[int] = typer.Option(None, help="--teacher-extra sequences per training sequence "
                                                            "(default {train.teacher_copies})."),
    teacher_sequences: Optional[Path] = typer.Option(None, help="A file of sequences (FASTA, table) the teacher "
                                                                "alone labels, added to training."),
    overwrite: bool = typer.Option(False, help="Replace a run of another config in --out (else refused; a run "
                                               "of the same config is resumed)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the final summary."),
) -> None:
    """Train a model and write a run directory (rerun the same command to resume an interrupted run)."""
    _check_folder(out)
    if width is not None and not (math.isfinite(width) and width > 0):
        _fail(f"--width must be > 0, got {width:g}")
    clip = _parse_range(clip_targets)
    options = _parse_options(model_opt)
    held_out = _parse_test_size(test_size)
    if test is not None and not test.is_file():
        _fail(f"--test {test}: file not found" if not test.exists() else f"--test {test}: not a file")
    if data is not None and not data.is_file():
        _fail(f"{data}: file not found" if not data.exists() else f"{data}: not a file")
    if teacher_sequences is not None and not teacher_sequences.is_file():
        _fail(f"--teacher-sequences {teacher_sequences}: file not found")
    for option, source in (("--init-from", init_from), ("--teacher", teacher)):
        if source and Path(source).exists() and Path(source).resolve() == out.resolve():
            _fail(f"{option} {source}: is --out; the run it starts from must stay as it is, choose another --out")

    from promoterlab.config import RunConfig, replace_fields
    from promoterlab.models import model_config

    try:
        base = RunConfig.load(config) if config else RunConfig()
    except (ValueError, OSError) as err:
        _fail(f"{config}: {err}" if str(config) not in str(err) else err)
    if data is None and not base.data.path:
        _fail("give a DATA file (or a --config with data.path)")
    try:
        data_cfg = replace_fields(base.data, path=str(data) if data else None, seq_col=seq_col,
                                  target_col=target_col, group_col=group_col, drop_missing=drop_missing or None,
                                  train_size=train_size, val_size=val_size, seq_len=seq_len, test_size=held_out,
                                  test_path=str(test) if test is not None else None,
                                  left_adapter=left_adapter, clip_targets=clip, val_singleton=val_singleton,
                                  store=store)
        train_cfg = replace_fields(base.train, loss=loss, epochs=epochs, batch_size=batch_size, max_lr=lr,
                                   weight_decay=weight_decay, max_time=max_time, patience=patience,
                                   precision=precision, accelerator=accelerator, devices=devices,
                                   strategy=strategy, num_nodes=num_nodes, augment=augment,
                                   finetune_epochs=finetune_epochs, averaging=averaging, schedule=schedule,
                                   cooldown_epochs=cooldown_epochs, init_from=init_from,
                                   init_lr_scale=init_lr_scale, freeze=freeze, teacher=teacher,
                                   teacher_weight=teacher_weight, teacher_extra=teacher_extra,
                                   teacher_copies=teacher_copies,
                                   teacher_sequences=str(teacher_sequences) if teacher_sequences else None,
                                   fit_width=False if model is not None or width is not None else None)
    except ValueError as err:
        _fail(_option_error(err))
    name = model or base.model.name
    inherited = {k: v for k, v in base.model.__dict__.items() if k != "name"} if name == base.model.name else {}
    overrides = {**inherited, **options, **({"width": width} if width is not None else {})}
    try:
        bad = _bad_model_value(type(model_config(name)), overrides)
        if bad:
            key, value, expected = bad
            where = f"--model-opt {key}={value}" if key in options else f"{config}: model.{key}"
            _fail(f"{where}: {key} must be {expected}, got {value!r}")
        model_cfg = model_config(name, **overrides)
    except (ValueError, TypeError) as err:
        _fail(err)
    if not Path(data_cfg.path).is_file():
        _fail(f"{data_cfg.path}: file not found")
    _check_accelerator(str(train_cfg.accelerator))
    run_cfg = RunConfig(data=data_cfg, model=model_cfg, train=train_cfg,
                        seed=seed if seed is not None else base.seed)
    run_cfg = _with_ensemble(run_cfg, ensemble, out, quiet)
    summary = _train(run_cfg, out, progress and not quiet, quiet, overwrite)
    if summary:  # empty on the ranks other than 0 of a multi-process (ddp) run
        typer.echo(json.dumps(summary, indent=2))


def _parse_test_size(text: str | None) -> int | float | None:
    """``--test-size`` as a row count or a fraction (None when not given)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        _fail(f"--test-size must be a number of rows, a fraction between 0 and 1, or 0, got {text!r}")
    if value.is_integer() and value >= 0 and "." not in text:
        return int(value)
    if not 0 < value < 1:
        _fail(f"--test-size must be a number of rows, a fraction between 0 and 1, or 0, got {text!r}")
    return value


def _check_accelerator(accelerator: str) -> None:
    """Fail on a GPU accelerator that this machine does not have (Lightning's own error is a traceback)."""
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    import torch

    if accelerator == "mps" and not torch.backends.mps.is_available():
        _fail(f"--accelerator {accelerator}: MPS is not available on this machine (use --accelerator cpu)")
    if accelerator != "mps" and not torch.cuda.is_available():
        _fail(f"--accelerator {accelerator}: CUDA is not available on this machine (use --accelerator cpu)")


def _with_ensemble(run_cfg: Any, ensemble: int | None, out: Path, quiet: bool) -> Any:
    """``run_cfg`` with the number of models to train: ``--ensemble``, the config's, or the
    default (:func:`~promoterlab.training.train.default_ensemble_size`, said on stderr); 1 for
    an ``out`` that already holds a single run (resumed as one)."""
    import dataclasses

    from promoterlab.data.readers import DataError
    from promoterlab.runs import LAST_CHECKPOINT, MODEL
    from promoterlab.training.train import SMALL_TRAINING_SET, default_ensemble_size

    if ensemble is None and run_cfg.train.ensemble == "auto":
        if any((out / name).exists() for name in (LAST_CHECKPOINT, MODEL)):
            ensemble = 1
        else:
            try:
                ensemble = default_ensemble_size(run_cfg)
            except (DataError, OSError) as err:
                _fail(err)
            if ensemble > 1 and not quiet:
                typer.echo(f"training an ensemble of {ensemble} models (the default for training sets of at most "
                           f"{SMALL_TRAINING_SET:,} sequences; --ensemble 1 trains one)", err=True)
    if ensemble is None:
        return run_cfg
    return dataclasses.replace(run_cfg, train=dataclasses.replace(run_cfg.train, ensemble=ensemble))


def _train(run_cfg: Any, out: Path, progress: bool, quiet: bool, overwrite: bool = False) -> dict:
    """``api.train`` (one model or an ensemble, as ``run_cfg.train.ensemble`` says) with Lightning
    quiet and errors as one line; an ``out`` that this call created and left empty is removed on
    failure. Ctrl-C says what was kept (exit 130)."""
    with _terminal(quiet):
        _quiet_lightning()
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from promoterlab import api
        from promoterlab.training.run import TrainingInterrupted

        created = not out.exists()
        try:
            return api.train(run_cfg, out, progress=progress, overwrite=overwrite)
        except TrainingInterrupted as err:
            _fail(err, code=130)
        except (ValueError, OSError, MisconfigurationException) as err:
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            _fail(err)


@app.command()
def predict(
    run_dir: list[Path] = typer.Argument(..., help="Run directory (or model.pt); several, a folder of runs or a "
                                                   "glob: an ensemble.", metavar="RUN"),
    input: Path = typer.Argument(..., help="FASTA, TSV/CSV or DREAM text file of sequences."),
    output: Path = typer.Option(..., "-o", "--output",
                                help="Output TSV: id, seq, prediction (ensembles add sd, n_models; "
                                     "'-': standard output)."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    id_col: Optional[str] = typer.Option(None, help="Id column of a table with a header (default: row index)."),
    batch_size: int = typer.Option(64, min=1, help="Sequences per forward pass (64 is fastest on a CPU)."),
    precision: str = typer.Option("auto", help="auto (bf16 where the CPU/GPU has it natively), bf16 or 32."),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1, mps)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Predict expression for new sequences (forward and reverse complement averaged), streamed:
    a file of any size is read and written in chunks. Several models predict their mean, with the
    standard deviation across them."""
    run = _open_run(run_dir)
    inputs = [*run.files(), input]
    _check_output(output, inputs)  # before the predictions, not after
    _check_device(device)
    from promoterlab import api

    try:
        n = api.write_predictions(run, input, output, seq_col, id_col, batch_size, device, progress,
                                  precision, inputs=inputs)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"wrote {n} predictions of {run.describe()} to {'standard output' if str(output) == '-' else output}",
               err=True)


@app.command()
def evaluate(
    paths: list[Path] = typer.Argument(..., help="RUN... DATA: run folder(s) (several, a folder of runs or a glob: "
                                                 "an ensemble), then the measured file (DREAM text, CSV/TSV; rows "
                                                 "without a value are skipped); with --split, only runs.",
                                       metavar="RUN... [DATA]"),
    split: Optional[str] = typer.Option(None, help="Evaluate on the run's own held-out rows instead of a file: test "
                                                   "(drawn before validation, never used in training) or val."),
    seq_col: Optional[str] = typer.Option(None, help="Sequence column of a table with a header."),
    target_col: Optional[str] = typer.Option(None, help="Target column of a table with a header."),
    batch_size: int = typer.Option(64, min=1, help="Sequences per forward pass (64 is fastest on a CPU)."),
    precision: str = typer.Option("auto", help="auto (bf16 where the CPU/GPU has it natively), bf16 or 32."),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1, mps)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (notices go to stderr)."),
    calibration_plot: Optional[Path] = typer.Option(None, help="Ensembles: save the calibration figure (±k sd "
                                                               "coverage, |error| against sd) here (.png, .pdf)."),
) -> None:
    """Pearson, Spearman, MSE and n of a trained model on measured data (or on its own held-out test
    rows with --split test); for an ensemble, of its mean, with the calibration of its sd (fraction
    inside ±1 and ±2 sd, Spearman |error| vs sd)."""
    if split is not None and split not in ("test", "val"):
        _fail(f"--split must be test or val, not {split!r}")
    if split is None and len(paths) < 2:
        _fail("give RUN and a measured DATA file, or --split test to evaluate on the run's held-out rows")
    run_dirs, data = (paths, None) if split else (paths[:-1], paths[-1])
    if data is not None and not data.is_file():
        _fail(f"{data}: file not found" if not data.exists() else f"{data}: not a file")
    _check_device(device)
    run = _open_run(run_dirs)
    if calibration_plot is not None:
        _check_output(calibration_plot, [*([data] if data else []), *run.files()])
    from promoterlab import api

    try:
        if data is None:
            metrics = api.evaluate_split(run, split, batch_size, device, precision, calibration_plot)
        else:
            metrics = api.evaluate(run, data, seq_col, target_col, batch_size, device, precision=precision,
                                   calibration_plot=calibration_plot)
    except (ValueError, OSError) as err:
        _fail(err)
    if not metrics.get("n"):
        _fail(f"{data}: no row has a measured value")
    # NaN (e.g. a correlation of constant predictions) is not JSON: null.
    metrics = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, allow_nan=False))
    else:
        typer.echo(f"{'model':13s} {run.describe()}")
        for key, value in metrics.items():
            text = (f"{value:.4f}" if isinstance(value, float) else "n/a" if value is None
                    else "[" + ", ".join(f"{v:.4f}" for v in value) + "]" if isinstance(value, list) else value)
            typer.echo(f"{key:13s} {text}")


@app.command()
def demo(
    out: Path = typer.Option(Path("promoterlab-demo"), "--out", "-o", help="Run directory to write."),
    n: int = typer.Option(6_000, min=2_048, help="Simulated sequences (1,024 are held out for validation)."),
    epochs: int = typer.Option(5, min=1, help="Epochs."),
    seed: int = typer.Option(0, help="Seed of the simulator and the run."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the final summary."),
) -> None:
    """Simulate a promoter library and train a small LegNet on it (a few minutes on a laptop CPU)."""
    _check_folder(out)
    from promoterlab.config import DataConfig, RunConfig, TrainConfig
    from promoterlab.data.simulate import write_library
    from promoterlab.models import model_config

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        library = write_library(out / "simulated_library.txt", n=n, seed=seed)
    except OSError as err:
        _fail(err)
    if not quiet:
        typer.echo(f"simulated {n} promoters -> {library}", err=True)
    run_cfg = RunConfig(
        data=DataConfig(path=str(library), val_size=1024),
        model=model_config("legnet", width=0.25),
        train=TrainConfig(loss="kl", epochs=epochs, accelerator="cpu", devices="1"),
        seed=seed,
    )
    try:
        summary = _train(run_cfg, out, progress and not quiet, quiet)
    except typer.Exit:
        if created:  # only the simulated library is there: leave nothing behind
            library.unlink(missing_ok=True)
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
        raise
    typer.echo(json.dumps(summary, indent=2))
    if not quiet:
        typer.echo(f"best validation Pearson {summary['best_val_pearson']:.3f}; curves in {out / 'curves.png'}",
                   err=True)


app.command()(cli_experiments.sweep)
app.command()(cli_experiments.tune)
app.command()(cli_experiments.results)
app.command()(cli_experiments.report)
app.command()(cli_interpret.explain)
app.command()(cli_interpret.variants)
app.command()(cli_interpret.motifs)
app.command()(cli_interpret.marginalize)


def main() -> None:  # pragma: no cover
    sys.exit(app())
