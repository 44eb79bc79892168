"""Issue 15: training reads through the sequence store with the same split, batches and EvoAug
windows as in memory; the store setting; damaged, stale and mismatched stores; streamed evaluation."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import promoterlab.api as api
import promoterlab.data.store_batches as store_batches
from conftest import tiny_config
from promoterlab import load_run, train
from promoterlab.cli import app
from promoterlab.config import DataConfig
from promoterlab.data.augment import parse_augment
from promoterlab.data.dataset import TrainBatches, batch_loader, load_split
from promoterlab.data.readers import DataError
from promoterlab.data.store import HEADER, StoreError
from promoterlab.data.store_batches import StoreSet, config_store
from promoterlab.data.store_build import STORE_DIR_ENV, build_store, store_for
from promoterlab.data.store_windows import store_common_suffix, store_windows
from promoterlab.sequence import LEFT_ADAPTER, PLASMID_UPSTREAM, RIGHT_ADAPTER, Layout, common_suffix, insert_windows

DE_BOER_ADAPTER = "AACTGCATTTTTTTCACATC"


def dream_table(path, n: int, seed: int = 0) -> list[str]:
    """A DREAM-like text file: left adapter on most rows, right adapter on all, varied insert
    lengths, N and lower case; about half of the targets integers. Returns the sequences."""
    rng = np.random.default_rng(seed)
    seqs, lines = [], []
    for i in range(n):
        insert = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=rng.integers(40, 100)))
        seq = (LEFT_ADAPTER if i % 5 else "") + insert + RIGHT_ADAPTER
        seq = seq.lower() if i % 9 == 0 else seq
        value = float(rng.integers(0, 18)) if i % 2 else round(float(rng.uniform(0, 17)), 4)
        seqs.append(seq)
        lines.append(f"{seq}\t{value}\n")
    path.write_text("".join(lines))
    return seqs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The store cache of this test (never next to shared data, never in the home folder)."""
    monkeypatch.setenv(STORE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _edge_sequences() -> list[str]:
    """Sequences whose windows are awkward: no insert, an insert shorter than the flank, a
    shared ending that reaches into the left adapter, no adapter, lower case, N."""
    return [LEFT_ADAPTER, LEFT_ADAPTER + "GTT", LEFT_ADAPTER + "ACGT", "TTCACATCACGT", "GGGTTTCACATCACGT",
            "acgtn" * 4 + RIGHT_ADAPTER.lower(), RIGHT_ADAPTER, "T", LEFT_ADAPTER + "A" * 128 + RIGHT_ADAPTER[-3:],
            DE_BOER_ADAPTER + "C" * 40 + RIGHT_ADAPTER, "ACGT"]


@pytest.mark.parametrize("layout", [Layout(), Layout(left_adapter=""), Layout(left_adapter=DE_BOER_ADAPTER),
                                    Layout(seq_len=160)])
def test_store_windows_equal_insert_windows(tmp_path, layout):
    path = tmp_path / "t.txt"
    seqs = _edge_sequences() + dream_table(path, 300, seed=1)
    path.write_text("".join(f"{s}\t1.5\n" for s in seqs))
    store = build_store(path, tmp_path / "s", layout)
    rng = np.random.default_rng(0)
    subsets = [np.arange(len(seqs)), rng.permutation(len(seqs))[:150], np.arange(10, len(seqs)),
               np.array([2, 3, 4]), np.array([1]), np.array([], dtype=np.int64)]
    for rows in subsets:
        chosen = [seqs[i] for i in rows]
        suffix = common_suffix(chosen)
        assert store_common_suffix(store, rows, block_rows=7) == suffix
        # the last two: what lies before a sequence shorter than them in its window ends like them
        for flank in {suffix, "", RIGHT_ADAPTER, "CACATCGTT", "N", PLASMID_UPSTREAM[-4:] + "ACGT",
                      "T" + LEFT_ADAPTER + "GTT"}:
            expected = insert_windows(chosen, layout, right_flank=flank)
            assert torch.equal(store_windows(store, rows, flank, block_rows=7), expected.reshape(-1, 2)), flank
    assert common_suffix([seqs[i] for i in (2, 3, 4)]) == "TTCACATCACGT"  # 8 bases into the adapter
    assert store_common_suffix(store, np.arange(len(_edge_sequences()), len(seqs))) == RIGHT_ADAPTER


def test_load_split_through_the_store_equals_in_memory(tmp_path, cache):
    path = tmp_path / "t.txt"
    dream_table(path, 700, seed=2)
    memory = DataConfig(path=str(path), train_size=400, val_size=150, test_size=50, clip_targets=[1.0, 16.0],
                        store="off")
    stored = dataclasses.replace(memory, store="on")
    train_mem, val_mem, *_ = load_split(memory, seed=4, windows=True)
    train_store, val_store, *_ = load_split(stored, seed=4, windows=True)
    assert isinstance(train_store, StoreSet) and isinstance(train_store.codes, store_batches.StoreColumn)
    assert train_store.codes.store.path.parent == cache
    assert torch.equal(train_store.load().codes, train_mem.codes)
    for name in ("targets", "singleton", "windows"):
        assert torch.equal(getattr(train_store, name), getattr(train_mem, name)), name
        assert torch.equal(getattr(val_store, name), getattr(val_mem, name)), name
    assert torch.equal(val_store.codes, val_mem.codes)
    assert (train_mem.windows[:, 1] == 150 - len(RIGHT_ADAPTER)).all()  # the shared right adapter is left out
    assert float(train_store.targets.min()) >= 1.0 and float(val_store.targets.min()) < 1.0  # only training clipped
    part = train_store.subset(np.array([7, 3]))
    assert torch.equal(part.windows, train_mem.windows[[7, 3]])
    assert torch.equal(part.codes[[0, 1]], train_mem.codes[[7, 3]])


def test_same_batches_for_two_epochs_with_evoaug(tmp_path, cache):
    path = tmp_path / "t.txt"
    dream_table(path, 400, seed=3)
    memory = DataConfig(path=str(path), train_size=250, val_size=100, test_size=40, store="off")
    sets = [load_split(dataclasses.replace(memory, store=store), seed=1, windows=True)[0] for store in ("off", "on")]
    loaders = [batch_loader(TrainBatches(s, augment=parse_augment("evoaug"), seed=1), 32, shuffle=True, seed=1)
               for s in sets]
    for epoch in range(2):
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        batches = list(zip(*loaders))
        assert len(batches) == 16  # 250 sequences and their reverse complements
        for (x_mem, y_mem), (x_store, y_store) in batches:
            assert torch.equal(x_mem, x_store) and torch.equal(y_mem, y_store)


@pytest.fixture(scope="module")
def store_runs(tmp_path_factory):
    """The same tiny EvoAug run trained in memory and through an explicit store."""
    folder = tmp_path_factory.mktemp("store_runs")
    path = folder / "library.txt"
    dream_table(path, 600, seed=5)
    store = build_store(path, folder / "library.store")
    base = tiny_config(path, epochs=2, train_size=400, val_size=120, test_size=60)
    base = dataclasses.replace(base, train=dataclasses.replace(base.train, augment="evoaug:max_augs=1",
                                                               precision="32"))
    runs = {}
    for name, setting in (("memory", "off"), ("store", str(store.path))):
        config = dataclasses.replace(base, data=dataclasses.replace(base.data, store=setting))
        runs[name] = (folder / name, train(config, folder / name))
    return path, runs


def test_training_through_the_store_is_bit_identical(store_runs):
    _, runs = store_runs
    (memory, summary_mem), (stored, summary_store) = runs["memory"], runs["store"]
    for key in ("best_val_pearson", "best_val_spearman", "steps", "best_epoch"):
        assert summary_mem[key] == summary_store[key], key
    columns = lambda run: pd.read_csv(run / "metrics.csv").drop(columns=["seconds"])  # noqa: E731
    pd.testing.assert_frame_equal(columns(memory), columns(stored))
    weights_mem, weights_store = load_run(memory)[0].state_dict(), load_run(stored)[0].state_dict()
    assert all(torch.equal(weights_mem[k], weights_store[k]) for k in weights_mem)
    assert load_run(stored)[1].data.store.endswith("library.store")


def test_evaluate_streams_in_chunks(store_runs, tmp_path, monkeypatch):
    path, runs = store_runs
    run = runs["memory"][0]
    lines = path.read_text().splitlines()[:230]
    lines[5] = lines[5].split("\t")[0] + "\tnan"
    measured = tmp_path / "measured.txt"
    measured.write_text("\n".join(lines) + "\n")
    whole = api.measured_predictions(run, measured, precision="32")
    sizes = []
    from promoterlab.evaluation import stream

    encode = stream.encode_sequences
    monkeypatch.setattr(stream, "encode_sequences", lambda seqs, *a: sizes.append(len(seqs)) or encode(seqs, *a))
    chunked = api.measured_predictions(run, measured, precision="32", chunk_rows=50)
    assert sizes == [49, 50, 50, 50, 30]  # one missing value skipped; never more than a chunk in memory
    assert len(chunked) == 229 and chunked["index"].tolist() == list(range(229))
    np.testing.assert_array_equal(chunked["target"], whole["target"])
    np.testing.assert_allclose(chunked["prediction"], whole["prediction"], rtol=0, atol=1e-5)
    targets = [float(line.split("\t")[1]) for line in lines if not line.endswith("nan")]
    np.testing.assert_array_equal(chunked["target"], np.float32(targets))
    ensemble = api.measured_predictions([run, runs["store"][0]], measured, precision="32", chunk_rows=100)
    np.testing.assert_allclose(ensemble["sd"], 0, atol=1e-5)  # the two runs are the same model
    assert (ensemble["n_models"] == 2).all()
    empty = tmp_path / "empty.txt"
    empty.write_text("ACGT\tnan\n" * 3)
    with pytest.raises(ValueError, match="empty.txt: no row has a measured value"):
        api.measured_predictions(run, empty, chunk_rows=2)


def test_store_setting_auto_on_off(tmp_path, monkeypatch):
    monkeypatch.delenv(STORE_DIR_ENV, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    path = data / "t.txt"
    dream_table(path, 120)
    cfg = DataConfig(path=str(path), train_size=80, val_size=20)
    assert cfg.store == "auto" and config_store(cfg) is None  # a small table: in memory, nothing written
    assert config_store(dataclasses.replace(cfg, store="off")) is None
    assert [p.name for p in data.iterdir()] == ["t.txt"]
    monkeypatch.setattr(store_batches, "STORE_AUTO_BYTES", path.stat().st_size)
    store = config_store(cfg)
    assert store.path.parent == data / ".promoterlab-stores" and len(store) == 120
    monkeypatch.setattr(store_batches, "STORE_AUTO_BYTES", path.stat().st_size + 1)
    assert config_store(cfg) is None and config_store(dataclasses.replace(cfg, store="on")).path == store.path
    assert DataConfig(store=True).store == "on" and DataConfig(store=False).store == "off"
    assert DataConfig(store=tmp_path / "s").store == str(tmp_path / "s")
    with pytest.raises(ValueError, match="store must be auto, on, off or the folder of a sequence store"):
        DataConfig(store=" ")


def test_bad_data_leaves_no_cache_behind(tmp_path, monkeypatch):
    monkeypatch.delenv(STORE_DIR_ENV, raising=False)
    path = tmp_path / "bad.txt"
    path.write_text(f"{LEFT_ADAPTER}ACGT\t1\nACGT\tnope\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: target 'nope' is not a number"):
        load_split(DataConfig(path=str(path), val_size=1, store="on"), seed=0)
    assert os.listdir(tmp_path) == ["bad.txt"]


def test_read_only_data_is_cached_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(STORE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    data = tmp_path / "shared"
    data.mkdir()
    path = data / "t.txt"
    dream_table(path, 60)
    data.chmod(0o555)  # as /work/shared/data: read-only even for root, who could write there
    try:
        store = config_store(DataConfig(path=str(path), store="on"))
        assert [p.name for p in data.iterdir()] == ["t.txt"]
    finally:
        data.chmod(0o755)
    assert store.path.parent == tmp_path / "xdg" / "promoterlab" / "stores"


def test_explicit_store_must_match_the_run(tmp_path):
    path = tmp_path / "t.txt"
    dream_table(path, 200, seed=6)
    folder = tmp_path / "t.store"
    build_store(path, folder)
    cfg = DataConfig(path=str(path), train_size=150, val_size=50, test_size=0, store=str(folder))
    train_set, _, *_ = load_split(cfg, seed=0)
    assert train_set.codes.store.path == folder
    with pytest.raises(StoreError, match=r"t\.store: encoded with left_adapter 'TGCATTTTTTTCACATC' "
                                         r"\(the run: 'AACTGCATTTTTTTCACATC'\); encode it again"):
        load_split(dataclasses.replace(cfg, left_adapter=DE_BOER_ADAPTER), seed=0)
    with pytest.raises(StoreError, match=r"drop_missing False \(the run: True\)"):
        load_split(dataclasses.replace(cfg, drop_missing=True), seed=0)
    with pytest.raises(StoreError, match=r"nowhere: no sequence store here"):
        load_split(dataclasses.replace(cfg, store=str(tmp_path / "nowhere")), seed=0)
    with path.open("a") as handle:
        handle.write("ACGT\t3\n")
    with pytest.raises(StoreError, match=r"t\.txt changed since the store was built from it"):
        load_split(cfg, seed=0)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "inserts.u8").write_bytes((f / "inserts.u8").read_bytes()[:-2]),
     r"inserts\.u8 has 198 bytes, the header says 200 .*truncated"),
    (lambda f: (f / "flags.u8").write_bytes(bytes(b ^ 2 for b in (f / "flags.u8").read_bytes())),
     r"flags\.u8 does not match its checksum \(corrupted\)"),
    (lambda f: (f / HEADER).write_text(json.dumps({**json.loads((f / HEADER).read_text()), "version": 2})),
     r"store format version 2, this promoterlab reads version 3; encode the data again"),
])
def test_damaged_new_columns_refused_when_explicit_rebuilt_when_cached(tmp_path, damage, message, caplog):
    path = tmp_path / "t.txt"
    dream_table(path, 200, seed=7)
    explicit = build_store(path, tmp_path / "t.store").path
    damage(explicit)
    with pytest.raises(StoreError, match=message):
        load_split(DataConfig(path=str(path), train_size=150, val_size=50, test_size=0, store=str(explicit)), seed=0)
    cached = store_for(path, cache_root=tmp_path / "cache")
    damage(cached.path)
    again = store_for(path, cache_root=tmp_path / "cache")
    assert again.path == cached.path and "rebuilding the sequence store" in caplog.text
    np.testing.assert_array_equal(again.inserts, build_store(path, tmp_path / "fresh").inserts)


