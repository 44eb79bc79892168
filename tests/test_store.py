"""The encoded sequence store: same codes and batches as the in-memory path, damage detected."""

from __future__ import annotations

import gzip
import json
import pickle
import threading

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import promoterlab.data.store_build as store_build
from promoterlab.cli import app
from promoterlab.config import DataConfig
from promoterlab.data.dataset import EvalBatches, TrainBatches, encode_sequences, load_split
from promoterlab.data.readers import DataError
from promoterlab.data.store import HEADER, ReadOptions, StoreError, open_store, split_store
from promoterlab.data.store_batches import StoreSet, load_store_split
from promoterlab.data.store_build import build_store, default_cache_root, store_for
from promoterlab.sequence import LEFT_ADAPTER, Layout

DE_BOER_ADAPTER = "AACTGCATTTTTTTCACATC"


def random_table(path, n: int, seed: int = 0, groups: bool = False):
    """A DREAM-like table: adapters on most rows, varied lengths, some N and lower case, ~half
    integer targets; with ``groups`` a TSV with a header and a group column."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        insert = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=rng.integers(20, 125)))
        seq = (LEFT_ADAPTER if i % 4 else "") + insert
        seq = seq.lower() if i % 7 == 0 else seq
        value = float(rng.integers(0, 18)) if i % 2 else round(float(rng.uniform(0, 17)), 4)
        rows.append((seq, value, f"{rng.integers(0, n // 5)}"))
    if groups:
        text = "seq\texpr\tfamily\n" + "".join(f"{s}\t{v}\t{g}\n" for s, v, g in rows)
    else:
        text = "".join(f"{s}\t{v}\n" for s, v, _ in rows)
    path.write_text(text)
    return path


def test_encode_sequences_too_long_names_the_line():
    seqs = ["ACGT" * 10, LEFT_ADAPTER + "A" * 150, "C" * 151]
    with pytest.raises(DataError, match=r"f\.txt:12: sequence of 151 bp .* longer than the model length 150"):
        encode_sequences(seqs, Layout(), "f.txt", np.array([10, 11, 12]))
    with pytest.raises(DataError, match="sequence 3: sequence of 151 bp"):
        encode_sequences(seqs, Layout())


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return random_table(tmp_path_factory.mktemp("store") / "train.txt", 1200, seed=1)


def test_store_holds_the_table(table, tmp_path):
    store = build_store(table, tmp_path / "s", chunk_rows=97)  # many chunks, one of them short
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    assert len(store) == len(rows) == store.header["rows"]
    np.testing.assert_array_equal(store.codes, encode_sequences([r[0] for r in rows], Layout()).numpy())
    targets = np.array([float(r[1]) for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(store.targets, targets)
    np.testing.assert_array_equal(store.singleton, targets == np.round(targets))
    np.testing.assert_array_equal(store.lines, np.arange(1, len(rows) + 1))
    assert store.groups is None and store.codes.dtype == np.uint8 and isinstance(store.codes, np.memmap)
    seqs = [r[0].upper() for r in rows]
    np.testing.assert_array_equal(store.adapter, [s.startswith(LEFT_ADAPTER) for s in seqs])
    np.testing.assert_array_equal(store.inserts, [Layout().insert_length(s) for s in seqs])
    # bytes per sequence: 150 codes + 4 target + 1 flags byte + 4 line + 1 insert length
    size = sum(p.stat().st_size for p in store.path.iterdir() if p.name != HEADER)
    assert size == 160 * len(store)
    rows = np.array([3, 0, 3])
    np.testing.assert_array_equal(store.singleton[rows], targets[rows] == np.round(targets[rows]))
    assert store.header["arrays"]["inserts"]["dtype"] == "uint8"
    assert store.header["source"]["bytes"] == table.stat().st_size
    one_chunk = build_store(table, tmp_path / "one", chunk_rows=10_000)
    assert one_chunk.header["arrays"] == store.header["arrays"]  # the same bytes (CRC-32s)


def test_windows_longer_than_255_store_two_byte_insert_lengths(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("".join(f"{'ACGT' * 70}\t{i}\n" for i in range(4)) + f"{'A' * 20}\t1.5\n")
    store = build_store(path, tmp_path / "s", Layout(seq_len=300))
    spec = store.header["arrays"]["inserts"]
    assert (spec["file"], spec["dtype"]) == ("inserts.u16", "uint16")
    np.testing.assert_array_equal(store.inserts, [280] * 4 + [20])
    np.testing.assert_array_equal(store.singleton, [True] * 4 + [False])


@pytest.mark.parametrize("singleton_channel,clip", [(True, None), (False, (2.0, 15.0))])
def test_store_batches_equal_in_memory_batches(table, tmp_path, singleton_channel, clip):
    cfg = DataConfig(path=str(table), train_size=600, val_size=300, singleton_channel=singleton_channel,
                     clip_targets=list(clip) if clip else None)
    train_mem, val_mem, test_mem, rows, _ = load_split(cfg, seed=5)  # a small table: in memory
    assert isinstance(train_mem.codes, torch.Tensor)
    train_store, val_store, test_store, store_rows, _ = load_store_split(cfg, seed=5, cache_root=tmp_path)
    assert isinstance(train_store, StoreSet)
    assert (len(train_store), len(val_store), len(test_store)) == (600, 300, 240)  # auto test split: a fifth of the 1,200 rows
    assert all((a == b).all() for a, b in zip(rows, store_rows))
    assert torch.equal(test_store.codes, test_mem.codes) and torch.equal(test_store.targets, test_mem.targets)
    assert not test_store.singleton.any() and not test_mem.singleton.any()  # as at prediction
    rng = np.random.default_rng(0)
    for _ in range(3):  # random batches over the RC-doubled index space, as the shuffled sampler draws
        batch = rng.choice(1200, size=64, replace=False).tolist()
        for a, b in zip(TrainBatches(train_mem)[batch], TrainBatches(train_store)[batch]):
            assert torch.equal(a, b)
    batch = list(range(40, 104))
    mem = EvalBatches(val_mem.codes, val_mem.targets, val_mem.singleton)[batch]
    lazy = EvalBatches(val_store.codes, val_store.targets, val_store.singleton)[batch]
    assert all(torch.equal(a, b) for a, b in zip(mem, lazy))
    assert torch.equal(val_store.codes, val_mem.codes) and torch.equal(val_store.singleton, val_mem.singleton)
    assert torch.equal(val_store.targets, val_mem.targets)  # not clipped
    assert torch.equal(train_store.targets, train_mem.targets)  # clipped
    sub = train_store.subset(np.array([5, 1, 5]))
    assert torch.equal(sub.codes[[0, 1, 2]], train_mem.codes[[5, 1, 5]])


def test_group_split_equals_the_table_split(tmp_path):
    path = random_table(tmp_path / "pool.tsv", 600, seed=2, groups=True)  # labels "0".."119": "10" < "2"
    cfg = DataConfig(path=str(path), group_col="family", train_size=300, val_size=150, test_size=100)
    train_mem, val_mem, *_ = load_split(cfg, seed=3)
    train_store, val_store, *_ = load_store_split(cfg, seed=3, cache_root=tmp_path / "cache")
    assert torch.equal(train_store.load().codes, train_mem.codes)
    assert torch.equal(val_store.targets, val_mem.targets)
    store = train_store.codes.store
    labels = np.asarray(store.group_labels)[np.asarray(store.groups)]
    train_idx, val_idx, _ = split_store(store, 300, 150, seed=3)
    assert not set(labels[train_idx]) & set(labels[val_idx])
    assert store.group_labels == sorted(store.group_labels)
    np.testing.assert_array_equal(store.lines, np.arange(2, 602))  # after the header line
    labels_file = store.path / "group_labels.json"
    labels_file.write_text(labels_file.read_text().replace('"1"', '"one"'))
    with pytest.raises(StoreError, match=r"group_labels\.json does not match its checksum"):
        open_store(store.path)


def test_pickled_store_set_maps_the_files_again(table, tmp_path):
    store = build_store(table, tmp_path / "s")
    subset = StoreSet.of(store, np.arange(100, 200))
    data = pickle.dumps(subset)
    assert len(data) < 10_000  # the path and the row index, not the arrays
    again = pickle.loads(data)
    assert torch.equal(again.codes[[0, 99]], torch.from_numpy(store.codes[[100, 199]]))


def test_gzip_source_and_blank_lines(tmp_path):
    seq = LEFT_ADAPTER + "ACGT" * 20
    text = f"{seq}\t1\n\n{seq[:-1]}\t2.5\n   \n{seq}\t3\n"
    gz = tmp_path / "t.txt.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(text)
    store = build_store(gz, tmp_path / "s")
    np.testing.assert_array_equal(store.lines, [1, 3, 5])
    np.testing.assert_array_equal(store.targets, [1, 2.5, 3])


def test_bad_row_names_its_line_and_leaves_nothing(tmp_path, table):
    bad = tmp_path / "bad.txt"
    lines = table.read_text().splitlines()
    lines[1000] = lines[1000].split("\t")[0] + "X\t3"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad\.txt:1001: sequence has character 'X'"):
        build_store(bad, tmp_path / "s", chunk_rows=100)
    assert list(tmp_path.iterdir()) == [bad]  # no store, no temporary folder
    good = build_store(table, tmp_path / "s")
    with pytest.raises(DataError, match="1001"):
        build_store(bad, tmp_path / "s", chunk_rows=100)
    assert open_store(tmp_path / "s").header == good.header  # a failed rebuild keeps the store


def test_damaged_stores_are_refused(table, tmp_path):
    build_store(table, tmp_path / "s")
    codes = tmp_path / "s" / "codes.u8"
    data = bytearray(codes.read_bytes())
    codes.write_bytes(data[:-150])
    with pytest.raises(StoreError, match=r"codes\.u8 has 179,850 bytes, the header says 180,000 .*truncated"):
        open_store(tmp_path / "s")
    data[1234] = (data[1234] + 1) % 5
    codes.write_bytes(data)
    open_store(tmp_path / "s", verify=False)  # the sizes are right
    with pytest.raises(StoreError, match=r"codes\.u8 does not match its checksum \(corrupted\)"):
        open_store(tmp_path / "s")
    (tmp_path / "s" / HEADER).write_text('{"format": "promoterlab-sequence-store", "vers')
    with pytest.raises(StoreError, match="damaged header.json"):
        open_store(tmp_path / "s")
    (tmp_path / "s" / HEADER).unlink()
    with pytest.raises(StoreError, match="not a sequence store, or its encoding did not finish"):
        open_store(tmp_path / "s")
    with pytest.raises(StoreError, match="exists and is not a sequence store"):
        build_store(table, tmp_path / "s")


def test_changed_source_is_refused_or_rebuilt(tmp_path):
    source = random_table(tmp_path / "data.txt", 300, seed=4)
    build_store(source, tmp_path / "explicit")
    cache = tmp_path / "cache"
    first = store_for(source, cache_root=cache)
    assert store_for(source, cache_root=cache).path == first.path  # reused
    random_table(source, 310, seed=5)
    with pytest.raises(StoreError, match=r"data\.txt changed since the store was built from it"):
        open_store(tmp_path / "explicit", source=source)
    second = store_for(source, cache_root=cache)
    assert second.path != first.path and len(second) == 310
    assert not first.path.exists()  # the store of the old contents is removed
    (second.path / "targets.f32").write_bytes(b"\0" * 8)  # truncated: rebuilt, not used
    third = store_for(source, cache_root=cache)
    assert third.path == second.path and len(third) == 310
    np.testing.assert_array_equal(third.targets[:3], np.loadtxt(source, usecols=1, dtype=str)[:3].astype(np.float32))


def test_concurrent_store_for_builds_once(table, tmp_path, monkeypatch):
    builds = []
    real_build = store_build.build_store

    def counting_build(*args, **kwargs):
        builds.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(store_build, "build_store", counting_build)
    stores = []
    threads = [threading.Thread(target=lambda: stores.append(store_for(table, cache_root=tmp_path)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len({store.path for store in stores}) == 1 and len(stores) == 3


def test_cache_root_for_read_only_data(tmp_path, monkeypatch):
    monkeypatch.delenv(store_build.STORE_DIR_ENV, raising=False)
    source = tmp_path / "data" / "t.txt"
    source.parent.mkdir()
    source.write_text("ACGT\t1\n")
    assert default_cache_root(source) == source.parent / ".promoterlab-stores"
    monkeypatch.setattr(store_build.os, "access", lambda *args: False)  # as for a read-only copy
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root(source) == tmp_path / "xdg" / "promoterlab" / "stores"
    monkeypatch.setenv(store_build.STORE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_root(source) == tmp_path / "mine"


def test_cli_encode(table, tmp_path):
    runner = CliRunner()
    out = tmp_path / "store"
    result = runner.invoke(app, ["data", "encode", str(table), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "encoded 1,200 sequences" in result.output and "160 B/sequence" in result.output
    header = json.loads((out / HEADER).read_text())
    assert header["rows"] == 1200 and header["layout"]["left_adapter"] == LEFT_ADAPTER
    result = runner.invoke(app, ["data", "encode", str(table), "-o", str(out)])
    assert result.exit_code == 0 and "up to date" in result.output
    result = runner.invoke(app, ["data", "encode", str(table), "-o", str(out), "--left-adapter", DE_BOER_ADAPTER,
                                 "--seq-len", "160"])
    assert result.exit_code == 0 and "encoded" in result.output
    assert open_store(out).codes.shape == (1200, 160) and open_store(out).read == ReadOptions()
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\t1\nACGT\tnope\n")
    result = runner.invoke(app, ["data", "encode", str(bad), "-o", str(tmp_path / "s2")])
    assert result.exit_code == 2 and "bad.txt:2: target 'nope' is not a number" in result.output
    assert not (tmp_path / "s2").exists()
    result = runner.invoke(app, ["data", "encode", str(table), "-o", str(bad)])
    assert result.exit_code == 2 and "--output" in result.output and "exists and is not a directory" in result.output
