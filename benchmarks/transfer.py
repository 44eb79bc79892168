"""Fine-tuning and distillation across two libraries, on held-out test sets (issue 34, section 4).

Two tasks, ``legnet-s`` throughout, 5,120 training and 2,048 validation sequences drawn once
(``split_seed`` 0, so every arm of a task trains on the same rows), the same epochs and batches
for every arm of a task ("the same budget"):

- ``dream``: DREAM 2022 training rows; test = the 9,045 public-leaderboard sequences, scored with
  Pearson r and the challenge's official weighted Pearson and Spearman scores;
- ``native``: de Boer 2020 native fragments (validation drawn by ``group``); test = ``test.tsv.gz``
  (8,003, no group shared with the pool).

Arms (each a run folder ``--out/TASK/ARM/seed=S``):

- ``scratch``: random initialisation, seeds 0-4 (seeds 0-2 are the baseline; all five are the teacher);
- ``finetune``: ``init_from`` the other library's pretrained model, today's default
  ``init_lr_scale`` (the peak rate times 0.2), seeds 0-2;
- ``finetune-lr1``: the same at the full peak rate (``init_lr_scale`` 1), seeds 0-2;
- ``student``: ``teacher`` = the 5 scratch models of the task (an ensemble), ``teacher_weight``
  0.5, seeds 0-2;
- ``student-mutate``: the same plus one mutated copy of every training sequence (``teacher_extra``
  ``mutate:0.1``) that the teacher alone labels, seeds 0-2.

Pretrained models (``--out/pretrain/LIBRARY``, seed 0, trained once): ``native``: every pool row
but a grouped validation split of 2,048 (about 52,000 sequences), for the ``dream`` task;
``dream``: the 7,369 DREAM training rows but a validation tenth, for the ``native`` task. Each is
laid out as its own library (the init run's adapter differs from the task's; fine-tuning adapts).

Every difference is the mean test Pearson r of an arm's seeds minus the scratch seeds' of the same
numbers, with a paired bootstrap over test sequences (:func:`promoterlab.evaluation.bootstrap.paired_delta`).
Finished runs are kept (a run folder with ``predictions.npz``); an interrupted run resumes from its
last epoch. Run it at low priority on one thread; the whole study is a few CPU hours:

    nice -n 19 python benchmarks/transfer.py --out bench_out/transfer
    python benchmarks/transfer.py --report-only --out bench_out/transfer
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from promoterlab import api
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.dataset import encode_sequences
from promoterlab.data.readers import read_table
from promoterlab.evaluation.bootstrap import paired_delta
from promoterlab.evaluation.dream import load_truth, score
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.evaluation.predict import predict
from promoterlab.models import model_config
from promoterlab.runs import load_run

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DREAM = SHARED / "dream2022"
NATIVE = SHARED / "deboer2020_native"
NATIVE_ADAPTER = "AACTGCATTTTTTTCACATC"
TASKS = ("dream", "native")
PRETRAINED_ON = {"dream": "native", "native": "dream"}  # task -> the library its init model was trained on
ARMS = ("scratch", "finetune", "finetune-lr1", "student", "student-mutate")


def library_data(library: str, train_size: int | None, val_size: int | str) -> DataConfig:
    """A library's training table as the benchmark splits it (``split_seed`` 0, no held-out test:
    the test sets are separate)."""
    if library == "dream":
        return DataConfig(path=str(DREAM / "train" / "train_sequences_7369.txt"), train_size=train_size,
                          val_size=val_size, test_size=0, split_seed=0)
    return DataConfig(path=str(NATIVE / "pool.tsv.gz"), seq_col="seq", target_col="el_combined", group_col="group",
                      drop_missing=True, train_size=train_size, val_size=val_size, test_size=0,
                      left_adapter=NATIVE_ADAPTER, singleton_channel=False, clip_targets=[0.0, 17.0], split_seed=0)


def recipe(epochs: int, **changes) -> TrainConfig:
    return TrainConfig(loss="kl", epochs=epochs, accelerator="cpu", devices="1", ensemble=1, **changes)


def pretrain_config(library: str, args) -> RunConfig:
    size = 512 if args.smoke else None
    val = 256 if args.smoke else (2048 if library == "native" else "auto")
    epochs = args.pretrain_epochs[library]
    return RunConfig(data=library_data(library, size, val), model=model_config("legnet-s"), train=recipe(epochs), seed=0)


def run_config(task: str, arm: str, seed: int, args) -> RunConfig:
    data = library_data(task, 512 if args.smoke else 5120, 256 if args.smoke else 2048)
    train = recipe(args.epochs)
    if arm.startswith("finetune"):
        init = str(args.out / "pretrain" / PRETRAINED_ON[task])
        train = dataclasses.replace(train, init_from=init, init_lr_scale=1.0 if arm == "finetune-lr1" else 0.2)
    if arm.startswith("student"):
        teacher = str(args.out / task / "scratch" / f"seed=[0-{args.teacher_size - 1}]")
        train = dataclasses.replace(train, teacher=teacher, teacher_weight=args.teacher_weight,
                                    teacher_extra="mutate:0.1" if arm == "student-mutate" else "none")
    return RunConfig(data=data, model=model_config("legnet-s"), train=train, seed=seed)


# --- test sets and predictions -----------------------------------------------------------------

_TEST: dict[str, tuple] = {}


def test_table(task: str) -> tuple[np.ndarray | None, list[str], np.ndarray]:
    """``(DREAM positions or None, sequences, measured values)`` of a task's test set."""
    if task not in _TEST:
        if task == "dream":
            truth = load_truth(DREAM / "test" / "public_leaderboard_ids")
            positions = np.array(sorted(truth.values))
            seqs = read_table(DREAM / "test" / "test_sequences.txt")["seq"].to_numpy()[positions]
            _TEST[task] = (positions, list(seqs), np.array([truth.values[p] for p in positions]))
        else:
            table = read_table(NATIVE / "test.tsv.gz", seq_col="seq", target_col="el_combined", drop_missing=True)
            _TEST[task] = (None, table["seq"].tolist(), table["target"].to_numpy(np.float64))
    return _TEST[task]


