"""Calibrated intervals on held-out real data (issue 35): coverage of the 68 % and 95 % intervals.

Two ensembles of 3 LegNets (width 0.125, 6 epochs, KL loss, one torch thread), each member an
ordinary model run, so that every run gives an ensemble row and three single-model rows:

- ``dream``: 5,120 training sequences of the 7,369-row DREAM slice, 1,024 validation, the
  default held-out test split (737 rows, never seen in training or calibration);
- ``native``: 10,240 de Boer native sequences (validation 1,024 by group), tested on the 8,003
  held-out native sequences (no 20-mer shared with the pool).

Training fits each calibration on its validation set and reports its test coverage
(``summary.json``); this script gathers those, adds the uncalibrated ``±1 sd`` / ``±2 sd`` of the
ensembles, and draws observed against nominal coverage for levels 0.05 to 0.99.

    nice -n 19 python benchmarks/calibration.py --out bench_out/calibration

Writes ``benchmarks/results/calibration.md`` and ``docs/images/calibration_coverage.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
LEVELS = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.7, 0.8, 0.9, 0.95, 0.99])


def task_config(task: str, epochs: int, width: float):
    from promoterlab.config import DataConfig, RunConfig, TrainConfig
    from promoterlab.models import model_config

    if task == "dream":
        data = DataConfig(path=str(SHARED / "dream2022" / "train" / "train_sequences_7369.txt"), train_size=5120,
                          val_size=1024)
    else:
        native = SHARED / "deboer2020_native"
        data = DataConfig(path=str(native / "pool.tsv.gz"), seq_col="seq", target_col="el_combined",
                          group_col="group", drop_missing=True, train_size=10240, val_size=1024,
                          test_path=str(native / "test.tsv.gz"), left_adapter="AACTGCATTTTTTTCACATC",
                          singleton_channel=False, clip_targets=[0, 17])
    train = TrainConfig(loss="kl", epochs=epochs, accelerator="cpu", devices="1", ensemble=3)
    return RunConfig(data=data, model=model_config("legnet", width=width), train=train, seed=0)


def coverage_curve(run, test) -> dict[str, np.ndarray]:
    """Observed coverage at every level: calibrated ensemble, calibrated first member, raw ±z·sd."""
    from scipy.stats import norm

    from promoterlab.evaluation.calibration import load_calibration, member_moments, scale_features
    from promoterlab.runs import Run

    y = test.targets.numpy().astype(np.float64)
    curves = {}
    for name, part in (("ensemble, calibrated", run), ("single model, calibrated", Run.open(run.members[0]))):
        calibration = load_calibration(part)
        moments = member_moments(part.load_members(), test.codes,
                                 second_moment=calibration.feature == "predictive_sd")
        features = scale_features(moments)
        curves[name] = np.array([np.mean((y >= lo) & (y <= hi)) for lo, hi in
                                 (calibration.interval(moments.mean, features, level) for level in LEVELS)])
        if name.startswith("ensemble"):
            error = np.abs(y - moments.mean)
            curves["ensemble, ±z·sd (raw)"] = np.array([np.mean(error <= norm.ppf(0.5 + level / 2) * moments.sd)
                                                       for level in LEVELS])
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/calibration"))
    parser.add_argument("--tasks", nargs="*", default=["dream", "native"], choices=["dream", "native"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--extra", type=Path, nargs="*", default=[],
                        help="More finished ensemble folders to tabulate (e.g. the design benchmark's run).")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from matplotlib.figure import Figure

    from promoterlab.data.dataset import load_split
    from promoterlab.runs import SUMMARY, Run
    from promoterlab.training.outcome import test_set
    from promoterlab.training.quiet import quiet_lightning
    from promoterlab.training.train import train

    quiet_lightning()
    rows, curves = [], {}
    folders = {task: args.out / task for task in args.tasks} | {folder.name: folder for folder in args.extra}
    for task, folder in folders.items():
        if task in args.tasks and not (folder / SUMMARY).is_file():
            train(task_config(task, args.epochs, args.width), folder)
        summary = json.loads((folder / SUMMARY).read_text())
        for label, part in [(f"ensemble of {summary['n_models']}", summary)] + [(f"single model ({name})", member)
                                                         for name, member in summary["members"].items()]:
            covered = part["test_coverage"]
            rows.append({"task": task, "model": label, "test_pearson": part["test"]["pearson"],
                         "scale": part["calibration"]["scale"], "offset": part["calibration"]["offset"],
                         "coverage_68": covered["0.68"]["coverage"], "width_68": covered["0.68"]["mean_width"],
                         "coverage_95": covered["0.95"]["coverage"], "width_95": covered["0.95"]["mean_width"],
                         "within_1sd_raw": (part.get("test_calibration") or {}).get("within_1sd"),
                         "within_2sd_raw": (part.get("test_calibration") or {}).get("within_2sd"),
                         "n_test": covered["0.68"]["n"]})
        run = Run.open(folder)
        config = run.config
        split = load_split(config.data, config.seed)
        curves[task] = coverage_curve(run, test_set(config, split)[0])
        print(json.dumps(rows[-4:], indent=1), flush=True)
    table = pd.DataFrame(rows)
    args.results.mkdir(parents=True, exist_ok=True)
    text = table.to_markdown(index=False, floatfmt=".3f") + "\n"
    (args.results / "calibration.md").write_text(text)
    fig = Figure(figsize=(4.2 * len(curves), 4))
    for ax, (task, found) in zip(np.atleast_1d(fig.subplots(1, len(curves))), curves.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="nominal")
        for name, values in found.items():
            ax.plot(LEVELS, values, marker="o", ms=3, label=name)
        ax.set(xlabel="nominal level", ylabel="observed coverage (test)", title=task, xlim=(0, 1), ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.images.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.images / "calibration_coverage.png", dpi=120)
    print(text)


if __name__ == "__main__":
    main()
