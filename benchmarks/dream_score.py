"""Official DREAM 2022 public-leaderboard scores of trained runs and of the sample submission.

For each run directory: predict the DREAM test sequences (RC-averaged), write a submission
JSON, and score it with the official weights against the public-leaderboard JSONs.
``--positions public`` predicts only the 9,045 public-leaderboard positions (all that the
public score uses; much faster on a CPU); ``all`` predicts all 71,103.

    python benchmarks/dream_score.py bench_out/dream_small/legnet-s_seed0 --out bench_out/dream_score
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from promoterlab.api import load_run, predict_sequences
from promoterlab.data.readers import read_sequences
from promoterlab.evaluation.dream import load_predictions, load_truth, score, write_submission

TEST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dream2022" / "test"
LEADERBOARD = TEST / "public_leaderboard_ids"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="*")
    parser.add_argument("--positions", choices=("public", "all"), default="public")
    parser.add_argument("--out", type=Path, default=Path("bench_out/dream_score"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    truth = load_truth(LEADERBOARD)
    test = read_sequences(TEST / "test_sequences.txt")
    if args.positions == "public":
        test = test[test["id"].astype(int).isin(truth.values)]
    rows = {"sample_submission": score(load_predictions(LEADERBOARD / "sample_submission.json"), truth)}
    seconds = {}
    for run in args.runs:
        model, config = load_run(run)
        start = time.perf_counter()
        values = predict_sequences(model, test["seq"].tolist(), config)
        seconds[run.name] = time.perf_counter() - start
        submission = args.out / f"{run.name}_submission.json"
        write_submission(submission, dict(zip(test["id"].astype(int), values)))
        rows[run.name] = score(load_predictions(submission), truth)
    names = ["all", "high", "low", "yeast", "random", "challenging", "SNV", "motif_perturbation", "motif_tiling"]
    print(f"public leaderboard ({args.positions} positions predicted: {len(test)})")
    print("| predictions | Pearson score | Spearman score | " + " | ".join(f"r {n}" for n in names) + " | predict s |")
    print("|---" * (len(names) + 4) + "|")
    for name, result in rows.items():
        cells = " | ".join(f"{result.subset(n).pearson:.3f}" for n in names)
        print(f"| {name} | {result.pearson_score:.4f} | {result.spearman_score:.4f} | {cells} | "
              f"{seconds.get(name, float('nan')):.0f} |")
    (args.out / "scores.json").write_text(json.dumps({k: v.to_dict() for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
