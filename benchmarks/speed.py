"""CPU speed of promoterlab against a plain eager fp32 PyTorch loop over the same network.

Parts (``--parts``, default all), each printed as a table and saved to ``--out/speed.json``:

- ``throughput``: in one process, interleaved rounds for ``legnet`` (width 1) and ``legnet-s``:
  training sequences/s of (a) a plain eager fp32 loop (``nn.Conv1d(groups=...)``, AdamW +
  OneCycle, KL loss, RC-augmented batches of 128, the batch at which that loop is fastest on
  a CPU) and (b) ``promoterlab.train`` with its defaults (whole epochs, validation included);
  inference sequences/s, RC-averaged, of (a) the plain loop in fp32 and (b) ``predict`` with
  its defaults; the ratios; and the largest |bf16 - fp32| difference of the predictions.
- ``accuracy``: the same seed on DREAM-5120 (``legnet-s``, 4 epochs, batch 128, flag 0) with
  the old path (fp32, plain grouped convolution) and the new defaults: val Pearson and time.
- ``time_to_accuracy``: seconds from the start of ``train`` until validation Pearson (flag 0)
  first reaches 0.60 on DREAM-5120 (``legnet-s``, seed 0): with the defaults (20 epochs; the
  run stops there) and with ``--max-time 2``.
- ``max_time``: ``--max-time 5`` with no other option on DREAM-5120: best val Pearson (flag 0),
  the public test-set Pearson, and what the budget chose.
- ``precision``: bf16 against fp32 predictions of the trained ``max_time`` model on the 9,045
  measured public-leaderboard sequences (largest difference, test Pearson of each, speed).
- ``memory``: peak resident memory of ``train`` with defaults on 10,240 sequences
  (``legnet-s``), and the resident memory after every epoch.
- ``kernels``: the formulation ``promoterlab.models.autotune`` measures fastest for each model,
  training and inference, in the run's precision, with every candidate's rate (measured afresh).
- ``laptop``: ``throughput`` and ``kernels`` in subprocesses, natively and under an AVX2-only
  emulation of a laptop (``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``, fp32), one round
  of each in turn (interleaved), with the CPU flags each saw.
- ``ceiling``: the plain loop's GFLOP/s against the fastest dense convolution this CPU runs and
  its FMA peak: the largest speed-up any formulation of the same arithmetic could give (not in
  the default parts).
- ``compile``: ``torch.compile`` of the real path's training step (both models, its precision
  and kernels): compile seconds with a cold and a warm compile cache, the step rate eager and
  compiled, and the steps after which a cold compile pays back (not in the default parts: it
  takes minutes).

``--precision 32`` runs the real path in fp32 (as a CPU without native bf16 does).
Run it alone on an idle machine: ``python benchmarks/speed.py --out bench_out/speed``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from promoterlab import api
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.data.dataset import TrainBatches, load_split
from promoterlab.evaluation.predict import predict
from promoterlab.models import build_model, model_config
from promoterlab.models.autotune import KERNELS_ENV, machine_signature
from promoterlab.models.kernels import PLAIN_KERNELS, apply_kernels
from promoterlab.objective import Objective
from promoterlab.precision import autocast, resolve_precision
from promoterlab.sequence import model_input, reverse_complement_codes

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dream2022"
TRAIN_FILE = DATA / "train" / "train_sequences_7369.txt"
TEST_FILE = DATA / "test" / "public_test_data_with_MAUDE_expression.txt"
MODELS = {"legnet": 1.0, "legnet-s": 0.5}
LAPTOP_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "PROMOTERLAB_PRECISION": "32"}


@contextlib.contextmanager
def reference_layers():
    """Models that ``train`` builds inside compute as the reference code does: the stock
    ``nn.Conv1d(groups=...)`` kernel on ``(batch, C, L)`` tensors (``$PROMOTERLAB_KERNELS``)."""
    saved = os.environ.get(KERNELS_ENV)
    os.environ[KERNELS_ENV] = PLAIN_KERNELS.label
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(KERNELS_ENV, None)
        else:
            os.environ[KERNELS_ENV] = saved


def plain_model(name: str, objective: Objective) -> torch.nn.Module:
    """The network computing as the reference code does (stock grouped kernel, 3D tensors)."""
    return apply_kernels(build_model(model_config(name), objective.n_outputs), PLAIN_KERNELS)


def plain_train_rate(name: str, codes: torch.Tensor, targets: torch.Tensor, batch: int = 128,
                     warmup: int = 2) -> float:
    """Sequences/s of one epoch of the reference way: eager fp32, RC-augmented batches, KL loss;
    timed after ``warmup`` steps (steady state, like the second epoch of the real path)."""
    objective = Objective("kl")
    torch.manual_seed(0)
    model = plain_model(name, objective).train()
    steps = 2 * len(codes) // batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.005 / 25, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.005, total_steps=steps)
    order = torch.randperm(2 * len(codes))
    for step in range(steps):
        if step == warmup:
            start = time.perf_counter()
        index = order[step * batch:(step + 1) * batch]
        reverse, rows = index >= len(codes), index % len(codes)
        batch_codes = codes[rows]
        batch_codes[reverse] = reverse_complement_codes(batch_codes[reverse]).to(batch_codes.dtype)
        loss = objective.loss_value(model(model_input(batch_codes, reverse)), targets[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return (steps - warmup) * batch / (time.perf_counter() - start)


@torch.no_grad()
def plain_predict_rate(name: str, codes: torch.Tensor, batch: int = 128) -> tuple[float, np.ndarray]:
    """Sequences/s (and the values) of an eager fp32 RC-averaged inference loop."""
    objective = Objective("kl")
    torch.manual_seed(0)
    model = plain_model(name, objective).eval()
    start, values = time.perf_counter(), []
    for i in range(0, len(codes), batch):
        chunk = codes[i:i + batch]
        out = objective.average(model(model_input(chunk, False)), model(model_input(reverse_complement_codes(chunk), True)))
        values.append(objective.value(out))
    return len(codes) / (time.perf_counter() - start), torch.cat(values).numpy()


def dream_config(name: str, train_size: int, val_size: int, seed: int = 0, **train) -> RunConfig:
    return RunConfig(data=DataConfig(path=str(TRAIN_FILE), train_size=train_size, val_size=val_size,
                                     val_singleton=False),
                     model=model_config(name), train=TrainConfig(**{"ensemble": 1, **train}), seed=seed)


def real_train_rate(name: str, out: Path, precision: str = "auto") -> float:
    """Training sequences/s of ``promoterlab.train`` with its defaults, in steady state: the
    second of two epochs of 2,048 sequences (RC-augmented), timed from its first batch to the
    end of its validation (on 256 sequences, included in the time)."""
    api.train(dream_config(name, 2048, 256, epochs=2, precision=precision), out, overwrite=True, resume=False)
    epoch_seconds = float(np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1, ndmin=2)[1, -1])
    return 2 * 2048 / epoch_seconds


def throughput(args, out: Path) -> dict:
    train_set, _, *_ = load_split(dream_config("legnet", 2048, 256).data, 0)
    codes = train_set.codes
    infer_codes = codes.repeat(2, 1)  # 4,096 sequences
    rows = {}
    for name in MODELS:
        rates = {"plain_train": [], "real_train": [], "plain_predict": [], "real_predict": []}
        for _ in range(args.rounds):  # interleaved: a drift of the machine hits both sides alike
            rates["plain_train"].append(plain_train_rate(name, codes[:1152], train_set.targets[:1152]))
            rates["real_train"].append(real_train_rate(name, out / f"throughput_{name}", args.precision))
            plain_predict_rate(name, infer_codes[:256])  # warm-up: steady state on both sides
            rate, plain_values = plain_predict_rate(name, infer_codes)
            rates["plain_predict"].append(rate)
            torch.manual_seed(0)  # the same weights as the plain loop's model, in promoterlab's layers
            model = build_model(model_config(name), Objective("kl").n_outputs).eval()
            model.load_state_dict(plain_model(name, Objective("kl")).state_dict())
            real = "32" if args.precision == "32" else "auto"
            predict(model, infer_codes[:256], precision=real)
            start = time.perf_counter()
            predict(model, infer_codes, precision=real)
            rates["real_predict"].append(len(infer_codes) / (time.perf_counter() - start))
        fp32 = predict(model, infer_codes, precision="32")
        bf16 = predict(model, infer_codes, precision="bf16")
        row = {k: statistics.median(v) for k, v in rates.items()}
        # Each round's ratio compares two rates measured minutes apart, so a drift of the machine
        # cancels within it; the median ratio over rounds is the figure to quote.
        train_ratios = [r / p for r, p in zip(rates["real_train"], rates["plain_train"])]
        predict_ratios = [r / p for r, p in zip(rates["real_predict"], rates["plain_predict"])]
        row.update(train_ratio=statistics.median(train_ratios), predict_ratio=statistics.median(predict_ratios),
                   train_ratio_rounds=train_ratios, predict_ratio_rounds=predict_ratios,
                   fold_max_abs_diff_fp32=float(np.abs(fp32 - plain_values).max()),
                   bf16_max_abs_diff=float(np.abs(bf16 - fp32).max()), rounds=rates)
        rows[name] = row
        print(f"{name}: train {row['plain_train']:.0f} -> {row['real_train']:.0f} seq/s "
              f"({row['train_ratio']:.2f}x); predict {row['plain_predict']:.0f} -> {row['real_predict']:.0f} "
              f"seq/s ({row['predict_ratio']:.2f}x); bf16 max |diff| {row['bf16_max_abs_diff']:.4f}", flush=True)
    return rows


class Clock(Callback):
    """Seconds since ``start`` and validation Pearson at the end of every epoch (after its
    validation); asks the trainer to stop once ``target`` is reached; resident memory."""

    def __init__(self, start: float, target: float | None = None):
        self.start, self.target, self.points, self.rss = start, target, [], []

    def on_train_epoch_end(self, trainer, module):
        # Callbacks run before the module's own hook, which clears this epoch's validation figures.
        value = float(module._last_val.get("val_pearson", float("nan")))
        self.points.append((round(time.perf_counter() - self.start, 1), round(value, 4)))
        self.rss.append(resident_mb())
        if self.target is not None and value >= self.target:
            trainer.should_stop = True


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def accuracy(args, out: Path) -> dict:
    rows = {}
    for seed in args.seeds:
        for label, reference, precision in (("old: fp32, reference layers", True, "32"), ("new: defaults", False, "auto")):
            with reference_layers() if reference else contextlib.nullcontext():
                config = dream_config("legnet-s", 5120, 2048, seed=seed, epochs=4, batch_size=128, precision=precision)
                summary = api.train(config, out / f"accuracy_{'old' if reference else 'new'}_seed{seed}",
                                    overwrite=True, resume=False)
            rows[f"{label}, seed {seed}"] = {k: summary[k] for k in ("best_val_pearson", "best_epoch",
                                                                      "train_seconds", "precision")}
            print(label, seed, rows[f"{label}, seed {seed}"], flush=True)
    return rows


def time_to_accuracy(args, out: Path) -> dict:
    """With the default 20-epoch schedule (stopped at 0.60) and with a 2-minute budget."""
    rows = {}
    for label, train_opts, target in (("defaults", {}, 0.60), ("--max-time 2", {"max_time": 2.0}, None)):
        start = time.perf_counter()
        clock = Clock(start, target=target)
        summary = api.train(dream_config("legnet-s", 5120, 2048, **train_opts), out / f"tta_{len(rows)}",
                            overwrite=True, resume=False, callbacks=[clock])
        reached = next((t for t, r in clock.points if r >= 0.60), None)
        rows[label] = {"seconds_to_0.60": reached, "curve": clock.points, "batch_size": summary["batch_size"],
                       "precision": summary["precision"], "best_val_pearson": summary["best_val_pearson"],
                       "wall_seconds": round(time.perf_counter() - start, 1)}
        print(f"time to val Pearson 0.60 ({label}):", rows[label], flush=True)
    return rows


def max_time(args, out: Path) -> dict:
    start = time.perf_counter()
    clock = Clock(start)
    run = out / "max_time_5"
    summary = api.train(dream_config("legnet-s", 5120, 2048, max_time=5.0), run, overwrite=True, resume=False, callbacks=[clock])
    wall = time.perf_counter() - start
    test = api.evaluate(run, TEST_FILE)
    row = {"best_val_pearson_flag0": summary["best_val_pearson"], "test_pearson": test["pearson"],
           "test_spearman": test["spearman"], "wall_seconds": round(wall, 1), "budget": summary["budget"],
           "batch_size": summary["batch_size"], "precision": summary["precision"], "curve": clock.points}
    print("--max-time 5:", row, flush=True)
    return row


def memory(args, out: Path) -> dict:
    clock = Clock(time.perf_counter())
    # The DREAM slice has 7,369 rows, so 10,240 training sequences come from de Boer's native pool.
    native = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "deboer2020_native" / "pool.tsv.gz"
    config = RunConfig(
        data=DataConfig(path=str(native), seq_col="seq", target_col="el_combined", group_col="group",
                        drop_missing=True, train_size=10240, val_size=2048, left_adapter="AACTGCATTTTTTTCACATC",
                        clip_targets=[0, 17]),
        model=model_config("legnet-s"), train=TrainConfig(epochs=args.memory_epochs, ensemble=1), seed=0)
    api.train(config, out / "memory", overwrite=True, resume=False, callbacks=[clock])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"peak_rss_mb": round(peak, 1), "rss_after_epoch_mb": [round(r, 1) for r in clock.rss],
           "epochs": args.memory_epochs}
    print("memory:", row, flush=True)
    return row


def precision(args, out: Path) -> dict:
    """bf16 against fp32 inference of the trained ``--max-time 5`` model on the 9,045 measured
    public-leaderboard sequences: largest and mean |difference|, Pearson of each, and speed."""
    from promoterlab.data.dataset import encode_frame
    from promoterlab.data.readers import read_table
    from promoterlab.evaluation.metrics import pearson

    model, config = api.load_run(out / "max_time_5")
    measured = encode_frame(read_table(TEST_FILE, drop_missing=True), config.data.layout, False, TEST_FILE)
    values, rates = {}, {}
    for name in ("32", "bf16"):
        predict(model, measured.codes[:256], precision=name)
        start = time.perf_counter()
        values[name] = predict(model, measured.codes, precision=name)
        rates[name] = round(len(measured) / (time.perf_counter() - start), 1)
    diff = np.abs(values["bf16"] - values["32"])
    row = {"n": len(measured), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
           "test_pearson": {k: pearson(v, measured.targets.numpy()) for k, v in values.items()},
           "seq_per_s": rates}
    print("bf16 vs fp32 inference:", row, flush=True)
    return row


def kernels(args, out: Path) -> dict:
    """What autotune measures fastest here for each model, training and inference (afresh)."""
    from promoterlab.cli.doctor import doctor_report

    precisions = ["32"] if args.precision == "32" else ["auto", "32"]
    saved = os.environ.get(KERNELS_ENV)
    os.environ[KERNELS_ENV] = "auto"
    try:
        report = doctor_report(list(MODELS), ["train", "predict"], precisions, None, retune=True)
    finally:
        if saved is None:
            os.environ.pop(KERNELS_ENV, None)
        else:
            os.environ[KERNELS_ENV] = saved
    for row in report["choices"]:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in sorted(row["rates"].items(), key=lambda kv: -kv[1]))
        print(f"{row['model']} {row['purpose']} {row['precision']}: {row['label']} ({rates} seq/s)", flush=True)
    return report


def laptop(args, out: Path) -> dict:
    """``throughput`` and ``kernels`` natively and under the AVX2 fp32 emulation, in subprocesses,
    rounds interleaved; the ratios of each round and their medians."""
    runs: dict[str, list[dict]] = {"native": [], "avx2_fp32": []}
    for round_ in range(args.rounds):
        for label, env, extra in (("native", {}, []), ("avx2_fp32", LAPTOP_ENV, ["--precision", "32"])):
            folder = out / f"laptop_{label}_{round_}"
            command = [sys.executable, str(Path(__file__).resolve()), "--parts", "throughput", "kernels",
                       "--rounds", "1", "--out", str(folder), *extra]
            print(f"round {round_ + 1}, {label}: {' '.join(command[2:])}", flush=True)
            subprocess.run(command, env={**os.environ, **env}, check=True)
            runs[label].append(json.loads((folder / "speed.json").read_text()))
    rows = {}
    for label, results in runs.items():
        signature = results[0]["machine_signature"]
        row = {"capability": signature["capability"], "isa": signature["isa"], "env": signature["env"]}
        for name in MODELS:
            for key in ("train_ratio", "predict_ratio", "plain_train", "real_train", "plain_predict", "real_predict"):
                row[f"{name}_{key}"] = statistics.median(r["throughput"][name][key] for r in results)
        row["kernels"] = {f"{c['model']} {c['purpose']} {c['precision']}": c["label"]
                          for c in results[-1]["kernels"]["choices"]}
        rows[label] = row
        print(f"{label} ({row['capability']}; {' '.join(row['isa'])}):", flush=True)
        for name in MODELS:
            print(f"  {name}: train {row[f'{name}_train_ratio']:.2f}x, predict {row[f'{name}_predict_ratio']:.2f}x "
                  f"the plain eager fp32 loop", flush=True)
    return rows


def compile_part(args, out: Path) -> dict:
    """``torch.compile`` (inductor) of the real path's training step, per model, in the real
    path's precision and default kernels: compile seconds with an empty compile cache (what a
    first run pays) and with a warm one (a later run, same shapes), the step time eager and
    compiled (interleaved, median of 6), and the steps after which a cold compile pays back."""
    from promoterlab.models.kernels import default_kernels

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_")  # cold, as on first use
    precision = resolve_precision(args.precision)
    objective = Objective("kl")
    generator = torch.Generator().manual_seed(0)
    x = model_input(torch.randint(0, 4, (128, 150), generator=generator, dtype=torch.uint8), False)
    y = torch.rand(128, generator=generator) * 17
    rows = {}
    for name in MODELS:
        models = {}
        for label in ("eager", "compiled", "warm"):
            torch.manual_seed(0)
            model = apply_kernels(build_model(model_config(name), objective.n_outputs).train(),
                                  default_kernels(precision))
            models[label] = (model, torch.optim.AdamW(model.parameters(), lr=1e-6))

        def step(label: str) -> float:
            model, optimizer = models[label]
            begin = time.perf_counter()
            with autocast(precision):
                out_ = model(x)
            optimizer.zero_grad(set_to_none=True)
            objective.loss_value(out_, y).backward()
            optimizer.step()
            return time.perf_counter() - begin

        step("eager")
        compile_seconds = {}
        for label in ("compiled", "warm"):  # the second compiles the same graph again: a warm cache
            start = time.perf_counter()
            models[label][0].compile()
            step(label)
            compile_seconds[label] = time.perf_counter() - start
        times = {"eager": [], "compiled": []}
        for _ in range(6):
            for label in times:
                times[label].append(step(label))
        eager, compiled = (statistics.median(times[k]) for k in ("eager", "compiled"))
        row = {"precision": precision, "compile_seconds_cold": round(compile_seconds["compiled"], 1),
               "compile_seconds_warm": round(compile_seconds["warm"], 1), "eager_seq_s": 128 / eager,
               "compiled_seq_s": 128 / compiled, "speedup": eager / compiled,
               "payback_steps_cold": math.ceil(compile_seconds["compiled"] / (eager - compiled))
               if eager > compiled else None}
        rows[name] = row
        print(f"torch.compile, {name} training step ({precision}):", row, flush=True)
    return rows


def plain_flops(name: str) -> tuple[float, float]:
    """Floating-point operations per sequence of the plain network: a training step (forward and
    backward: 3 forward passes, the input and weight gradients each costing one; torch's counter
    is not used for the backward, as it counts a grouped convolution's ``groups + 1`` times its
    forward) and an RC-averaged prediction (two forward passes)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = plain_model(name, Objective("kl")).eval()
    x = model_input(torch.randint(0, 4, (32, 150), dtype=torch.uint8), False)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    forward = counter.get_total_flops() / len(x)
    return 3 * forward, 2 * forward


