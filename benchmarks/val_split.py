"""The default validation size on small data: a fixed 2,048 rows against a tenth of the rows.

A table of a few thousand sequences gave 2,048 of them to validation, half of 4,000. The
default is now ``val_size="auto"`` (:func:`promoterlab.data.splits.auto_val_size`: a tenth, at
least 256, at most 2,048). Each case trains the default model under a time budget with both
validation sizes and scores the models on held-out sequences that neither run saw:

- ``sim_1min``: 4,000 simulated promoters (the demo's simulator), ``--max-time 1``; test: 2,000
  more simulated promoters from another seed;
- ``dream_5min``: the whole 7,369-row DREAM training slice (flag-0 validation),
  ``--max-time 5``; test: the 9,045 measured public-leaderboard sequences.

Run it alone on an idle machine: ``python benchmarks/val_split.py --out bench_out/val_split``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from promoterlab import api
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.simulate import write_library

DREAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dream2022"
TRAIN_FILE = DREAM / "train" / "train_sequences_7369.txt"
TEST_FILE = DREAM / "test" / "public_test_data_with_MAUDE_expression.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/val_split"))
    parser.add_argument("--cases", nargs="+", default=["sim_1min", "dream_5min"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    library = write_library(args.out / "simulated_4000.txt", n=4000, seed=0)
    held_out = write_library(args.out / "simulated_test_2000.txt", n=2000, seed=1)
    cases = {"sim_1min": (DataConfig(path=str(library)), 1.0, held_out),
             "dream_5min": (DataConfig(path=str(TRAIN_FILE), val_singleton=False), 5.0, TEST_FILE)}
    rows = {}
    for name in args.cases:
        data, minutes, test_file = cases[name]
        for val_size in (2048, "auto"):
            run = args.out / name / f"val_{val_size}"
            config = RunConfig(data=dataclasses.replace(data, val_size=val_size),
                               train=TrainConfig(max_time=minutes), seed=0)
            start = time.perf_counter()
            summary = api.train(config, run, overwrite=True, resume=False)
            test = api.evaluate(run, test_file)
            rows[f"{name}/val {val_size}"] = row = {
                "train_size": summary["train_size"], "val_size": summary["val_size"],
                "width": summary["budget"]["width"], "steps": summary["steps"],
                "best_val_pearson": round(summary["best_val_pearson"], 4), "test_pearson": round(test["pearson"], 4),
                "test_spearman": round(test["spearman"], 4), "wall_seconds": round(time.perf_counter() - start, 1)}
            print(name, val_size, json.dumps(row), flush=True)
    (args.out / "val_split.json").write_text(json.dumps(rows, indent=2))
    print("\n| run | train | val | width | steps | best val r | test r | test Spearman |\n|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['train_size']:,} | {r['val_size']:,} | {r['width']:g} | {r['steps']} | "
              f"{r['best_val_pearson']:.3f} | {r['test_pearson']:.3f} | {r['test_spearman']:.3f} |")


if __name__ == "__main__":
    main()
