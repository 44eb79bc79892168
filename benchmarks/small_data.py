"""The best model from a few thousand measurements: today's recipe against EvoAug, weight averaging
and ensembles, with paired bootstrap intervals (issue 13).

Two tasks, ``legnet-s`` throughout, the same number of epochs for every model of a task:

- ``dream``: 5,120 DREAM 2022 training sequences, 2,048 validation (seeded); test = the 9,045
  public-leaderboard sequences, scored with the challenge's official weighted Pearson and Spearman
  scores and with plain Pearson r;
- ``native``: 10,240 de Boer 2020 native fragments (validation drawn by ``group``); test =
  ``test.tsv.gz`` (8,003, no group shared with the pool).

Recipes (each a run directory under ``--out/TASK/RECIPE/seed=S``):

- ``base``: today's recipe (RC augmentation, OneCycle, the best validation epoch), seeds 0-4. The
  same runs also carry two weight averages, tracked alongside without touching training, validation
  or checkpoints, so that best epoch, EMA and SWA are compared on one trajectory: ``ema`` (the
  product's :class:`~promoterlab.training.averaging.EMA`) and ``swa`` (its
  :class:`~promoterlab.training.averaging.SWA`, BatchNorm recomputed) final weights;
- ``evoaug``: ``--augment evoaug`` for all but the last ``--finetune`` epochs, then unaugmented
  fine-tuning at a 10x lower learning rate (Lee et al. 2023), seeds 0-2, same total epochs;
- ensembles, from those runs: the mean of base seeds 0-2 (``ens3``) and 0-4 (``ens5``), of their EMA
  models, and of the three EvoAug runs.

Every difference is reported against ``base`` with a paired bootstrap over test sequences
(:mod:`promoterlab.evaluation.bootstrap`); ``seeds better`` counts the paired seeds in which the
recipe's own test Pearson is higher. Finished runs are kept: running the script again trains only
what is missing, then rewrites the tables.

    python benchmarks/small_data.py --jobs 2 --out bench_out/small_data
    python benchmarks/small_data.py --report-only --out bench_out/small_data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import update_bn

from promoterlab import api
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.dataset import encode_sequences, load_split
from promoterlab.data.readers import read_table
from promoterlab.evaluation.bootstrap import paired_delta
from promoterlab.evaluation.dream import load_truth, score
from promoterlab.evaluation.ensemble import calibration
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.evaluation.predict import predict
from promoterlab.models import build_model, model_config
from promoterlab.training.averaging import EMA, SWA
from promoterlab.objective import Objective
from promoterlab.runs import load_run

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DREAM = SHARED / "dream2022"
NATIVE = SHARED / "deboer2020_native"
WEIGHTS = ("best", "ema", "swa")


def task_data(task: str) -> DataConfig:
    if task == "dream":
        return DataConfig(path=str(DREAM / "train" / "train_sequences_7369.txt"), train_size=5120, val_size=2048)
    return DataConfig(path=str(NATIVE / "pool.tsv.gz"), seq_col="seq", target_col="el_combined", group_col="group",
                      drop_missing=True, train_size=10240, val_size=2048, left_adapter="AACTGCATTTTTTTCACATC",
                      singleton_channel=False, clip_targets=(0, 17))


def run_config(task: str, recipe: str, seed: int, args) -> RunConfig:
    epochs = args.epochs[task]
    data = task_data(task)
    if args.smoke:
        data = dataclasses.replace(data, train_size=512, val_size=256)
    train = TrainConfig(loss="kl", epochs=epochs, accelerator="cpu", devices="1", ensemble=1)
    if recipe == "evoaug":
        train = TrainConfig(loss="kl", epochs=epochs - args.finetune, finetune_epochs=args.finetune,
                            augment="evoaug", accelerator="cpu", devices="1", ensemble=1)
    return RunConfig(data=data, model=model_config("legnet-s"), train=train, seed=seed)


# --- weight averages tracked alongside a run ------------------------------------------------------

class _Shadow:
    """Mixin: a weight average that leaves training, validation and checkpoints alone and saves
    its final weights to ``path``."""

    path: Path

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        pass

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        pass

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        pass

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        pass

    def finish(self, trainer) -> None:
        average = self._average_model.module
        if isinstance(self, SWA) and self.recompute_bn:
            update_bn(trainer.train_dataloader, average)
        state = {k.removeprefix("model."): v.detach().clone() for k, v in average.state_dict().items()}
        torch.save({"updates": self.updates, "state_dict": state}, self.path)


class ShadowEMA(_Shadow, EMA):
    def __init__(self, path: Path, decay: float):
        super().__init__(decay)
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        self.finish(trainer)


class ShadowSWA(_Shadow, SWA):
    def __init__(self, path: Path, epochs: int):
        super().__init__(epochs)
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        self.finish(trainer)


# --- one run ---------------------------------------------------------------------------------------

def train_one(task: str, recipe: str, seed: int, args) -> str:
    out = args.out / task / recipe / f"seed={seed}"
    done = (out / "model.pt").exists() and (out / "predictions.npz").exists()
    if done:
        return f"{out}: kept"
    config = run_config(task, recipe, seed, args)
    callbacks = []
    if recipe == "base":
        callbacks = [ShadowEMA(out / "ema.pt", args.ema_decay), ShadowSWA(out / "swa.pt", args.swa_epochs)]
    start = time.perf_counter()
    # The averages are not in last.ckpt, so an interrupted run starts over rather than resuming.
    summary = api.train(config, out, resume=False, overwrite=True, callbacks=callbacks)
    train_seconds = time.perf_counter() - start
    predictions = {"train_seconds": np.float64(train_seconds), "best_epoch": np.int64(summary["best_epoch"])}
    test, val = test_codes(task, config), val_codes(config)
    for weights in WEIGHTS if recipe == "base" else ("best",):
        model = weights_model(out, weights)
        predictions[f"test_{weights}"] = predict(model, test, batch_size=64)
        predictions[f"val_{weights}"] = predict(model, val, batch_size=64)
    np.savez(out / "predictions.npz.tmp.npz", **predictions)
    os.replace(out / "predictions.npz.tmp.npz", out / "predictions.npz")
    return f"{out}: {train_seconds:.0f} s, best val {summary['best_val_pearson']:.4f} (epoch {summary['best_epoch']})"


def weights_model(run: Path, weights: str) -> torch.nn.Module:
    model, config = load_run(run)
    if weights != "best":
        saved = torch.load(run / f"{weights}.pt", map_location="cpu", weights_only=True)
        model = build_model(config.model, Objective.of(config).n_outputs)
        model.load_state_dict(saved["state_dict"])
    return model.eval()


_TEST_CACHE: dict[str, tuple] = {}


def test_table(task: str):
    """``(positions or None, sequences, measured values)`` of a task's test set."""
    if task not in _TEST_CACHE:
        if task == "dream":
            truth = load_truth(DREAM / "test" / "public_leaderboard_ids")
            positions = np.array(sorted(truth.values))
            table = read_table(DREAM / "test" / "test_sequences.txt")
            seqs = table["seq"].to_numpy()[positions]
            _TEST_CACHE[task] = (positions, seqs, np.array([truth.values[p] for p in positions]))
        else:
            table = read_table(NATIVE / "test.tsv.gz", seq_col="seq", target_col="el_combined", drop_missing=True)
            _TEST_CACHE[task] = (None, table["seq"].to_numpy(), table["target"].to_numpy(np.float64))
    return _TEST_CACHE[task]


