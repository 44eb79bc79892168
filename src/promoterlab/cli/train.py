"""``promoterlab train`` and ``promoterlab demo``: a thin layer over :func:`promoterlab.api.train`.

``train``'s data and recipe options are generated from the config dataclasses
(:mod:`promoterlab.cli.options`): each is written once, as a config field with its help.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any, Optional

import typer

from promoterlab.cli.base import (check_folder, check_input_path, check_precision, fail, json_option,
                                  old_out_option, output_or_old, print_json, progress_option, quiet_option, say,
                                  terminal)
from promoterlab.cli.options import (bad_model_value, config_changes, config_parameters, option_error,
                                     parse_model_options, with_parameters)

TRAIN_HELP = """Train a model, or the default ensemble of models, and write a run folder: config, split,
per-epoch metrics, curves, held-out test metrics, a model card and the model. Without --epochs or
--max-time the whole command fits a 12-minute budget on this machine and says how long it will take
before it starts; rerun the same command to resume an interrupted run."""


def _parameters() -> list[inspect.Parameter]:
    def option(name: str, default: Any, annotation: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    return [
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[Path],
                          default=typer.Argument(None, help="Training table: DREAM text (seq<TAB>expr), CSV or TSV "
                                                            "with a header, optionally .gz (default: the path in "
                                                            "--config).", metavar="DATA", show_default=False)),
        option("output", typer.Option(None, "-o", "--output", metavar="FOLDER", help="Run folder to write (a "
                                      "folder: config.yaml, model.pt, summary.json, ...)."), Optional[Path]),
        option("out", old_out_option(), Optional[Path]),
        option("config", typer.Option(None, metavar="FILE", help="Start from this config.yaml; options given "
                                      "here override it."), Optional[Path]),
        option("model", typer.Option(None, metavar="NAME", help="Registered model (promoterlab models list "
                                     "--benchmark; default legnet)."), Optional[str]),
        option("width", typer.Option(None, metavar="X", help="Channel width multiplier, > 0 (default: the "
                                     "model's)."), Optional[float]),
        option("model_opt", typer.Option([], metavar="KEY=VALUE", help="Model hyperparameter (repeatable), "
                                         "e.g. rho=0.2."), list[str]),
        *config_parameters(),
        option("seed", typer.Option(None, metavar="N", help="Seed of split, initialisation and batch order "
                                    "(default 0)."), Optional[int]),
        option("overwrite", typer.Option(False, "--overwrite", help="Replace a run of another config in the output folder "
                                         "(else refused; a run of the same config is resumed)."), bool),
        option("progress", progress_option(), bool),
        option("quiet", quiet_option(), bool),
        option("as_json", json_option(), bool),
    ]


def _train(**values: Any) -> None:
    output = output_or_old(values["output"], values["out"])
    data, config, model, width = values["data"], values["config"], values["model"], values["width"]
    quiet = values["quiet"]
    check_folder(output, "-o/--output")
    if width is not None and not (math.isfinite(width) and width > 0):
        fail(f"--width must be > 0, got {width:g}")
    options = parse_model_options(values["model_opt"])
    changes = config_changes(values)
    check_input_path(data, kind="regular")  # read more than once (its size, the split, the store)
    check_input_path(config, "--config")
    check_input_path(_path(changes["data"].get("test_path")), "--test")
    check_input_path(_path(changes["train"].get("teacher_sequences")), "--teacher-sequences")
    for option, source in (("--init-from", changes["train"].get("init_from")),
                           ("--teacher", changes["train"].get("teacher"))):
        if source and Path(source).exists() and Path(source).resolve() == output.resolve():
            fail(f"{option} {source}: is the output folder; the run it starts from must stay as it is, choose "
                 "another -o/--output")
    store = changes["data"].get("store")
    if store is not None and store not in ("auto", "on", "off"):
        check_input_path(Path(store), "--store", kind="folder")
    if "precision" in changes["train"]:
        changes["train"]["precision"] = check_precision(changes["train"]["precision"])

    from promoterlab.config import RunConfig
    from promoterlab.models import model_config

    try:
        base = RunConfig.load(config) if config else RunConfig()
    except (ValueError, OSError) as err:
        fail(f"{config}: {err}" if str(config) not in str(err) else err)
    if data is None and not base.data.path:
        fail("give a DATA file (or a --config with data.path)")
    if data is not None:
        changes["data"]["path"] = str(data)
    if model is not None or width is not None:
        changes["train"]["fit_width"] = False
    try:
        data_cfg = dataclasses.replace(base.data, **changes["data"])
        train_cfg = dataclasses.replace(base.train, **changes["train"])
    except ValueError as err:
        fail(option_error(err))
    name = model or base.model.name
    inherited = {k: v for k, v in base.model.__dict__.items() if k != "name"} if name == base.model.name else {}
    overrides = {**inherited, **options, **({"width": width} if width is not None else {})}
    try:
        bad = bad_model_value(type(model_config(name)), overrides)
        if bad:
            key, value, expected = bad
            where = f"--model-opt {key}={value}" if key in options else f"{config}: model.{key}"
            fail(f"{where}: {key} must be {expected}, got {value!r}")
        model_cfg = model_config(name, **overrides)
    except (ValueError, TypeError) as err:
        fail(err)
    check_input_path(Path(data_cfg.path), "" if data else f"{config}: data.path", kind="regular")
    _check_accelerator(str(train_cfg.accelerator))
    if train_cfg.precision == "16":
        from promoterlab.training.hardware import accelerator_kind

        check_precision(train_cfg.precision, accelerator_kind(str(train_cfg.accelerator)))
    seed = values["seed"] if values["seed"] is not None else base.seed
    run_cfg = _with_ensemble(RunConfig(data=data_cfg, model=model_cfg, train=train_cfg, seed=seed), output, quiet)
    summary = run_training(run_cfg, output, values["progress"] and not quiet, quiet, values["overwrite"])
    if summary and values["as_json"]:  # empty on the ranks other than 0 of a multi-process (ddp) run
        print_json(summary)


train = with_parameters(_train, _parameters())
train.__doc__ = TRAIN_HELP


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def _check_accelerator(accelerator: str) -> None:
    """Fail on a GPU accelerator that this machine does not have (Lightning's own error is a traceback)."""
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    import torch

    if accelerator == "mps" and not torch.backends.mps.is_available():
        fail(f"--accelerator {accelerator}: MPS is not available on this machine (use --accelerator cpu)")
    if accelerator != "mps" and not torch.cuda.is_available():
        fail(f"--accelerator {accelerator}: CUDA is not available on this machine (use --accelerator cpu)")


def _with_ensemble(run_cfg: Any, out: Path, quiet: bool) -> Any:
    """``run_cfg`` with the number of models to train: its own, or the default
    (:func:`~promoterlab.training.train.default_ensemble_size`, said on stderr); 1 for an ``out``
    that already holds a single run (resumed as one)."""
    from promoterlab.data.readers import DataError
    from promoterlab.runs import LAST_CHECKPOINT, MODEL
    from promoterlab.training.train import SMALL_TRAINING_SET, default_ensemble_size

    if run_cfg.train.ensemble != "auto":
        return run_cfg
    if any((out / name).exists() for name in (LAST_CHECKPOINT, MODEL)):
        ensemble = 1
    else:
        try:
            ensemble = default_ensemble_size(run_cfg)
        except (DataError, OSError) as err:
            fail(err)
        if ensemble > 1:
            say(f"training an ensemble of {ensemble} models (the default for training sets of at most "
                f"{SMALL_TRAINING_SET:,} sequences; --ensemble 1 trains one)", quiet)
    return dataclasses.replace(run_cfg, train=dataclasses.replace(run_cfg.train, ensemble=ensemble))


def run_training(run_cfg: Any, out: Path, progress: bool, quiet: bool, overwrite: bool = False) -> dict:
    """``api.train`` (one model or an ensemble, as ``run_cfg.train.ensemble`` says) with Lightning
    quiet and errors as one line; an ``out`` that this call created and left empty is removed on
    failure. Ctrl-C says what was kept (exit 130)."""
    with terminal(quiet):
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from promoterlab import api
        from promoterlab.training.run import TrainingInterrupted

        from promoterlab.runs import writing

        created = not out.exists()
        try:
            with writing(out):
                return api.train(run_cfg, out, progress=progress, overwrite=overwrite)
        except TrainingInterrupted as err:
            fail(err, code=130)
        except (ValueError, OSError, MisconfigurationException) as err:
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            fail(err)


DEMO_MINUTES = 1.6
# Width 0.25 learns the planted motifs in the ~250 steps that 1.6 minutes fit on a 2-core AVX2 CPU
# (val r 0.88-0.90); the budget's own choice there, width 0.125, gave 0.79-0.90 (BENCHMARKS.md).
DEMO_WIDTH = 0.25


def demo(
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FOLDER",
                                          help="Folder to write: the simulated library and the run "
                                               "(default: promoterlab-demo)."),
    out: Optional[Path] = old_out_option(),
    n: int = typer.Option(6_000, min=2_048, metavar="N", help="Simulated promoters."),
    minutes: float = typer.Option(DEMO_MINUTES, metavar="MINUTES", help="Training time budget."),
    seed: int = typer.Option(0, metavar="N", help="Seed of the simulator and the run."),
    progress: bool = progress_option(),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Simulate a library of promoters with planted yeast motifs and train LegNet (width 0.25) on it
    within a time budget (under 2 minutes on a 2-core laptop)."""
    if out is not None or output is not None:
        output = output_or_old(output, out)
    output = output or Path("promoterlab-demo")
    check_folder(output, "-o/--output")
    if not (math.isfinite(minutes) and minutes > 0):
        fail(f"--minutes must be > 0, got {minutes:g}")
    from promoterlab.config import DataConfig, RunConfig, TrainConfig
    from promoterlab.data.simulate import write_library
    from promoterlab.models import model_config

    created = not output.exists()
    try:
        output.mkdir(parents=True, exist_ok=True)
        library = write_library(output / "simulated_library.txt", n=n, seed=seed)
    except OSError as err:
        fail(err)
    say(f"simulated {n} promoters -> {library}", quiet)
    run_cfg = RunConfig(data=DataConfig(path=str(library)), model=model_config("legnet", width=DEMO_WIDTH),
                        train=TrainConfig(loss="kl", max_time=minutes, accelerator="cpu", devices="1", ensemble=1,
                                          fit_width=False), seed=seed)
    try:
        summary = run_training(run_cfg, output, progress and not quiet, quiet)
    except typer.Exit:
        if created:  # only the simulated library is there: leave nothing behind
            library.unlink(missing_ok=True)
            if output.is_dir() and not any(output.iterdir()):
                output.rmdir()
        raise
    if as_json:
        print_json(summary)
    say(f"validation Pearson {summary['best_val_pearson']:.3f}, held-out test Pearson "
        f"{summary['test']['pearson']:.3f}; curves in {output / 'curves.png'}", quiet)