def dream_scores(prediction: np.ndarray) -> tuple[float, float]:
    positions = test_table("dream")[0]
    result = score(dict(zip(positions.tolist(), prediction.tolist())), load_truth(DREAM / "test" / "public_leaderboard_ids"))
    return result.pearson_score, result.spearman_score


def train_one(folder: Path, config: RunConfig, task: str | None) -> str:
    """Train (or resume) one run and save its test predictions; a run with predictions is kept."""
    done = folder / "predictions.npz"
    if done.exists():
        return f"{folder}: kept"
    start = time.perf_counter()
    summary = api.train(config, folder, resume=True, overwrite=True)
    seconds = time.perf_counter() - start
    saved = {"train_seconds": np.float64(summary.get("train_seconds", seconds)),
             "best_val_pearson": np.float64(summary["best_val_pearson"])}
    if task is not None:
        model, run_cfg = load_run(folder)
        codes = encode_sequences(test_table(task)[1], run_cfg.data.layout)
        saved["test"] = predict(model, codes, batch_size=64)
    tmp = folder / "predictions.tmp.npz"
    np.savez(tmp, **saved)
    os.replace(tmp, done)
    return f"{folder}: {seconds:.0f} s, best val {summary['best_val_pearson']:.4f} (epoch {summary['best_epoch']})"


def plan(args) -> list[tuple[Path, RunConfig, str | None]]:
    """Every run in the order they train: the pretrained models, the scratch and fine-tuned seeds
    0-2 of both tasks, the rest of the teacher, the students, then the full-rate fine-tuning."""
    runs = [(args.out / "pretrain" / library, pretrain_config(library, args), None) for library in ("dream", "native")]

    def add(arm: str, seeds) -> None:
        if arm in args.arms:
            runs.extend((args.out / task / arm / f"seed={s}", run_config(task, arm, s, args), task)
                        for s in seeds if args.seeds is None or s in args.seeds for task in args.tasks)

    add("scratch", range(3))
    add("finetune", range(3))
    add("scratch", range(3, args.teacher_size))
    add("student", range(3))
    add("student-mutate", range(3))
    add("finetune-lr1", range(3))
    needed = {PRETRAINED_ON[task] for task in args.tasks}
    return [run for run in runs if run[2] is not None or run[0].name in needed]


# --- the tables ------------------------------------------------------------------------------------