def test_codes(task: str, config: RunConfig) -> torch.Tensor:
    return encode_sequences(list(test_table(task)[1]), config.data.layout)


def val_codes(config: RunConfig) -> torch.Tensor:
    """Validation sequences of the run (the singleton channel 0, as at prediction)."""
    return load_split(config.data, config.seed)[1].codes


_VAL_CACHE: dict[tuple[str, int], np.ndarray] = {}


def val_targets(config: RunConfig) -> np.ndarray:
    key = (config.data.path, config.seed)
    if key not in _VAL_CACHE:
        _VAL_CACHE[key] = load_split(config.data, config.seed)[1].targets.numpy().astype(np.float64)
    return _VAL_CACHE[key]


def run_all(tasks: list[tuple], jobs: int):
    if jobs == 1:
        yield from (train_one(*task) for task in tasks)
        return
    with ProcessPoolExecutor(jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield from pool.map(train_one, *zip(*tasks))


# --- the tables ------------------------------------------------------------------------------------

def load_runs(out: Path, task: str) -> dict[tuple[str, int], dict]:
    runs = {}
    for path in sorted((out / task).glob("*/seed=*/predictions.npz")):
        recipe, seed = path.parent.parent.name, int(path.parent.name.split("=")[1])
        runs[recipe, seed] = dict(np.load(path))
        runs[recipe, seed]["config"] = RunConfig.load(path.parent / "config.yaml")
    return runs


def dream_scores(pred: np.ndarray) -> tuple[float, float]:
    positions = test_table("dream")[0]
    result = score(dict(zip(positions.tolist(), pred.tolist())), load_truth(DREAM / "test" / "public_leaderboard_ids"))
    return result.pearson_score, result.spearman_score


def candidates(runs: dict) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, list[int]]]]:
    """Every recipe's per-seed test predictions (or one ensemble's), keyed by recipe name:
    ``(label, test prediction, val prediction, seeds)``."""
    base_seeds = sorted(s for r, s in runs if r == "base")
    evo_seeds = sorted(s for r, s in runs if r == "evoaug")
    table: dict[str, list] = {}
    for weights in WEIGHTS:
        table[f"base/{weights}"] = [(f"seed {s}", runs["base", s][f"test_{weights}"], runs["base", s][f"val_{weights}"], [s])
                                    for s in base_seeds]
    table["evoaug"] = [(f"seed {s}", runs["evoaug", s]["test_best"], runs["evoaug", s]["val_best"], [s])
                       for s in evo_seeds]
    for name, source, seeds in (("ens3", "base/best", base_seeds[:3]), ("ens5", "base/best", base_seeds[:5]),
                                ("ens3 ema", "base/ema", base_seeds[:3]), ("ens5 ema", "base/ema", base_seeds[:5]),
                                ("ens3 evoaug", "evoaug", evo_seeds[:3])):
        size = int(name[3])
        members = table[source][:size]
        if len(members) == size:
            # The members were validated on different splits: an ensemble has no validation set.
            table[name] = [(f"seeds {seeds[0]}-{seeds[-1]}", np.mean([m[1] for m in members], axis=0), None, seeds)]
    return table


