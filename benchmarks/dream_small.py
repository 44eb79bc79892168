"""LegNet and its hybrids on 5,120 real DREAM 2022 training sequences: validation and test accuracy.

Trains each of ``--models`` for each seed on 5,120 sequences of ``train_sequences_7369.txt``,
validates on 2,048 of the rest (seeded), and evaluates on the 9,045 measured
public-leaderboard test sequences. Validation inputs carry the data's ``is_singleton`` flags
as in LegNet's DREAM code (``--no-val-singleton``: 0, as at prediction); each row also reports
the best model's validation Pearson with flag 0. Optionally adds one ``legnet-s`` run under a
wall-clock budget (``--max-time-run MINUTES``). Prints a table and writes ``results.json`` to ``--out``.

    python benchmarks/dream_small.py --models legnet-s --seeds 0 1 2 --epochs 10 --out bench_out/dream_small
    python benchmarks/dream_small.py --models legnet legnet-dilated legnet-embed legnet-transformer \
        legnet-lstm --width 0.25 --jobs 2 --out bench_out/hybrids
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from promoterlab import api
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.dataset import load_split
from promoterlab.evaluation.metrics import pearson
from promoterlab.evaluation.predict import predict
from promoterlab.models import model_config
from promoterlab.runs import load_run

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dream2022"
TRAIN_FILE = DATA / "train" / "train_sequences_7369.txt"
TEST_FILE = DATA / "test" / "public_test_data_with_MAUDE_expression.txt"


def run_one(model: str, seed: int, args, out: Path, width: float | None = None, max_time: float | None = None,
            epochs: int | None = None) -> dict:
    config = RunConfig(
        data=DataConfig(path=str(TRAIN_FILE), train_size=args.train_size, val_size=2048,
                        val_singleton=args.val_singleton),
        model=model_config(model, **({"width": width} if width else {})),
        train=TrainConfig(loss=args.loss, epochs=epochs or args.epochs, batch_size=args.batch_size,
                          max_lr=args.lr, weight_decay=args.weight_decay, precision=args.precision, max_time=max_time,
                          accelerator="cpu", devices="1", ensemble=1),
        seed=seed,
    )
    start = time.perf_counter()
    summary = api.train(config, out)
    test = api.evaluate(out, TEST_FILE)
    return {"model": model, "seed": seed, **summary, "test_pearson": test["pearson"],
            "test_spearman": test["spearman"], "test_n": test["n"], "val_pearson_flag0": val_pearson_flag0(out),
            "wall_seconds": time.perf_counter() - start}


def val_pearson_flag0(run_dir: Path) -> float:
    """Validation Pearson of the run's best model with the singleton channel 0, as at prediction."""
    model, config = load_run(run_dir)
    _, val, *_ = load_split(config.data, config.seed)
    return pearson(predict(model, val.codes, batch_size=config.train.eval_batch_size), val.targets.numpy())


def run_all(tasks: list[tuple], jobs: int):
    """Yield ``run_one(*task)`` results in order; with ``jobs > 1`` in processes of one thread each."""
    if jobs == 1:
        yield from (run_one(*task) for task in tasks)
        return
    with ProcessPoolExecutor(jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield from pool.map(run_one, *zip(*tasks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["legnet-s"])
    parser.add_argument("--width", type=float, default=None, help="One width for every model.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=5120)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--loss", default="kl")
    parser.add_argument("--precision", default="32")
    parser.add_argument("--val-singleton", action=argparse.BooleanOptionalAction, default=True,
                        help="Validate with the data's is_singleton flags (LegNet's DREAM convention) or 0.")
    parser.add_argument("--max-time-run", type=float, default=None,
                        help="Also train legnet-s (seed 0) under this many minutes, with --max-time-epochs "
                             "epochs of OneCycle (choose what roughly fits, so the schedule anneals).")
    parser.add_argument("--max-time-epochs", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1,
                        help="Seeds trained at once, each on one thread (fastest on a shared small CPU).")
    parser.add_argument("--skip-seeds", action="store_true", help="Only the --max-time-run.")
    parser.add_argument("--out", type=Path, default=Path("bench_out/dream_small"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = "1 thread per job" if args.jobs > 1 else f"{torch.get_num_threads()} threads"
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {threads}",
               "args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    seeds = [] if args.skip_seeds else args.seeds
    tasks = [(model, seed, args, args.out / f"{model}_seed{seed}", args.width) for seed in seeds for model in args.models]
    for row in run_all(tasks, args.jobs):
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if args.max_time_run:
        row = run_one("legnet-s", 0, args, args.out / "legnet-s_maxtime", max_time=args.max_time_run,
                      epochs=args.max_time_epochs)
        results["max_time_run"] = row
        print(json.dumps(row), flush=True)
    all_runs = results["runs"] + ([results["max_time_run"]] if args.max_time_run else [])
    print(f"\n{args.train_size} DREAM training sequences, seeds {seeds}, width {args.width or 'preset'}")
    flag = "data flags" if args.val_singleton else "flag 0"
    print(f"| model | seed | params | best val Pearson ({flag}) | val Pearson (flag 0) | best epoch | epochs | "
          "train s | test Pearson | test Spearman |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in all_runs:
        tag = " (max-time)" if r is results.get("max_time_run") else ""
        print(f"| {r['model']} | {r['seed']}{tag} | {r['params']:,} | {r['best_val_pearson']:.4f} | "
              f"{r['val_pearson_flag0']:.4f} | {r['best_epoch']} | {r['epochs']} | {r['train_seconds']:.0f} | "
              f"{r['test_pearson']:.4f} | {r['test_spearman']:.4f} |")
    results["summary"] = {}
    print(f"\n| model | params | val Pearson ({flag}) mean ± sd | val Pearson (flag 0) mean ± sd | "
          "test Pearson mean ± sd | test Spearman mean ± sd | train s mean |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        runs = [r for r in results["runs"] if r["model"] == model]
        if not runs:
            continue
        summary = {key: mean_sd([r[key] for r in runs]) for key in
                   ("best_val_pearson", "val_pearson_flag0", "test_pearson", "test_spearman", "train_seconds",
                    "epochs")}
        results["summary"][model] = summary
        print(f"| {model} | {runs[0]['params']:,} | {summary['best_val_pearson']} | {summary['val_pearson_flag0']} | "
              f"{summary['test_pearson']} | {summary['test_spearman']} | "
              f"{statistics.mean(r['train_seconds'] for r in runs):.0f} |")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"

if __name__ == "__main__":
    main()
