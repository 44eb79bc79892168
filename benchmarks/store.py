"""The encoded sequence store (``promoterlab data encode``) on synthetic DREAM-format files.

For each ``--sizes`` value the script writes a DREAM training file (``seq<TAB>expr``, no
header: the 17 bp left adapter + a random insert of 70..118 bp, mostly 80, + the 13 bp right
adapter; ~58 % integer targets, the rest with 15 significant digits, as in the real file) and
encodes it in a fresh process, which reports:

- ``encode_s``: wall seconds of :func:`~promoterlab.data.store_build.build_store` (source
  SHA-256, chunked parse and validation, layout, writing, checksums) and ``s_per_million``;
- ``parse_s``: the same file through :func:`~promoterlab.data.readers.iter_table` alone (the
  reader ``train`` uses), to show where the time goes;
- ``bytes_per_seq``: the store's size on disk over its rows;
- ``peak_rss_mb``: the encoding process's peak resident memory (``VmHWM``), and
  ``baseline_rss_mb``, its peak after the imports, before encoding.

Then, on the largest store: ``verify_s`` (reopen with every CRC-32 checked, as ``store_for``
does on reuse) and ``source_sha256_s``; the random-batch read rate of
:class:`~promoterlab.data.store_batches.StoreSet` through ``TrainBatches`` (batches of
``--batch-size`` random indices over the RC-doubled set, one-hot model input built) against
the same batches from the in-memory ``EncodedSet``, and of the bare codes (medians of
interleaved rounds). The store was just written, so reads come from the page cache.

Run it alone on an idle machine: ``python benchmarks/store.py --out bench_out/store``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from promoterlab.data.layout import LEFT_ADAPTER, RIGHT_ADAPTER


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


def encode_child(source: Path, store: Path, chunk_rows: int) -> dict:
    """Runs in a fresh process: build the store and report time and memory."""
    from promoterlab.data.readers import iter_table
    from promoterlab.data.store_build import build_store

    baseline = rss_mb()
    start = time.perf_counter()
    built = build_store(source, store, chunk_rows=chunk_rows)
    encode_s = time.perf_counter() - start
    peak = rss_mb()
    start = time.perf_counter()
    for _ in iter_table(source, chunk_rows=chunk_rows):
        pass
    parse_s = time.perf_counter() - start
    size = sum(p.stat().st_size for p in store.iterdir())
    return {"rows": len(built), "file_mb": round(source.stat().st_size / 1e6, 1), "encode_s": round(encode_s, 2),
            "s_per_million": round(encode_s / len(built) * 1e6, 2), "parse_s": round(parse_s, 2),
            "store_mb": round(size / 1e6, 1), "bytes_per_seq": round(size / len(built), 2),
            "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak, 1)}


def read_rates(store_path: Path, source: Path, batch_size: int, batches: int, rounds_n: int = 3) -> dict:
    """Random-batch read rates from the store against the in-memory set, and the reuse checks."""
    import torch

    from promoterlab.data.dataset import EncodedSet, TrainBatches
    from promoterlab.data.store import file_sha256, open_store

    start = time.perf_counter()
    store = open_store(store_path, verify=True)
    verify_s = time.perf_counter() - start
    start = time.perf_counter()
    file_sha256(source)
    sha_s = time.perf_counter() - start
    lazy = store.subset()
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
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(encode_child(*args.child, args.chunk_rows)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.workdir or args.out
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.machine()} {platform.processor()}, python {platform.python_version()}",
               "encode": []}
    for n in sorted(args.sizes):
        source = write_dream_file(work / f"dream_{n}.txt", n)
        store = work / f"dream_{n}.store"
        child = subprocess.run([sys.executable, __file__, "--chunk-rows", str(args.chunk_rows), "--child",
                                str(source), str(store)], check=True, capture_output=True, text=True)
        row = json.loads(child.stdout.strip().splitlines()[-1])
        results["encode"].append(row)
        print(json.dumps(row))
    largest = max(args.sizes)
    results["read"] = read_rates(work / f"dream_{largest}.store", work / f"dream_{largest}.txt",
                                 args.batch_size, args.batches)
    print(json.dumps(results["read"]))
    (args.out / "store.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'store.json'}")


if __name__ == "__main__":
    main()