def report(out: Path, tasks: list[str], n_boot: int) -> str:
    lines = []
    for task in tasks:
        runs = load_runs(out, task)
        if not any(r == "base" for r, _ in runs):
            continue
        y_test = test_table(task)[2]
        first = next(iter(runs.values()))["config"]
        table = candidates(runs)
        baseline = {seeds[0]: test for _, test, _, seeds in table["base/best"]}
        epochs = first.train.epochs + first.train.finetune_epochs
        lines += [f"\n### {task}: {first.data.train_size:,} training sequences, legnet-s, {epochs} epochs per model\n"]
        header = "| recipe | models | val r (flag 0) | test r | test Spearman |"
        header += " DREAM Pearson score | DREAM Spearman score |" if task == "dream" else ""
        header += " Δ test r vs base (95 % CI) | seeds better | train s / model |"
        lines += [header, "|" + "---|" * (header.count("|") - 1)]
        for name, rows in table.items():
            if not rows:
                continue
            val_r = [pearson(val, val_targets(runs[_recipe(name), seeds[0]]["config"])) for _, _, val, seeds in rows
                     if val is not None]
            test_r = [pearson(test, y_test) for _, test, _, _ in rows]
            test_rho = [spearman(test, y_test) for _, test, _, _ in rows]
            cells = [name, f"{len(rows[0][3])} x {len(rows)}" if name.startswith("ens") else f"{len(rows)} seeds",
                     _mean_sd(val_r), _mean_sd(test_r), _mean_sd(test_rho)]
            if task == "dream":
                scores = [dream_scores(test) for _, test, _, _ in rows]
                cells += [_mean_sd([s[0] for s in scores]), _mean_sd([s[1] for s in scores])]
            if name == "base/best":
                cells += ["—", "—"]
            else:
                seeds_used = sorted({s for _, _, _, seeds in rows for s in seeds})
                base = np.column_stack([baseline[s] for s in seeds_used])
                model = np.column_stack([test for _, test, _, _ in rows])
                delta, low, high = paired_delta(y_test, model, base, n_boot=n_boot)
                if name.startswith("ens"):  # the ensemble against its members' mean r
                    better = f"beats {sum(pearson(b, y_test) < test_r[0] for b in base.T)} of its {base.shape[1]} members"
                else:
                    better = f"{sum(pearson(m, y_test) > pearson(baseline[s], y_test) for m, s in zip(model.T, seeds_used))} of {len(seeds_used)}"
                cells += [f"{delta:+.4f} ({low:+.4f}, {high:+.4f})", better]
            seconds = [float(runs[_recipe(name), s]["train_seconds"]) for _, _, _, seeds in rows for s in seeds]
            cells.append(f"{np.mean(seconds):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        if task == "dream":  # measured on the MAUDE scale, predicted on the 0-17 bin scale: no sd bands
            lines += ["", "(No calibration for DREAM: its test values are on another scale than the predictions.)"]
        else:
            lines += _calibration_lines(table, y_test)
    return "\n".join(lines)


def _recipe(name: str) -> str:
    return "evoaug" if "evoaug" in name else "base"


def _calibration_lines(table: dict, y_test: np.ndarray) -> list[str]:
    lines = ["", "| ensemble | within ±1 sd | within ±2 sd | Spearman(|error|, sd) |", "|---|---|---|---|"]
    for name, source in (("ens3", "base/best"), ("ens5", "base/best"), ("ens3 ema", "base/ema"),
                         ("ens5 ema", "base/ema"), ("ens3 evoaug", "evoaug")):
        size = int(name[3])
        members = [m[1] for m in table.get(source, [])[:size]]
        if len(members) < size:
            continue
        stack = np.stack(members)
        stats = calibration(y_test, stack.mean(axis=0), stack.std(axis=0))
        lines.append(f"| {name} | {stats['within_1sd']:.3f} | {stats['within_2sd']:.3f} | "
                     f"{stats['spearman_error_sd']:.3f} |")
    return lines


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["dream", "native"], choices=["dream", "native"])
    parser.add_argument("--dream-epochs", type=int, default=8)
    parser.add_argument("--native-epochs", type=int, default=6)
    parser.add_argument("--finetune", type=int, default=1, help="EvoAug's unaugmented fine-tuning epochs (of the total).")
    parser.add_argument("--base-seeds", type=int, default=5)
    parser.add_argument("--evoaug-seeds", type=int, default=3)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--swa-epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="Runs at once, one thread each.")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="512 training sequences: a check of the pipeline.")
    parser.add_argument("--out", type=Path, default=Path("bench_out/small_data"))
    args = parser.parse_args()
    args.epochs = {"dream": args.dream_epochs, "native": args.native_epochs}
    if not args.report_only:
        # Seeds 0-2 of every recipe first, so that an interrupted benchmark already compares them.
        tasks = [(task, recipe, seed, args) for seed in range(max(args.base_seeds, args.evoaug_seeds))
                 for task in args.tasks for recipe in ("base", "evoaug")
                 if seed < (args.base_seeds if recipe == "base" else args.evoaug_seeds)]
        for line in run_all(tasks, args.jobs):
            print(line, flush=True)
    threads = "1 thread per job" if args.jobs > 1 else f"{torch.get_num_threads()} threads"
    text = (f"{platform.machine()}, {os.cpu_count()} CPUs, {threads}; EMA decay {args.ema_decay}, SWA over the last "
            f"{args.swa_epochs} epochs, EvoAug fine-tune {args.finetune} epoch(s); {args.n_boot} bootstrap draws\n"
            + report(args.out, args.tasks, args.n_boot))
    print(text)
    (args.out / "report.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
