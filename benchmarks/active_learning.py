"""Active learning on real data (issue 35): which strategy needs the fewest labels. (Not named
select.py: a script of that name would shadow the standard library module ``select``.)

de Boer 2020 native pool (leak-free by group: the pool and the test file share no 20-mer; every
validation split inside the labelled set is drawn by group). Per seed: 5,120 labelled sequences
drawn at random; then three rounds, each acquiring 2,048 more by a strategy (``uncertainty``,
``diverse-uncertainty``, ``random``, ``goal`` = expected improvement toward ``max`` over the best
label so far), from a random 16,384 of the sequences not yet labelled (a fresh sub-pool each
round, the same draw for every strategy; scoring all ~49,000 every round would triple the
cost), their labels revealed only when chosen; the ensemble is retrained from scratch with the
same recipe after each round and scored on the 8,003 held-out native test sequences.

Recipe (small so that 4 strategies x 3 seeds x 4 rounds of ensembles fit on a shared CPU):
legnet at width 0.0625, 4 epochs, OneCycle, KL loss, batch 128, an ensemble of 3, one torch
thread. Each ensemble's calibration (fitted on its validation split) is checked on the test set.

    nice -n 19 python benchmarks/active_learning.py --out bench_out/active_learning --seeds 0     # one process per seed
    python benchmarks/active_learning.py --out bench_out/active_learning --report                 # tables and figures

Results: ``OUT/seed=S/results.tsv`` (one row per strategy and round); ``--report`` writes
``benchmarks/results/select.md`` and ``docs/images/select_curves.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / ".." / "shared" / "data" / "deboer2020_native"
NATIVE_ADAPTER = "AACTGCATTTTTTTCACATC"
STRATEGIES = ("random", "uncertainty", "diverse-uncertainty", "goal")


def read_native(name: str) -> pd.DataFrame:
    frame = pd.read_csv(NATIVE / name, sep="\t", usecols=["seq", "el_combined", "group"])
    return frame.dropna(subset=["el_combined"]).reset_index(drop=True)


def run_config(table: Path, seed: int, args):
    from promoterlab.config import DataConfig, RunConfig, TrainConfig
    from promoterlab.models import model_config

    data = DataConfig(path=str(table), seq_col="seq", target_col="el_combined", group_col="group", test_size=0,
                      left_adapter=NATIVE_ADAPTER, singleton_channel=False, clip_targets=[0, 17])
    train = TrainConfig(loss="kl", epochs=args.epochs, batch_size=128, accelerator="cpu", devices="1",
                        ensemble=args.models)
    return RunConfig(data=data, model=model_config("legnet", width=args.width), train=train, seed=seed)


def train_round(folder: Path, labelled: pd.DataFrame, seed: int, args):
    """The ensemble trained on ``labelled`` (kept when already trained)."""
    from promoterlab.runs import Run, SUMMARY
    from promoterlab.training.train import train

    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "labelled.tsv"
    if not (folder / SUMMARY).is_file():
        labelled.to_csv(table, sep="\t", index=False)
        train(run_config(table, seed, args), folder)
    return Run.open(folder)


def score_test(run, test_codes: np.ndarray, test_y: np.ndarray) -> dict:
    """Test Pearson and Spearman of the ensemble mean, and its calibrated coverage."""
    from promoterlab.evaluation.calibration import coverage, load_calibration, member_moments, scale_features
    from promoterlab.evaluation.ensemble import calibration as raw_calibration
    from promoterlab.evaluation.metrics import pearson, spearman

    members = run.load_members()
    calibration = load_calibration(run)
    moments = member_moments(members, test_codes, second_moment=calibration.feature == "predictive_sd")
    covered = coverage(test_y, moments.mean, scale_features(moments), calibration)
    raw = raw_calibration(test_y, moments.mean, moments.sd)
    return {"test_pearson": pearson(moments.mean, test_y), "test_spearman": spearman(moments.mean, test_y),
            "coverage_68": covered["0.68"]["coverage"], "coverage_95": covered["0.95"]["coverage"],
            "width_68": covered["0.68"]["mean_width"], "within_1sd": raw["within_1sd"],
            "scale": calibration.feature}


def acquire(run, strategy: str, candidates: pd.DataFrame, labelled: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """Indices (into ``candidates``) that ``strategy`` chooses."""
    from promoterlab.data.dataset import encode_sequences
    from promoterlab.design.optimize import Goal
    from promoterlab.design.scoring import ModelScorer
    from promoterlab.design.select import select

    if strategy == "random":
        return select("random", n, np.zeros(len(candidates)), np.zeros(len(candidates)), seed=seed)[0]
    scorer = ModelScorer(run)
    codes = encode_sequences(candidates["seq"], scorer.layout).numpy()
    mean, sd = scorer.predict(codes)
    embedding = scorer.embed(codes) if strategy == "diverse-uncertainty" else None
    best = float(labelled["el_combined"].max())
    return select(strategy, n, mean, sd, embedding, Goal("max"), incumbent=best, seed=seed)[0]


def run_seed(seed: int, args, pool: pd.DataFrame, test_codes: np.ndarray, test_y: np.ndarray) -> None:
    out = args.out / f"seed={seed}"
    results_path = out / "results.tsv"
    done = pd.read_csv(results_path, sep="\t") if results_path.is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    rng = np.random.default_rng(seed)
    initial = rng.choice(len(pool), size=args.initial, replace=False)
    round0 = None
    for strategy in args.strategies:
        labelled_index = initial.copy()
        for round_ in range(args.rounds + 1):
            if any(r["strategy"] == strategy and r["round"] == round_ for r in rows):
                if round_ < args.rounds:  # replay the acquisitions, which were saved
                    chosen = np.load(out / strategy / f"round={round_ + 1}" / "acquired.npy")
                    labelled_index = np.concatenate([labelled_index, chosen])
                continue
            start = time.perf_counter()
            folder = out / "round=0" if round_ == 0 else out / strategy / f"round={round_}"
            run = train_round(folder, pool.iloc[labelled_index], seed, args) if round_ or round0 is None else round0
            if round_ == 0:
                round0 = run
            row = {"seed": seed, "strategy": strategy, "round": round_, "n_labelled": len(labelled_index),
                   **score_test(run, test_codes, test_y)}
            if round_ < args.rounds:
                remaining = np.setdiff1d(np.arange(len(pool)), labelled_index)
                sub = np.random.default_rng([seed, round_]).choice(remaining, size=min(args.subpool, len(remaining)),
                                                                   replace=False)
                picked = sub[acquire(run, strategy, pool.iloc[sub], pool.iloc[labelled_index], args.batch,
                                     seed * 100 + round_)]
                next_folder = out / strategy / f"round={round_ + 1}"
                next_folder.mkdir(parents=True, exist_ok=True)
                np.save(next_folder / "acquired.npy", picked)
                labels = pool["el_combined"].to_numpy()[picked]
                row.update(acquired_mean_label=float(labels.mean()), acquired_top_label=float(labels.max()))
                labelled_index = np.concatenate([labelled_index, picked])
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            pd.DataFrame(rows).to_csv(results_path, sep="\t", index=False)


def labels_to_reach(curve: pd.DataFrame, target: float) -> float | None:
    """Labels at which a mean learning curve first reaches ``target`` (linear between rounds)."""
    n, r = curve["n_labelled"].to_numpy(), curve["test_pearson"].to_numpy()
    if r[0] >= target:
        return float(n[0])
    for i in range(1, len(r)):
        if r[i] >= target:
            return float(n[i - 1] + (target - r[i - 1]) / (r[i] - r[i - 1]) * (n[i] - n[i - 1]))
    return None


def report(args) -> None:
    from matplotlib.figure import Figure

    frames = [pd.read_csv(p, sep="\t") for p in sorted(args.out.glob("seed=*/results.tsv"))]
    results = pd.concat(frames, ignore_index=True)
    curves = results.groupby(["strategy", "round"]).agg(
        n_labelled=("n_labelled", "mean"), test_pearson=("test_pearson", "mean"), sd=("test_pearson", "std"),
        seeds=("seed", "nunique"), acquired_mean_label=("acquired_mean_label", "mean"),
        coverage_68=("coverage_68", "mean"), coverage_95=("coverage_95", "mean")).reset_index()
    target = float(curves.query("strategy == 'random'")["test_pearson"].iloc[-1])
    lines = ["| strategy | " + " | ".join(f"round {int(r)} ({int(n):,} labels)" for r, n in
                                          curves.query("strategy == 'random'")[["round", "n_labelled"]].to_numpy())
             + " | labels to reach random's final r | mean label acquired |",
             "|---" * (args.rounds + 4) + "|"]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    for strategy in [s for s in STRATEGIES if s in set(curves["strategy"])]:
        curve = curves.query("strategy == @strategy").sort_values("round")
        reach = labels_to_reach(curve, target)
        cells = [f"{r:.4f} ± {s:.4f}" for r, s in curve[["test_pearson", "sd"]].to_numpy()]
        acquired = curve["acquired_mean_label"].dropna()
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {f'{reach:,.0f}' if reach else 'not reached'} | "
                     f"{acquired.mean():.2f} |")
        ax.errorbar(curve["n_labelled"], curve["test_pearson"], yerr=curve["sd"], marker="o", capsize=3,
                    label=strategy)
    ax.axhline(target, color="grey", ls=":", lw=0.8)
    ax.set(xlabel="labelled sequences", ylabel="native test Pearson r (ensemble mean)",
           title=f"active learning, de Boer native ({results['seed'].nunique()} seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.images.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.images / "select_curves.png", dpi=120)
    # Round 0 is one ensemble per seed, shared by every strategy: count it once.
    ensembles = pd.concat([results.query("round == 0").drop_duplicates("seed"), results.query("round > 0")])
    coverage = ensembles[["coverage_68", "coverage_95", "within_1sd"]].describe().loc[["mean", "min", "max"]]
    text = "\n".join(lines) + "\n\nCalibrated coverage on the native test set, every ensemble of the study " \
        f"({len(ensembles)}):\n\n" + coverage.to_markdown(floatfmt=".3f") + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "select.md").write_text(text)
    results.to_csv(args.results / "select.tsv", sep="\t", index=False, float_format="%.5g")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/active_learning"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--initial", type=int, default=5120)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subpool", type=int, default=16384)
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="Aggregate the seeds' results into tables and figures.")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes, to check the script.")
    args = parser.parse_args()
    if args.report:
        report(args)
        return
    torch.set_num_threads(1)
    from promoterlab.training.quiet import quiet_lightning

    quiet_lightning()
    if args.smoke:
        args.initial, args.batch, args.rounds, args.subpool, args.epochs, args.models = 600, 200, 2, 1000, 1, 2
    from promoterlab.data.dataset import encode_sequences

    pool, test = read_native("pool.tsv.gz"), read_native("test.tsv.gz")
    if args.smoke:
        test = test.iloc[:500]
    layout = run_config(Path("labelled.tsv"), 0, args).data.layout
    test_codes = encode_sequences(test["seq"], layout).numpy()
    test_y = test["el_combined"].to_numpy(dtype=np.float64)
    for seed in args.seeds:
        run_seed(seed, args, pool, test_codes, test_y)

if __name__ == "__main__":
    main()
