"""Interpretation measured on real and simulated data (issue 14).

1. Variant effects on DREAM 2022: predicted against measured Δexpression (alt − ref) of the
   public-leaderboard SNV, motif-perturbation and motif-tiling pairs, Pearson and Spearman, for
   each run given (e.g. legnet-s trained on 5,120 DREAM sequences and on all 7,369 less the
   2,048 validation ones).
2. The demo's simulated library, where the planted motifs are known: the motifs
   ``promoterlab motifs`` finds and their best known match, and ISM at planted TATA boxes
   against random positions.
3. Speed: ISM of whole 150 bp windows (450 mutants each, RC-averaged) in sequences per second,
   fp32 and bf16; and the DeepLIFT/SHAP sum check on a trained LegNet.

The runs are trained with the command line (``--train`` does it when a folder lacks a model)::

    promoterlab demo --out runs/demo
    promoterlab train ../shared/data/dream2022/train/train_sequences_7369.txt --model legnet-s \
        --max-time 5 --train-size 5120 --seed 0 --out runs/dream5120
    promoterlab train ../shared/data/dream2022/train/train_sequences_7369.txt --model legnet-s \
        --max-time 5 --seed 0 --out runs/dreamall
    python benchmarks/variant_effects.py --runs runs/dream5120 runs/dreamall --demo runs/demo \
        --out bench_out/variant_effects
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu

from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import read_seq_values
from promoterlab.data.simulate import MOTIFS, simulate_library
from promoterlab.evaluation.dream import load_leaderboard_truth
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.interpret.attribution import deeplift_shap, saturation_ism
from promoterlab.interpret.explain import attribute
from promoterlab.interpret.motifs import find_motifs
from promoterlab.interpret.variants import variant_effects
from promoterlab.interpret.wrapper import OneHotExpression, deeplift_ready
from promoterlab.models.fold import fold_batchnorm
from promoterlab.sequence import tangermeme_one_hot
from promoterlab.runs import load_run

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dream2022"
TRAIN_FILE = DATA / "train" / "train_sequences_7369.txt"
TEST_FILE = DATA / "test" / "test_sequences.txt"
LEADERBOARD = DATA / "test" / "public_leaderboard_ids"
PAIRED = ("SNV", "motif_perturbation", "motif_tiling")
TATA = re.compile("TATA[AT]A[AT][AG]")
TRAIN_COMMANDS = {
    "demo": ["demo"],
    "dream5120": ["train", str(TRAIN_FILE), "--model", "legnet-s", "--max-time", "5", "--train-size", "5120",
                  "--seed", "0"],
    "dreamall": ["train", str(TRAIN_FILE), "--model", "legnet-s", "--max-time", "5", "--seed", "0"],
}


def train_if_missing(run: Path) -> None:
    if (run / "model.pt").is_file():
        return
    command = TRAIN_COMMANDS[run.name]
    subprocess.run([sys.executable, "-m", "promoterlab", *command, "--out", str(run), "--quiet"], check=True)


def dream_variant_effects(run: Path, precision: str) -> list[dict]:
    """Pearson and Spearman of predicted against measured alt − ref per paired subset."""
    model, config = load_run(run)
    model = fold_batchnorm(model)
    seqs = read_seq_values(TEST_FILE)["seq"].to_numpy()
    truth = load_leaderboard_truth(LEADERBOARD)
    rows = []
    for name in PAIRED:
        pairs = [(alt, ref) for alt, ref in truth.subsets[name] if alt in truth.values and ref in truth.values]
        alt_pos, ref_pos = np.array(pairs).T
        start = time.perf_counter()
        effects = variant_effects(model, seqs[ref_pos].tolist(), seqs[alt_pos].tolist(), config.data.layout,
                                  precision=precision, fold=False)
        seconds = time.perf_counter() - start
        measured = np.array([truth.values[a] - truth.values[r] for a, r in pairs])
        r = pearson(effects["delta"].to_numpy(), measured)
        rows.append({"run": run.name, "precision": precision, "subset": name, "n": len(pairs), "pearson": r,
                     "r2": r * r, "spearman": spearman(effects["delta"].to_numpy(), measured), "seconds": seconds})
    return rows


def planted_motifs(demo: Path, out: Path, n: int, method: str) -> pd.DataFrame:
    """``promoterlab motifs`` on ``n`` new simulated promoters (a seed the demo never saw)."""
    library = out / f"simulated_{n}.txt"
    simulate_library(n, seed=101)[["seq", "expr"]].to_csv(library, sep="\t", header=False, index=False)
    _, _, table = find_motifs(demo, library, out / f"motifs_{method}_{n}", method=method, progress=True)
    return table


def tata_ism(demo: Path, n: int, precision: str) -> dict:
    """Mean |ISM change| at planted forward TATA boxes against positions outside every planted motif."""
    frame = simulate_library(4 * n, seed=202)
    inserts = frame["seq"].str.slice(17, 97)
    with_tata = [i for i, s in enumerate(inserts) if TATA.search(s)][:n]
    model, config = load_run(demo)
    codes = encode_sequences(frame["seq"].iloc[with_tata].tolist(), config.data.layout)
    starts = np.full(len(with_tata), 57)
    window = attribute(model, codes, starts, "ism", precision=precision, progress=True)
    size = np.abs(window.ism).sum(axis=1) / 3  # (n, L): mean |change| of the 3 substitutions
    at_tata, background, centres = [], [], []
    rng = np.random.default_rng(0)
    for row, index in enumerate(with_tata):
        insert = inserts.iloc[index]
        planted = np.zeros(80, dtype=bool)
        for motif in MOTIFS:
            for strand in (insert, insert[::-1].translate(str.maketrans("ACGT", "TGCA"))):
                for match in re.finditer(f"(?=({motif.pattern}))", strand):
                    s, e = match.start(1), match.end(1)
                    s, e = (s, e) if strand is insert else (80 - e, 80 - s)
                    planted[s:e] = True
        tata = TATA.search(insert)
        centres.append((tata.start() + tata.end()) / 2)
        at_tata.append(size[row, 57 + tata.start():57 + tata.end()].mean())
        free = np.flatnonzero(~planted)
        background.append(size[row, 57 + rng.choice(free, 8, replace=False)].mean())
    at_tata, background, centres = np.array(at_tata), np.array(background), np.array(centres)
    result = {}
    for label, keep in (("all", np.ones(len(centres), dtype=bool)), ("centred_48_72", np.abs(centres - 60) <= 12)):
        result[label] = {"n": int(keep.sum()), "mean_abs_ism_tata": float(at_tata[keep].mean()),
                         "mean_abs_ism_random": float(background[keep].mean()),
                         "ratio": float(at_tata[keep].mean() / background[keep].mean()),
                         "fraction_tata_larger": float((at_tata[keep] > background[keep]).mean()),
                         "mann_whitney_p": float(mannwhitneyu(at_tata[keep], background[keep],
                                                              alternative="greater").pvalue)}
    return result


def ism_speed(run: Path, n: int, precision: str) -> dict:
    """Sequences per second of ISM over whole 150 bp windows (450 mutants, RC-averaged)."""
    model, config = load_run(run)
    wrapper = OneHotExpression(fold_batchnorm(model))
    seqs = read_seq_values(TEST_FILE)["seq"].iloc[:n].tolist()
    X = tangermeme_one_hot(encode_sequences(seqs, config.data.layout))
    saturation_ism(wrapper, X[:1], precision=precision)  # warm-up
    start = time.perf_counter()
    result = saturation_ism(wrapper, X, precision=precision)
    seconds = time.perf_counter() - start
    return {"run": run.name, "precision": precision, "threads": torch.get_num_threads(), "n": n,
            "mutants_per_sequence": int((result.deltas != 0).sum() / n), "seconds": seconds,
            "sequences_per_second": n / seconds}


def ism_precision_agreement(run: Path, n: int) -> dict:
    """How far bf16 ISM changes are from fp32 ones."""
    model, config = load_run(run)
    wrapper = OneHotExpression(fold_batchnorm(model))
    X = tangermeme_one_hot(encode_sequences(read_seq_values(TEST_FILE)["seq"].iloc[:n].tolist(), config.data.layout))
    fp32 = saturation_ism(wrapper, X, 57, 150, precision="32").deltas.flatten().numpy()
    bf16 = saturation_ism(wrapper, X, 57, 150, precision="bf16").deltas.flatten().numpy()
    keep = fp32 != 0
    return {"run": run.name, "n": n, "pearson": pearson(bf16[keep], fp32[keep]),
            "max_abs_difference": float(np.abs(bf16 - fp32).max()), "fp32_abs_mean": float(np.abs(fp32[keep]).mean())}


def deeplift_sum_check(run: Path, n: int, shuffles: int) -> dict:
    """|sum of attributions − (f(x) − mean f(references))| on a trained LegNet, with the product rule
    for squeeze-excitation (deeplift_ready) and without it."""
    model, config = load_run(run)
    folded = fold_batchnorm(model)
    X = tangermeme_one_hot(encode_sequences(read_seq_values(TEST_FILE)["seq"].iloc[:n].tolist(), config.data.layout))
    result = {"run": run.name, "n": n, "shuffles": shuffles}
    for label, network in (("product_rule", deeplift_ready(folded)), ("plain", folded)):
        wrapper = OneHotExpression(network)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attributions, references = deeplift_shap(wrapper, X, 57, 150, shuffles, list(range(n)),
                                                     return_references=True)
        with torch.no_grad():
            output = wrapper(X.float())[:, 0]
            reference = wrapper(references.reshape(-1, 4, 150).float())[:, 0].reshape(n, shuffles).mean(1)
        gap = (attributions.sum(dim=(1, 2)) - (output - reference)).abs()
        result[label] = {"max_abs_gap": float(gap.max()), "mean_abs_difference": float((output - reference).abs().mean()),
                         "max_relative_gap": float((gap / (output - reference).abs()).max())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="DREAM run folders.")
    parser.add_argument("--demo", type=Path, help="Run folder of `promoterlab demo`.")
    parser.add_argument("--train", action="store_true", help="Train runs whose folder lacks model.pt.")
    parser.add_argument("--motif-sequences", type=int, default=1000)
    parser.add_argument("--motif-method", default="deepliftshap")
    parser.add_argument("--tata-sequences", type=int, default=200)
    parser.add_argument("--speed-sequences", type=int, default=20)
    parser.add_argument("--precision", default="32", help="Precision of the ISM on the simulated library.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"threads": torch.get_num_threads()}
    for run in [*args.runs, *([args.demo] if args.demo else [])]:
        if args.train:
            train_if_missing(run)
    if args.runs:
        results["variants"] = [row for run in args.runs for precision in ("32", "bf16")
                               for row in dream_variant_effects(run, precision)]
        print(pd.DataFrame(results["variants"]).to_markdown(index=False, floatfmt=".3f"))
        results["ism_speed"] = [ism_speed(args.runs[0], args.speed_sequences, p) for p in ("32", "bf16")]
        print(pd.DataFrame(results["ism_speed"]).to_markdown(index=False, floatfmt=".3f"))
        results["ism_bf16_vs_fp32"] = ism_precision_agreement(args.runs[-1], 10)
        results["deeplift_sum_check"] = deeplift_sum_check(args.runs[-1], 10, 10)
        print(json.dumps({k: results[k] for k in ("ism_bf16_vs_fp32", "deeplift_sum_check")}, indent=2))
    if args.demo:
        results["tata_ism"] = tata_ism(args.demo, args.tata_sequences, args.precision)
        print(json.dumps(results["tata_ism"], indent=2))
        table = planted_motifs(args.demo, args.out, args.motif_sequences, args.motif_method)
        results["motifs"] = table.to_dict(orient="records")
        print(table.to_markdown(index=False, floatfmt=".3g"))
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