def test_stores_of_an_earlier_format_are_removed_from_the_cache(tmp_path):
    path = tmp_path / "t.txt"
    dream_table(path, 50)
    old = build_store(path, tmp_path / "cache" / "t.txt.0123456789abcdef.oldoptions")
    header = json.loads((old.path / HEADER).read_text())
    (old.path / HEADER).write_text(json.dumps({**header, "version": 1}))
    other_layout = build_store(path, tmp_path / "cache" / "t.txt.0123456789abcdef.otherlayout", Layout(seq_len=160))
    store_for(path, cache_root=tmp_path / "cache")
    assert not old.path.exists() and other_layout.path.exists()


def test_cli_train_names_a_bad_store(tmp_path):
    path = tmp_path / "t.txt"
    dream_table(path, 200)
    result = CliRunner().invoke(app, ["train", str(path), "--output", str(tmp_path / "run"), "--store",
                                      str(tmp_path / "missing.store"), "--quiet"])
    assert result.exit_code == 2 and f"--store {tmp_path / 'missing.store'}: directory not found" in result.output
    assert not (tmp_path / "run").exists()
    assert os.listdir(tmp_path) == ["t.txt"]


def test_a_run_read_through_another_store_setting_is_the_same_run(tmp_path):
    from promoterlab.config import DataConfig, RunConfig
    from promoterlab.runs import saved_config_matches

    RunConfig(data=DataConfig(path="lib.txt", store="off")).save(tmp_path / "config.yaml")
    assert saved_config_matches(tmp_path, RunConfig(data=DataConfig(path="lib.txt", store="on")))
    assert not saved_config_matches(tmp_path, RunConfig(data=DataConfig(path="lib.txt", split_seed=3)))