def conv_rate(c_in: int, c_out: int, kernel: int, backward: bool, batch: int = 128, rounds: int = 5,
              precision: str = "32") -> float:
    """GFLOP/s of one dense ``nn.Conv1d`` on ``(batch, c_in, 150)`` in ``precision`` (``32`` or
    ``bf16`` autocast): the best a convolution kernel of this CPU (and ISA restriction) does,
    median of ``rounds`` after a warm-up."""
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv1d(c_in, c_out, kernel, padding="same", bias=False)
    x = torch.randn(batch, c_in, 150, requires_grad=backward)

    def once() -> None:
        with autocast(precision):
            out = conv(x)
        if backward:
            out.sum().backward()

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        conv(x)
    flops = counter.get_total_flops() * (3 if backward else 1)
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times[1:]) / 1e9


def ceiling(args, out: Path) -> dict:
    """How far above the plain fp32 loop any formulation of the same arithmetic can go here: the
    plain loop's GFLOP/s (its FLOPs per sequence times its measured rate) against the fastest dense
    convolution this CPU runs (LegNet's dominant layer, a k=7 mixing convolution, and a wide one),
    forward and backward, and against the FMA peak of its vector width (cores x clock x FLOPs per
    cycle). The ratio is the largest speed-up over the plain loop that computing the same
    arithmetic faster could give."""
    train_set, _, *_ = load_split(dream_config("legnet", 2048, 256).data, 0)
    codes, targets = train_set.codes, train_set.targets
    mhz = max((float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")), default=float("nan"))
    wide = "avx512f" in machine_signature()["isa"] and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() != "AVX2"
    peak = torch.get_num_threads() * mhz / 1e3 * (64 if wide else 32)  # 2 FMA units x lanes x 2 FLOPs
    rows = {"cpu_mhz": mhz, "vector": "avx512" if wide else "avx2", "fma_peak_gflops": round(peak, 1)}
    real = resolve_precision(args.precision)  # what the real path computes in: bf16 has its own ceiling
    rows["precision"] = real
    for purpose, backward in (("train", True), ("predict", False)):
        rows[f"conv_gflops_{purpose}"] = round(max(conv_rate(256, 128, 7, backward, precision=real),
                                                   conv_rate(512, 512, 7, backward, precision=real)), 1)
    for name in MODELS:
        train_flops, predict_flops = plain_flops(name)
        plain_train = plain_train_rate(name, codes[:1024], targets[:1024])
        plain_predict_rate(name, codes[:256])  # warm-up
        plain_predict, _ = plain_predict_rate(name, codes)
        for purpose, flops, rate in (("train", train_flops, plain_train), ("predict", predict_flops, plain_predict)):
            achieved = flops * rate / 1e9
            rows[f"{name}_{purpose}"] = {
                "gflop_per_seq": round(flops / 1e9, 3), "plain_seq_s": round(rate, 1),
                "plain_gflops": round(achieved, 1),
                "ceiling_vs_plain_conv": round(rows[f"conv_gflops_{purpose}"] / achieved, 2),
                "ceiling_vs_plain_peak": round(peak / achieved, 2)}
            print(f"{name} {purpose}: {flops / 1e9:.3f} GFLOP/seq, plain {rate:.0f} seq/s = {achieved:.0f} GFLOP/s; "
                  f"fastest dense {real} convolution {rows[f'conv_gflops_{purpose}']:.0f} GFLOP/s "
                  f"({rows[f'conv_gflops_{purpose}'] / achieved:.2f}x), {rows['vector']} fp32 FMA peak {peak:.0f} GFLOP/s "
                  f"({peak / achieved:.2f}x)", flush=True)
    return rows


PARTS = {"memory": memory, "throughput": throughput, "accuracy": accuracy, "time_to_accuracy": time_to_accuracy,
         "max_time": max_time, "precision": precision, "kernels": kernels, "laptop": laptop,
         "compile": compile_part, "ceiling": ceiling}
DEFAULT_PARTS = [part for part in PARTS if part not in ("compile", "ceiling")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="speed_")))
    parser.add_argument("--parts", nargs="+", default=DEFAULT_PARTS, choices=list(PARTS))
    parser.add_argument("--precision", choices=["auto", "32"], default="auto",
                        help="Precision of the real path in throughput (32: as a CPU without native bf16).")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds of the throughput part.")
    parser.add_argument("--memory-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Seeds of the accuracy part.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "speed.json"  # parts run separately add to the same file
    results = json.loads(saved.read_text()) if saved.exists() else {}
    results.update(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                           f"torch {torch.__version__}, {torch.get_num_threads()} threads",
                   machine_signature=machine_signature(), date=time.strftime("%Y-%m-%d %H:%M"))
    signature = results["machine_signature"]
    print(f"cpu: {signature['cpu']}; torch runs {signature['capability']} kernels; flags: {' '.join(signature['isa'])}"
          f"{'; ' + str(signature['env']) if signature['env'] else ''}", flush=True)
    for part in args.parts:  # memory first: its peak is this process's peak so far
        found = PARTS[part](args, args.out)
        results[part] = {**results[part], **found} if part == "accuracy" and part in results else found
        saved.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "throughput"}, indent=2, default=str))


if __name__ == "__main__":
    main()
