"""The encoded sequence store (``promoterlab data encode``) on synthetic DREAM-format files.

For each ``--sizes`` value the script writes a DREAM training file (``seq<TAB>expr``, no
header: the 17 bp left adapter + a random insert of 70..118 bp, mostly 80, + the 13 bp right
adapter; ~58 % integer targets, the rest with 15 significant digits, as in the real file) and
encodes it in a fresh process per builder and round, the builders interleaved (``new``, ``old``,
``new``, ...) so that a drifting machine speed hits both alike:

- ``new``: :func:`~promoterlab.data.store_build.build_store` as shipped (pyarrow's streaming
  CSV reader, ``reader="auto"``); ``old``: the same with ``reader="pandas"``, every chunk through
  :func:`~promoterlab.data.readers.iter_table`, the builder before pyarrow. Both write the same
  bytes (checked here by the CRC-32s in the headers).

Each encoding process reports:

- ``encode_s``: wall seconds of ``build_store`` (source SHA-256, chunked parse and validation,
  layout, writing, checksums) and ``s_per_million``; ``cpu_s_per_million``, the CPU seconds of
  the process (all its threads), which a busy machine inflates less than the wall time;
- ``parse_s``: the same file through the builder's reader alone
  (:func:`~promoterlab.data.table_stream.iter_table_codes` or ``iter_table``);
- ``bytes_per_seq``: the store's size on disk over its rows;
- ``peak_rss_mb``: the encoding process's peak resident memory (``VmHWM``), and
  ``baseline_rss_mb``, its peak after the imports, before encoding;
- ``load``: the 1-minute load average before and after.

Then, on the largest store: ``verify_s`` (reopen with every CRC-32 checked, as ``store_for``
does on reuse) and ``source_sha256_s``; the random-batch read rate of
:class:`~promoterlab.data.store_batches.StoreSet` through ``TrainBatches`` (batches of
``--batch-size`` random indices over the RC-doubled set, one-hot model input built) against
the same batches from the in-memory ``EncodedSet``, and of the bare codes (medians of
interleaved rounds). The store was just written, so reads come from the page cache.

Run it alone on an idle machine: ``python benchmarks/store.py --out bench_out/store``
(``--builders new`` skips the slow reference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from promoterlab.sequence import LEFT_ADAPTER, RIGHT_ADAPTER

BUILDERS = {"new": "auto", "old": "pandas"}  # benchmark name -> build_store(reader=...)


def write_dream_file(path: Path, n: int, seed: int = 0, block: int = 200_000) -> Path:
    """``n`` synthetic DREAM training rows, written block by block."""
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "w") as handle:
        for start in range(0, n, block):
            rows = min(block, n - start)
            lengths = np.where(rng.random(rows) < 0.8, 80, rng.integers(70, 119, rows))
            inserts = bases[rng.integers(0, 4, size=(rows, 118))]
            values = rng.uniform(0, 17, rows)
            integer = rng.random(rows) < 0.58
            lines = [f"{LEFT_ADAPTER}{inserts[i, :lengths[i]].tobytes().decode()}{RIGHT_ADAPTER}\t"
                     f"{int(round(values[i])) if integer[i] else format(values[i], '.15g')}\n" for i in range(rows)]
            handle.write("".join(lines))
    return path


def rss_mb() -> float:
    """Peak resident memory of this process image in MB: ``VmHWM``, which (unlike ``ru_maxrss``)
    does not carry over the parent's peak through fork and exec."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode_child(source: Path, store: Path, chunk_rows: int, builder: str) -> dict:
    """Runs in a fresh process: build the store with ``builder`` and report time and memory."""
    from promoterlab.data.readers import iter_table
    from promoterlab.data.store_build import build_store
    from promoterlab.data.table_stream import iter_table_codes

    load_before = os.getloadavg()[0]
    baseline = rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    built = build_store(source, store, chunk_rows=chunk_rows, reader=BUILDERS[builder])
    encode_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    peak = rss_mb()
    start = time.perf_counter()
    for _ in iter_table_codes(source) if builder == "new" else iter_table(source, chunk_rows=chunk_rows):
        pass
    parse_s = time.perf_counter() - start
    size = sum(p.stat().st_size for p in store.iterdir())
    return {"builder": builder, "rows": len(built), "file_mb": round(source.stat().st_size / 1e6, 1),
            "encode_s": round(encode_s, 2), "s_per_million": round(encode_s / len(built) * 1e6, 2),
            "cpu_s_per_million": round(cpu_s / len(built) * 1e6, 2),
            "parse_s": round(parse_s, 2), "store_mb": round(size / 1e6, 1),
            "bytes_per_seq": round(size / len(built), 2), "baseline_rss_mb": round(baseline, 1),
            "peak_rss_mb": round(peak, 1), "load": [load_before, os.getloadavg()[0]],
            "crc32": {name: spec["crc32"] for name, spec in built.header["arrays"].items()}}


