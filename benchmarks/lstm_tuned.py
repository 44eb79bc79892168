"""Does the tuned LSTM hybrid beat LegNet on test? (issue 16, the LSTM hyperparameter table)

``promoterlab tune experiments/lstm_grid.yaml --budget converged`` picks the LSTM's hidden size,
direction, dropout and weight decay by validation Pearson on native 10,240 (one seed). This script
trains that configuration with the seed study's own settings (``seed_study.yaml``, same budget,
data, split and test set) for every seed, then compares it with the study's LegNet and default
LSTM runs of the same seeds at 10,240: Δ test Pearson with a paired bootstrap over test sequences
and the number of seeds that agree (:func:`promoterlab.experiments.results.paired_comparison`).
Finished runs are kept: rerunning trains only what is missing, then rewrites the table.

    python benchmarks/lstm_tuned.py --workers 2
    python benchmarks/lstm_tuned.py --report-only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from promoterlab.experiments.results import markdown_table, paired_comparison, summarise
from promoterlab.experiments.runs import collect_runs
from promoterlab.experiments.spec import Spec, load_spec, set_field
from promoterlab.experiments.sweep import run_sweep
from promoterlab.files import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
TUNED = "legnet-lstm (tuned)"


def tuned_spec(study_spec: Path, budget: str, best: dict, train_size: int, seeds: list[int],
               data_dir: Path | None = None) -> Spec:
    """The seed study's spec with the best trial's values, as one LSTM at one size over ``seeds``."""
    spec = load_spec(study_spec, budget=budget, data_dir=data_dir)
    spec.name = "lstm_tuned"
    spec.axes = {"seed": seeds, "model": ["legnet-lstm"], "train_size": [train_size]}
    for key, value in best["params"].items():
        set_field(spec.base, key, value)
    spec.grid()  # fail now on a value the model does not take
    return spec


def compare(study_dir: Path, tuned_dir: Path, train_size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary over seeds and paired comparison with LegNet of the study's LegNet, its default
    LSTM and the tuned LSTM at ``train_size``."""
    study = collect_runs(study_dir)
    study = study[(study["train_size"] == train_size) & study["model"].isin(["legnet", "legnet-lstm"])]
    tuned = collect_runs(tuned_dir).assign(model=TUNED)
    runs = pd.concat([study, tuned], ignore_index=True)
    return summarise(runs), paired_comparison(runs, baseline="legnet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", type=Path, default=REPO / "results/lstm_grid-converged-tune")
    parser.add_argument("--study", type=Path, default=REPO / "results/seed_study-converged")
    parser.add_argument("--spec", type=Path, default=REPO / "experiments/seed_study.yaml")
    parser.add_argument("--budget", default="converged")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "results/lstm_tuned-converged")
    parser.add_argument("--train-size", type=int, default=10240)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks/results/lstm_tuned.md")
    args = parser.parse_args()

    best = json.loads((args.tune / "best_trial.json").read_text())
    if not args.report_only:
        run_sweep(tuned_spec(args.spec, args.budget, best, args.train_size, args.seeds, args.data_dir), args.out,
                  workers=args.workers, progress=True)
    summary, comparison = compare(args.study, args.out, args.train_size)
    columns = ["model", "n_seeds", "val_pearson_mean", "test_pearson_mean", "test_pearson_sd", "epochs_mean",
               "cap_hits", "params"]
    settings = args.tune / "settings.md"
    text = "\n\n".join([
        f"# Tuned LSTM against LegNet, native {args.train_size:,} (`benchmarks/lstm_tuned.py`)",
        f"Best of {best['distinct_settings_finished']} distinct settings searched "
        f"(trial {best['number']}, validation Pearson "
        f"{best['best_val_pearson']:.4f}): " + ", ".join(f"`{k}` = {v}" for k, v in best["params"].items()) + ".",
        "## Validation Pearson by setting (completed trials)",
        settings.read_text().strip() if settings.exists() else "(no settings.md in the tune folder)",
        "## Test, over seeds", markdown_table(summary[[c for c in columns if c in summary]]),
        "## Δ test Pearson against LegNet (paired bootstrap, 95 % CI)", markdown_table(comparison),
    ]) + "\n"
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results, text)


if __name__ == "__main__":
    main()
