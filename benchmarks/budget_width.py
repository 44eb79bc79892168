"""Short ``--max-time`` budgets with the default model: keep full-width LegNet, or narrow it.

Trains the default model (``legnet``, width 1) under a budget, with the width fixed (what
``--width 1`` gives; other fixed widths with ``--fixed-widths``) and letting the budget narrow
the model (``fit_width``, the default without ``--model`` and ``--width``), in two cases:

- ``sim_1min``: 4,000 simulated promoters (the demo's simulator), ``--max-time 1``;
- ``dream_5min``: DREAM-5120 (2,048 validation sequences, flag 0), ``--max-time 5``, with the
  public-leaderboard test Pearson of each model.

Prints one row per run (width trained, steps, what each width tried would fit, best validation
Pearson, test Pearson, wall seconds) and saves them to ``--out/budget_width.json``. Run it alone
on an idle machine: ``python benchmarks/budget_width.py --out bench_out/budget_width``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from promoterlab import api
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.simulate import write_library
from promoterlab.models import model_config

DREAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dream2022"
TRAIN_FILE = DREAM / "train" / "train_sequences_7369.txt"
TEST_FILE = DREAM / "test" / "public_test_data_with_MAUDE_expression.txt"


def cases(out: Path) -> dict[str, tuple[DataConfig, float, Path | None]]:
    """Name -> (data, budget in minutes, test file)."""
    library = write_library(out / "simulated_4000.txt", n=4000, seed=0)
    return {
        "sim_1min": (DataConfig(path=str(library)), 1.0, None),
        "dream_5min": (DataConfig(path=str(TRAIN_FILE), train_size=5120, val_size=2048, val_singleton=False),
                       5.0, TEST_FILE),
    }


def run_one(data: DataConfig, minutes: float, width: float, fit_width: bool, test_file: Path | None,
            out: Path) -> dict:
    config = RunConfig(data=data, model=model_config("legnet", width=width),
                       train=TrainConfig(max_time=minutes, fit_width=fit_width), seed=0)
    start = time.perf_counter()
    summary = api.train(config, out, overwrite=True, resume=False)
    wall = time.perf_counter() - start
    budget = summary["budget"]
    row = {"fit_width": fit_width, "width": budget["width"] or config.model.width, "params": summary["params"],
           "steps": summary["steps"], "skipped_steps": budget["skipped_steps"], "epochs": summary["epochs"],
           "steps_by_width": budget["steps_by_width"], "best_val_pearson": round(summary["best_val_pearson"], 4),
           "wall_seconds": round(wall, 1)}
    if test_file is not None:
        test = api.evaluate(out, test_file)
        row.update(test_pearson=round(test["pearson"], 4), test_spearman=round(test["spearman"], 4))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/budget_width"))
    parser.add_argument("--cases", nargs="+", default=["sim_1min", "dream_5min"])
    parser.add_argument("--fixed-widths", type=float, nargs="*", default=[1.0],
                        help="Widths trained as given (fit_width off); then width 1 narrowed by the budget.")
    parser.add_argument("--skip-narrowed", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": {}}
    for name, (data, minutes, test_file) in cases(args.out).items():
        if name not in args.cases:
            continue
        runs = [(width, False) for width in args.fixed_widths] + ([] if args.skip_narrowed else [(1.0, True)])
        for width, fit_width in runs:
            label = f"{name}/{'narrowed' if fit_width else f'width {width:g}'}"
            folder = args.out / name / ("fit" if fit_width else f"fixed_{width:g}")
            row = run_one(data, minutes, width, fit_width, test_file, folder)
            results["runs"][label] = row
            print(label, json.dumps(row), flush=True)
    (args.out / "budget_width.json").write_text(json.dumps(results, indent=2))
    print(f"\n| run | width | params | steps | steps by width | best val r | test r | wall s |\n|---|---|---|---|---|---|---|---|")
    for label, r in results["runs"].items():
        print(f"| {label} | {r['width']:g} | {r['params']:,} | {r['steps']} | {r['steps_by_width'] or '—'} | "
              f"{r['best_val_pearson']:.3f} | {r.get('test_pearson', '—')} | {r['wall_seconds']} |")


if __name__ == "__main__":
    main()