def summarize(runs: list[dict]) -> dict:
    """Per builder: the median seconds per million and the peak RSS of the runs of one size; and
    the speed-up of ``new`` over ``old``."""
    summary: dict = {"rows": runs[0]["rows"], "bytes_per_seq": runs[0]["bytes_per_seq"]}
    for builder in BUILDERS:
        mine = [run for run in runs if run["builder"] == builder]
        if mine:
            summary[builder] = {"s_per_million": round(float(np.median([r["s_per_million"] for r in mine])), 2),
                                "runs_s_per_million": [r["s_per_million"] for r in mine],
                                "cpu_s_per_million": round(float(np.median([r["cpu_s_per_million"]
                                                                            for r in mine])), 2),
                                "parse_s": round(float(np.median([r["parse_s"] for r in mine])), 2),
                                "peak_rss_mb": max(r["peak_rss_mb"] for r in mine)}
    if "new" in summary and "old" in summary:
        summary["old_over_new"] = round(summary["old"]["s_per_million"] / summary["new"]["s_per_million"], 2)
        summary["same_bytes"] = len({json.dumps(run["crc32"], sort_keys=True) for run in runs}) == 1
    return summary


def read_rates(store_path: Path, source: Path, batch_size: int, batches: int, rounds_n: int = 3) -> dict:
    """Random-batch read rates from the store against the in-memory set, and the reuse checks."""
    import torch

    from promoterlab.data.dataset import TrainBatches
    from promoterlab.data.encoded import EncodedSet
    from promoterlab.data.store import file_sha256, open_store
    from promoterlab.data.store_batches import StoreSet

    start = time.perf_counter()
    store = open_store(store_path, verify=True)
    verify_s = time.perf_counter() - start
    start = time.perf_counter()
    file_sha256(source)
    sha_s = time.perf_counter() - start
    lazy = StoreSet.of(store)
    memory = EncodedSet(torch.from_numpy(np.array(store.codes)), torch.from_numpy(np.array(store.targets)),
                        torch.from_numpy(np.array(store.singleton)))
    rng = np.random.default_rng(0)
    index = [rng.choice(2 * len(store), size=batch_size, replace=False).tolist() for _ in range(batches)]
    datasets = {"store_batches": TrainBatches(lazy), "memory_batches": TrainBatches(memory)}
    rounds: dict[str, list[float]] = {name: [] for name in [*datasets, "store_codes_only"]}
    for _ in range(rounds_n):  # interleaved, so that drifting machine speed hits both alike
        for name, dataset in datasets.items():
            dataset[index[0]]
            start = time.perf_counter()
            for batch in index:
                dataset[batch]
            rounds[name].append(batch_size * batches / (time.perf_counter() - start))
        start = time.perf_counter()
        for batch in index:
            lazy.codes[np.asarray(batch) % len(store)]
        rounds["store_codes_only"].append(batch_size * batches / (time.perf_counter() - start))
    rates = {name: round(float(np.median(values))) for name, values in rounds.items()}
    return {"verify_s": round(verify_s, 2), "store_gb": round(sum(p.stat().st_size for p in store_path.iterdir())
                                                              / 1e9, 3),
            "source_sha256_s": round(sha_s, 2), "batch_size": batch_size, "batches": batches,
            "rounds": rounds_n, "seq_per_s": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="store_bench_")))
    parser.add_argument("--workdir", type=Path, default=None, help="Where the files and stores go (default --out).")
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000, 2_000_000])
    parser.add_argument("--builders", nargs="+", choices=list(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--rounds", type=int, default=2, help="Encodings per builder and size, interleaved.")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        source, store, builder = args.child
        print(json.dumps(encode_child(Path(source), Path(store), args.chunk_rows, builder)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.workdir or args.out
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.machine()} {platform.processor()}, python {platform.python_version()}",
               "load_at_start": os.getloadavg(), "encode": [], "summary": []}
    for n in sorted(args.sizes):
        source = work / f"dream_{n}.txt"
        if not source.exists():  # the same rows every time (seed 0): kept for the next run
            write_dream_file(source.with_suffix(".part"), n).rename(source)
        runs = []
        for _ in range(args.rounds):
            for builder in args.builders:
                store = work / f"dream_{n}.{builder}.store"
                child = subprocess.run([sys.executable, __file__, "--chunk-rows", str(args.chunk_rows), "--child",
                                        str(source), str(store), builder], check=True, capture_output=True, text=True)
                runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]))
        results["encode"] += runs
        results["summary"].append(summarize(runs))
        print(json.dumps(results["summary"][-1]))
    largest = max(args.sizes)
    results["read"] = read_rates(work / f"dream_{largest}.{args.builders[0]}.store", work / f"dream_{largest}.txt",
                                 args.batch_size, args.batches)
    results["load_at_end"] = os.getloadavg()
    print(json.dumps(results["read"]))
    (args.out / "store.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'store.json'}")


if __name__ == "__main__":
    main()
