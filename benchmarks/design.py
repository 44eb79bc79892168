"""Design on the simulator, scored with ground truth (issue 35).

The demo's library (6,000 simulated promoters, seed 0) trains an ensemble of 3 LegNets (width
0.25, 10 epochs, 1,024 validation and 600 held-out test sequences). Then 100 inserts are
designed for ``max``, ``min`` and a middle target (9, between the library's median and its 99th
percentile), by greedy substitution and by the evolutionary search, with the uncertainty penalty
(λ = 1) and without it (λ = 0), under a lab's constraints: GC 30-60 %, no BsaI (GGTCTC) or EcoRI
(GAATTC) site on either strand, no homopolymer longer than 8. Every design is scored with the
simulator's noiseless expression (:func:`promoterlab.data.simulate.true_expression`).

    nice -n 19 python benchmarks/design.py --out bench_out/design
    nice -n 19 python benchmarks/design.py --out bench_out/design --algorithms greedy   # or split:
    nice -n 19 python benchmarks/design.py --out bench_out/design --algorithms evolve   # one per core

Writes ``benchmarks/results/design.md`` / ``design.tsv`` and ``docs/images/design_*.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
GC, FORBIDDEN, HOMOPOLYMER = (0.3, 0.6), ("GGTCTC", "GAATTC"), 8
GOALS = ("max", "min", "9")
ALGORITHMS = ("greedy", "evolve")
PENALTIES = (0.0, 1.0)


def train_simulator_run(out: Path, epochs: int):
    from promoterlab.config import DataConfig, RunConfig, TrainConfig
    from promoterlab.data.simulate import write_library
    from promoterlab.models import model_config
    from promoterlab.runs import Run, SUMMARY
    from promoterlab.training.train import train

    library = out / "simulated_library.txt"
    if not library.is_file():
        write_library(library, n=6000, seed=0)
    run_dir = out / "run"
    if not (run_dir / SUMMARY).is_file():
        config = RunConfig(data=DataConfig(path=str(library), val_size=1024),
                           model=model_config("legnet", width=0.25),
                           train=TrainConfig(loss="kl", epochs=epochs, accelerator="cpu", devices="1", ensemble=3),
                           seed=0)
        train(config, run_dir)
    return Run.open(run_dir), library


def satisfied(insert: str, left: str, right: str) -> bool:
    """An independent check of the constraints on strings."""
    full, lo, hi = left + insert + right, len(left), len(left) + len(insert)
    gc = sum(b in "GC" for b in insert) / len(insert)
    if not GC[0] - 1e-9 <= gc <= GC[1] + 1e-9:
        return False
    rc = str.maketrans("ACGT", "TGCA")
    for site in {*FORBIDDEN, *(s.translate(rc)[::-1] for s in FORBIDDEN)}:
        if any(m.start() < hi and m.start() + len(site) > lo for m in re.finditer(f"(?={site})", full)):
            return False
    return not any(len(m.group()) > HOMOPOLYMER and m.start() < hi and m.end() > lo
                   for m in re.finditer(r"A+|C+|G+|T+", full))


def score_designs(table: pd.DataFrame, goal: str, library_truth: np.ndarray, left: str, right: str) -> dict:
    from promoterlab.data.simulate import true_expression

    truth = true_expression(list(table["seq"]))
    table["true_expression"] = truth
    pred = table["prediction"].to_numpy()
    codes = np.array([list(s) for s in table["insert"]])
    distances = [(codes[i] != codes[j]).sum() for i in range(len(codes)) for j in range(i)]
    row = {"designs": len(table), "true_mean": truth.mean(), "true_median": float(np.median(truth)),
           "true_best": truth.max() if goal == "max" else truth.min() if goal == "min" else np.nan,
           "pred_mean": pred.mean(), "gap_mean": float((pred - truth).mean()),
           "gap_abs": float(np.abs(pred - truth).mean()), "sd_mean": table["sd"].mean(),
           "constraints_ok": float(np.mean([satisfied(s, left, right) for s in table["insert"]])),
           "min_distance": int(min(distances)) if distances else 0,
           "mean_distance": float(np.mean(distances)) if distances else 0.0}
    if "lower" in table:
        row["interval90_holds_truth"] = float(((truth >= table["lower"]) & (truth <= table["upper"])).mean())
    if goal == "max":
        row["beyond_p99"] = float((truth > np.percentile(library_truth, 99)).mean())
    elif goal == "min":
        row["beyond_p99"] = float((truth < np.percentile(library_truth, 1)).mean())
    else:
        row["target_error"] = float(np.abs(truth - float(goal)).mean())
        row["within_1"] = float((np.abs(truth - float(goal)) <= 1).mean())
    return row


def figures(results: pd.DataFrame, tables: dict, histories: dict, library_truth: np.ndarray, images: Path) -> None:
    from matplotlib.figure import Figure

    images.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(12, 3.6))
    for ax, goal in zip(fig.subplots(1, 3), GOALS):
        for colour, algorithm in zip(("C0", "C1"), ALGORITHMS):
            history = histories.get((algorithm, goal, 1.0))
            if history is None:
                continue
            x = history["evaluations"] / 1000
            ax.plot(x, history["best_score"], color=colour, label=f"{algorithm}: best")
            ax.plot(x, history["median_score"], color=colour, ls="--", label=f"{algorithm}: median")
        ax.set(xlabel="sequences predicted (thousands)", ylabel="score (mean − sd toward the goal)",
               title=f"goal {goal}")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(images / "design_objective.png", dpi=120)

    fig = Figure(figsize=(12, 3.9))
    p99, p1 = np.percentile(library_truth, 99), np.percentile(library_truth, 1)
    for ax, goal in zip(fig.subplots(1, 3), GOALS):
        for colour, penalty in zip(("C3", "C0"), PENALTIES):
            table = tables.get(("greedy", goal, penalty))
            if table is None:
                continue
            ax.scatter(table["prediction"], table["true_expression"], s=9, alpha=0.6, color=colour,
                       label=f"greedy, λ = {penalty:g}")
        lims = [0, 17]
        ax.plot(lims, lims, color="grey", lw=0.8)
        if goal == "max":
            ax.axhline(p99, color="k", ls=":", lw=0.8, label="library 99th pct")
        elif goal == "min":
            ax.axhline(p1, color="k", ls=":", lw=0.8, label="library 1st pct")
        else:
            ax.axhline(float(goal), color="k", ls=":", lw=0.8, label="target")
        ax.set(xlim=lims, ylim=lims, xlabel="predicted (ensemble mean)", ylabel="true expression (simulator)",
               title=f"goal {goal}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(images / "design_truth.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/design"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--greedy-steps", type=int, default=40)
    parser.add_argument("--evolve-steps", type=int, default=300)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS,
                        help="Run only these (one process per algorithm; the report needs all).")
    parser.add_argument("--goals", nargs="+", default=list(GOALS), choices=GOALS, help="Run only these goals.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from promoterlab.data.simulate import simulate_library, true_expression
    from promoterlab.design.constraints import Constraints
    from promoterlab.design.files import default_space, design_run
    from promoterlab.design.optimize import Goal, Settings
    from promoterlab.training.quiet import quiet_lightning

    quiet_lightning()
    args.out.mkdir(parents=True, exist_ok=True)
    run, library = train_simulator_run(args.out, args.epochs)
    library_truth = true_expression(list(simulate_library(6000, seed=0)["seq"]))
    space = default_space(run)
    constraints = Constraints(GC, FORBIDDEN, HOMOPOLYMER)
    rows, tables, histories = [], {}, {}
    for algorithm in args.algorithms:
        for goal in args.goals:
            for penalty in PENALTIES:
                name = f"{algorithm}_{goal}_{penalty:g}"
                table_path, history_path = args.out / f"{name}.tsv", args.out / f"{name}.history.tsv"
                start = time.perf_counter()
                if table_path.is_file():
                    table, history = pd.read_csv(table_path, sep="\t"), pd.read_csv(history_path, sep="\t")
                    seconds = json.loads((args.out / f"{name}.json").read_text())["seconds"]
                else:
                    steps = args.greedy_steps if algorithm == "greedy" else args.evolve_steps
                    settings = Settings(Goal.parse(goal), penalty, algorithm, steps, args.candidates, seed=0)
                    designed = design_run(run, settings, args.n, constraints, space, interval=0.9)
                    table, history = designed.table, designed.history
                    seconds = time.perf_counter() - start
                    history.to_csv(history_path, sep="\t", index=False)
                    (args.out / f"{name}.json").write_text(json.dumps({"seconds": seconds, "notes": designed.notes}))
                    table.to_csv(table_path, sep="\t", index=False)
                row = {"algorithm": algorithm, "goal": goal, "penalty": penalty,
                       **score_designs(table, goal, library_truth, space.left, space.right),
                       "evaluations": int(history["evaluations"].iloc[-1]), "seconds": round(seconds, 1)}
                rows.append(row)
                tables[(algorithm, goal, penalty)], histories[(algorithm, goal, penalty)] = table, history
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    if set(args.algorithms) != set(ALGORITHMS) or set(args.goals) != set(GOALS):
        return
    results = pd.DataFrame(rows)
    summary = json.loads((Path(run.path) / "summary.json").read_text())
    reference = {"library_max": library_truth.max(), "library_p99": np.percentile(library_truth, 99),
                 "library_median": float(np.median(library_truth)), "library_p1": np.percentile(library_truth, 1),
                 "library_min": library_truth.min(), "test_pearson": summary["test"]["pearson"],
                 "test_coverage_68": summary["test_coverage"]["0.68"]["coverage"],
                 "test_coverage_95": summary["test_coverage"]["0.95"]["coverage"],
                 "calibration_scale": summary["calibration"]["scale"]}
    args.results.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.results / "design.tsv", sep="\t", index=False, float_format="%.4g")
    columns = ["algorithm", "goal", "penalty", "true_mean", "true_median", "true_best", "beyond_p99", "target_error",
               "within_1", "pred_mean", "gap_mean", "gap_abs", "sd_mean", "interval90_holds_truth", "constraints_ok",
               "min_distance", "evaluations", "seconds"]
    text = ("Reference (true expression of the 6,000 training-library sequences): "
            + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in reference.items())
            + "\n\n" + results[[c for c in columns if c in results]].to_markdown(index=False, floatfmt=".3f") + "\n")
    (args.results / "design.md").write_text(text)
    figures(results, tables, histories, library_truth, args.images)
    print(text)


if __name__ == "__main__":
    main()
