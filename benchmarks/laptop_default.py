"""What a lab gets from the command line with the defaults, natively and on an emulated laptop.

Each part runs ``promoterlab`` as a user would (a subprocess, ``--json``), once natively and once
under the AVX2-only fp32 emulation of a laptop without bf16 (``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2 PROMOTERLAB_PRECISION=32``), environments interleaved part by part:

- ``demo``: ``promoterlab demo``: wall seconds and validation Pearson;
- ``default``: ``promoterlab train DREAM --train-size 5120`` with nothing else (the default time
  budget, shared by the default ensemble): the estimate printed before training against the
  wall time, skipped steps, validation (flag 0), held-out test and DREAM public-leaderboard
  Pearson;
- ``single``: the same with ``--ensemble 1`` (one model gets the whole default budget);
- ``max_time``: ``--max-time 5`` on DREAM-5120 (2,048 validation sequences, no held-out split;
  the public leaderboard tests), for ``legnet-s`` and for the default model: planned against
  trained steps and validation Pearson (flag 0).

The kernel cache starts empty (``PROMOTERLAB_CACHE_DIR`` in ``--out``), so that the first training
of each environment pays for measuring its kernels, as on a lab's first run. Run it alone on an idle
machine (it takes about 1.5 hours)::

    python benchmarks/laptop_default.py --out bench_out/laptop_default
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "dream2022"
TRAIN_FILE = DATA / "train" / "train_sequences_7369.txt"
TEST_FILE = DATA / "test" / "public_test_data_with_MAUDE_expression.txt"
ENVS = {"native": {}, "avx2_fp32": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                                    "PROMOTERLAB_PRECISION": "32"}}


def promoterlab(args: list[str], env: dict[str, str], log: Path) -> tuple[dict, float]:
    """Run ``promoterlab ARGS --json``: its JSON result and wall seconds; messages go to ``log``."""
    start = time.perf_counter()
    with log.open("w") as messages:
        done = subprocess.run([sys.executable, "-m", "promoterlab", *args, "--json"], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=messages, text=True, check=True)
    return json.loads(done.stdout), round(time.perf_counter() - start, 1)


def public_pearson(run: Path, env: dict[str, str], log: Path) -> float:
    result, _ = promoterlab(["evaluate", str(run), str(TEST_FILE)], env, log)
    return result["pearson"]


def models_of(summary: dict) -> list[dict]:
    """The summary of each model of a run (one, or an ensemble's members)."""
    return list((summary.get("members") or {"": summary}).values())


def demo(out: Path, env: dict[str, str]) -> dict:
    summary, wall = promoterlab(["demo", "-o", str(out), "--no-progress"], env, out.with_suffix(".log"))
    return {"wall_seconds": wall, "val_pearson": summary.get("best_val_pearson"),
            "test_pearson": (summary.get("test") or {}).get("pearson"), "width": summary.get("width"),
            "budget": summary.get("budget")}


def default_train(out: Path, env: dict[str, str], extra: list[str] = ()) -> dict:
    summary, wall = promoterlab(["train", str(TRAIN_FILE), "--train-size", "5120", "-o", str(out), "--overwrite",
                                 "--no-progress", *extra], env, out.with_suffix(".log"))
    models = models_of(summary)
    budgets = [model.get("budget") or {} for model in models]
    k, first = len(models), models[0]
    estimate = first.get("estimated_seconds")
    return {"wall_seconds": wall, "estimated_seconds": k * estimate if estimate else None,
            "estimate_error": (k * estimate / wall - 1) if estimate else None, "n_models": k,
            "width": [b.get("width") for b in budgets], "steps": [b.get("steps") for b in budgets],
            "skipped_steps": [b.get("skipped_steps") for b in budgets],
            "replans": [b.get("replans") for b in budgets],
            "val_pearson_flag0": summary.get("val_pearson") if k > 1 else (summary.get("val_flag0") or {}).get("pearson"),
            "test_pearson": (summary.get("test") or {}).get("pearson"),
            "public_pearson": public_pearson(out, env, out.with_suffix(".eval.log"))}


def max_time(out: Path, env: dict[str, str], model: list[str]) -> dict:
    summary, wall = promoterlab(["train", str(TRAIN_FILE), "--train-size", "5120", "--val-size", "2048",
                                 "--test-size", "0", "--max-time", "5", "-o", str(out), "--overwrite",
                                 "--no-progress", *model], env, out.with_suffix(".log"))
    budget = summary.get("budget") or {}
    return {"wall_seconds": wall, "width": budget.get("width"), "planned_steps": budget.get("steps"),
            "trained_steps": summary.get("steps"), "skipped_steps": budget.get("skipped_steps"),
            "replans": budget.get("replans"), "val_pearson_flag0": (summary.get("val_flag0") or {}).get("pearson"),
            "public_pearson": public_pearson(out, env, out.with_suffix(".eval.log"))}


PARTS = {
    "demo": lambda out, env: demo(out, env),
    "default": lambda out, env: default_train(out, env),
    "single": lambda out, env: default_train(out, env, ["--ensemble", "1"]),
    "max_time": lambda out, env: {"legnet-s": max_time(out.with_name(out.name + "_legnet-s"), env,
                                                       ["--model", "legnet-s"]),
                                  "default model": max_time(out, env, [])},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["PROMOTERLAB_CACHE_DIR"] = str((args.out / "cache").resolve())
    flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split()) if Path("/proc/cpuinfo").exists() else set()
    saved = args.out / "laptop_default.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    results.update(date=time.strftime("%Y-%m-%d %H:%M"), cores=os.cpu_count(),
                   cpu_flags=sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
                   load_before=os.getloadavg())
    for part in args.parts:
        for label in args.envs:
            print(f"{part}, {label} ...", flush=True)
            row = PARTS[part](args.out / f"{part}_{label}", ENVS[label])
            results.setdefault(part, {})[label] = row
            print(f"{part}, {label}: {json.dumps(row)}", flush=True)
            saved.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