def load_arm(out: Path, task: str, arm: str) -> dict[int, dict]:
    found = {}
    for path in sorted((out / task / arm).glob("seed=*/predictions.npz")):
        found[int(path.parent.name.split("=")[1])] = dict(np.load(path))
    return found


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def report(args) -> str:
    lines = []
    for library in sorted({PRETRAINED_ON[t] for t in args.tasks}):
        path = args.out / "pretrain" / library / "predictions.npz"
        if path.exists():
            saved = np.load(path)
            config = RunConfig.load(args.out / "pretrain" / library / "config.yaml")
            epochs = config.train.epochs
            lines.append(f"- pretrained on {library}: {epochs} epoch{'' if epochs == 1 else 's'} of legnet-s, best val r "
                         f"{float(saved['best_val_pearson']):.4f}, {float(saved['train_seconds']):.0f} s "
                         f"({config.data.path.split('/')[-1]}, validation {config.data.val_size:,} rows)")
    for task in args.tasks:
        y = test_table(task)[2]
        scratch = load_arm(args.out, task, "scratch")
        if not scratch:
            continue
        base_seeds = [s for s in range(3) if s in scratch]
        header = "| arm | models | val r | test r | test Spearman |"
        header += " DREAM Pearson score | DREAM Spearman score |" if task == "dream" else ""
        header += " Δ test r vs scratch (95 % CI) | seeds better | train s / model |"
        lines += ["", f"### {task}: 5,120 training sequences, legnet-s, {args.epochs} epochs per model "
                      f"(fine-tuned from the {PRETRAINED_ON[task]} model)", "", header,
                  "|" + "---|" * (header.count("|") - 1)]
        rows = [(arm, load_arm(args.out, task, arm)) for arm in ARMS]
        teacher = [scratch[s]["test"] for s in range(args.teacher_size) if s in scratch]
        for arm, found in rows:
            seeds = [s for s in base_seeds if s in found]
            if not seeds:
                continue
            tests = [found[s]["test"] for s in seeds]
            cells = [arm, f"{len(seeds)} seeds", _mean_sd([float(found[s]["best_val_pearson"]) for s in seeds]),
                     _mean_sd([pearson(t, y) for t in tests]), _mean_sd([spearman(t, y) for t in tests])]
            if task == "dream":
                scores = [dream_scores(t) for t in tests]
                cells += [_mean_sd([s[0] for s in scores]), _mean_sd([s[1] for s in scores])]
            if arm == "scratch":
                cells += ["—", "—"]
            else:
                delta, low, high = paired_delta(y, np.column_stack(tests),
                                                np.column_stack([scratch[s]["test"] for s in seeds]), n_boot=args.n_boot)
                better = sum(pearson(found[s]["test"], y) > pearson(scratch[s]["test"], y) for s in seeds)
                cells += [f"{delta:+.4f} ({low:+.4f}, {high:+.4f})", f"{better} of {len(seeds)}"]
            cells.append(f"{np.mean([float(found[s]['train_seconds']) for s in seeds]):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        if len(teacher) == args.teacher_size:
            mean = np.mean(teacher, axis=0)
            cells = [f"teacher (ensemble of {len(teacher)} scratch)", "1 x 1", "—", f"{pearson(mean, y):.4f}",
                     f"{spearman(mean, y):.4f}"]
            if task == "dream":
                cells += [f"{s:.4f}" for s in dream_scores(mean)]
            delta, low, high = paired_delta(y, mean, np.column_stack([scratch[s]["test"] for s in base_seeds]),
                                            n_boot=args.n_boot)
            cells += [f"{delta:+.4f} ({low:+.4f}, {high:+.4f})", "—", "—"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS,
                        help="Arms to train (all by default; the tables show every arm found).")
    parser.add_argument("--seeds", type=int, nargs="+", help="Only these seeds of the arms (default: all).")
    parser.add_argument("--epochs", type=int, default=4, help="Epochs of every task run.")
    parser.add_argument("--native-pretrain-epochs", type=int, default=1)
    parser.add_argument("--dream-pretrain-epochs", type=int, default=6)
    parser.add_argument("--teacher-size", type=int, default=5)
    parser.add_argument("--teacher-weight", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="512 training sequences, 1 epoch: a check of the pipeline.")
    parser.add_argument("--out", type=Path, default=Path("bench_out/transfer"))
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "transfer.md",
                        help="Where the tables are also written (not with --smoke).")
    args = parser.parse_args()
    if args.smoke:
        args.epochs = args.native_pretrain_epochs = args.dream_pretrain_epochs = 1
    args.pretrain_epochs = {"native": args.native_pretrain_epochs, "dream": args.dream_pretrain_epochs}
    torch.set_num_threads(args.threads)
    if not args.report_only:
        for folder, config, task in plan(args):
            print(run_one_line(folder, config, task), flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    text = (f"{cpu} ({platform.machine()}, {os.cpu_count()} CPUs, shared with other work), {args.threads} torch "
            f"thread(s), precision auto; {datetime.date.today()}; {args.n_boot} bootstrap draws\n\n" + report(args))
    print(text)
    (args.out / "report.md").write_text(text + "\n")
    if not args.smoke:
        args.results.write_text("# Fine-tuning and distillation (benchmarks/transfer.py)\n\n" + text + "\n")


def run_one_line(folder: Path, config: RunConfig, task: str | None) -> str:
    try:
        return train_one(folder, config, task)
    except (ValueError, OSError) as err:  # one failed run leaves the others to train
        return f"{folder}: failed: {err}"


if __name__ == "__main__":
    main()
