"""Data-parallel training: batch sharding, validation shards, and a real 2-process DDP run on CPU (gloo)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler

from conftest import tiny_config
from promoterlab import load_run, predict
from promoterlab.config import RunConfig
from promoterlab.data.dataset import ShuffledBatches, batch_loader, load_split
from promoterlab.data.simulate import write_library
from promoterlab.evaluation.metrics import pearson, spearman
from promoterlab.training.distributed import ValidationShards, World, plan_world


def single_process_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one process (the reference the ranks' shares are compared with)."""
    sampler = ShuffledBatches(n, batch_size, seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def rank_batches(n: int, batch_size: int, seed: int, epoch: int, ranks: int) -> list[list[list[int]]]:
    samplers = [ShuffledBatches(n, batch_size, seed, num_replicas=ranks, rank=r) for r in range(ranks)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return [list(sampler) for sampler in samplers]


def test_one_process_keeps_the_seeded_batches():
    for n, batch_size in [(1, 1), (10, 3), (64, 64), (600, 64), (540, 64), (7, 10)]:
        batches = single_process_batches(n, batch_size, 5, 3)
        # every index once, in full batches but the last, the same whenever drawn again (a resumed
        # run), and another order in another epoch or with another seed
        assert sorted(i for batch in batches for i in batch) == list(range(n))
        assert [len(b) for b in batches] == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
        assert batches == single_process_batches(n, batch_size, 5, 3) and len(batches) == -(-n // batch_size)
        if n >= 10:
            assert batches != single_process_batches(n, batch_size, 5, 4)
            assert batches != single_process_batches(n, batch_size, 6, 3)


@pytest.mark.parametrize("n,batch_size,ranks", [(540, 64, 2), (600, 64, 2), (201, 100, 2), (1000, 7, 3),
                                                (512, 64, 8), (33, 4, 4), (6, 1, 2)])
def test_ranks_split_every_epoch_exactly(n, batch_size, ranks):
    for epoch in (0, 1):
        shares = rank_batches(n, batch_size, seed=2, epoch=epoch, ranks=ranks)
        steps = len(ShuffledBatches(n, batch_size, 2, ranks, 0))
        assert all(len(share) == steps for share in shares) and steps == -(-(-(-n // batch_size)) // ranks)
        assert all(1 <= len(batch) <= batch_size for share in shares for batch in share)
        seen = [i for share in shares for batch in share for i in batch]
        assert sorted(seen) == list(range(n))  # disjoint, and together the epoch
        # Step s of rank r is batch s * ranks + r of the single-process order.
        dealt = [i for step in range(steps) for share in shares for i in share[step]]
        single = single_process_batches(n, batch_size, 2, epoch)
        assert dealt == [i for batch in single for i in batch]
        full_rounds = [batch for step in range(steps - 2) for share in shares for batch in [share[step]]]
        assert full_rounds == single[:len(full_rounds)]
    assert rank_batches(n, batch_size, 2, 0, ranks) != rank_batches(n, batch_size, 2, 1, ranks)


def test_rank_sharding_refuses_what_it_cannot_split():
    with pytest.raises(ValueError, match="3 training samples cannot fill 2 batches on each of 2 ranks"):
        ShuffledBatches(3, 1, num_replicas=2)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        ShuffledBatches(100, 8, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="sequential batches are not split across ranks"):
        batch_loader(list(range(10)), 4, shuffle=False, num_replicas=2)


@pytest.mark.parametrize("n,batch_size,ranks", [(101, 16, 2), (500, 64, 3), (5, 4, 8), (64, 64, 2), (1, 8, 2)])
def test_validation_shards_hold_every_row_once_in_order(n, batch_size, ranks):
    shards = [list(ValidationShards(n, batch_size, ranks, r)) for r in range(ranks)]
    assert len({len(shard) for shard in shards}) == 1  # the same number of validation steps everywhere
    assert all(len(batch) <= batch_size for shard in shards for batch in shard)
    assert [i for shard in shards for batch in shard for i in batch] == list(range(n))
    one = list(ValidationShards(n, batch_size))
    assert one == list(BatchSampler(SequentialSampler(range(n)), batch_size, drop_last=False))


LAUNCHER_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                      "MASTER_ADDR", "MASTER_PORT")


def without_launcher(environ) -> dict[str, str]:
    """``environ`` without what a launcher (Lightning, SLURM, torchrun) sets for a rank."""
    return {k: v for k, v in environ.items()
            if not k.startswith(("SLURM_", "PL_", "TORCHELASTIC_")) and k not in LAUNCHER_VARIABLES}


@pytest.fixture
def clean_launcher_env(monkeypatch):
    for name in set(os.environ) - set(without_launcher(os.environ)):
        monkeypatch.delenv(name)


def test_world_comes_from_the_launcher(sim_library, monkeypatch, clean_launcher_env):
    train_cfg = tiny_config(sim_library).train
    assert plan_world(train_cfg) == World(1, 0)
    ddp = dataclasses.replace(train_cfg, devices="2", strategy="ddp")
    assert plan_world(ddp) == World(2, 0)
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's ddp launcher gives the process it starts
    monkeypatch.setenv("NODE_RANK", "1")
    assert plan_world(dataclasses.replace(ddp, num_nodes=2)) == World(4, 3)


def test_world_under_slurm_and_torchrun(sim_library, monkeypatch, clean_launcher_env):
    four_by_two = dataclasses.replace(tiny_config(sim_library).train, devices="4", num_nodes=2, strategy="ddp")
    slurm = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_NAME": "legnet", "SLURM_JOB_ID": "5",
             "SLURM_NNODES": "2", "SLURM_NODELIST": "node[1-2]", "SLURM_NODEID": "1", "SLURM_LOCALID": "2",
             "SLURM_PROCID": "6"}
    with monkeypatch.context() as patch:
        for name, value in slurm.items():
            patch.setenv(name, value)
        assert plan_world(four_by_two) == World(8, 6)
    torchrun = {"TORCHELASTIC_RUN_ID": "x", "GROUP_RANK": "1", "LOCAL_RANK": "3", "RANK": "7", "WORLD_SIZE": "8",
                "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"}
    with monkeypatch.context() as patch:
        for name, value in torchrun.items():
            patch.setenv(name, value)
        assert plan_world(four_by_two) == World(8, 7)


def test_unsupported_multi_process_settings_are_refused(sim_library, clean_launcher_env):
    train_cfg = tiny_config(sim_library).train
    with pytest.raises(ValueError, match="max_time without epochs .* 2 processes"):
        plan_world(dataclasses.replace(train_cfg, devices="2", strategy="ddp", epochs="auto", max_time=1.0))
    plan_world(dataclasses.replace(train_cfg, devices="2", strategy="ddp", epochs=2, max_time=1.0))  # a hard stop
    with pytest.raises(ValueError, match="'ddp_spawn' starts its processes from inside training"):
        plan_world(dataclasses.replace(train_cfg, devices="2", strategy="ddp_spawn"))


# Run by the test below as a script: Lightning's ddp strategy runs it again for rank 1, as it
# runs `promoterlab train` again, and both ranks go through promoterlab.train().
DDP_SCRIPT = '''
import json, sys
from pathlib import Path

import lightning as L
import torch

import promoterlab
from promoterlab.config import RunConfig

config_path, out, record = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])


class Record(L.Callback):
    """What one rank trained on (each sample identified by its input), its weights, its metrics."""

    def __init__(self):
        self.batches, self.val_pearson, self.weights = {}, [], {}

    def on_train_start(self, trainer, module):
        train_batches = trainer.datamodule.train_batches
        x, _ = train_batches[list(range(len(train_batches)))]
        self.index = {key: i for i, key in enumerate(self._keys(x))}
        assert len(self.index) == len(train_batches)
        self.weights["start"] = self._weights(module)

    @staticmethod
    def _keys(x):
        return [row.numpy().tobytes() for row in x[:, :5] > 0.5]  # bases and the is_reverse channel

    @staticmethod
    def _weights(module):
        return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        indices = [self.index[key] for key in self._keys(batch[0])]
        self.batches.setdefault(trainer.current_epoch, []).append(indices)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == 1:
            self.weights["step1"] = self._weights(module)

    def on_validation_end(self, trainer, module):
        self.val_pearson.append(float(trainer.callback_metrics["val_pearson"]))

    def on_train_end(self, trainer, module):
        self.weights["end"] = self._weights(module)
        rank = trainer.global_rank
        torch.save(self.weights, record / f"weights{rank}.pt")
        (record / f"rank{rank}.json").write_text(json.dumps({
            "world_size": trainer.world_size, "batches": self.batches, "val_pearson": self.val_pearson}))


summary = promoterlab.train(RunConfig.load(config_path), out, callbacks=[Record()])
print("SUMMARY", json.dumps(summary))
'''


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """2 epochs of a tiny LegNet in 2 processes (gloo, CPU): 270 training sequences (540 samples with
    their reverse complements: 9 batches of 64, so the last round is spread over both ranks) and
    101 validation sequences (shards of 51 and 50)."""
    root = tmp_path_factory.mktemp("ddp")
    library = write_library(root / "library.txt", n=700, seed=3)
    base = tiny_config(library, epochs=2, train_size=270, val_size=101)
    config = dataclasses.replace(base, train=dataclasses.replace(
        base.train, devices="2", strategy="ddp", precision="32", eval_batch_size=16))
    config.save(root / "config.yaml")
    script = root / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    record = root / "record"
    record.mkdir()
    env = {**without_launcher(os.environ), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(root / "config.yaml"), str(root / "run"), str(record)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return config, root / "run", record, done.stdout


def test_ddp_ranks_train_on_disjoint_shares_of_the_seeded_epoch(ddp_run):
    config, _, record, _ = ddp_run
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [rank["world_size"] for rank in ranks] == [2, 2]
    n = 2 * 270  # every sequence and its reverse complement
    for epoch in ("0", "1"):
        shares = [rank["batches"][epoch] for rank in ranks]
        assert len(shares[0]) == len(shares[1]) == 5
        seen = [i for share in shares for batch in share for i in batch]
        assert len(seen) == n and sorted(seen) == list(range(n))
        # What Lightning fed each rank is the single-process seeded order, dealt batch by batch.
        single = single_process_batches(n, 64, config.seed, int(epoch))
        dealt = [i for step in range(5) for share in shares for i in share[step]]
        assert dealt == [i for batch in single for i in batch]
        assert [shares[0][s] for s in range(4)] == single[0:8:2] and [shares[1][s] for s in range(4)] == single[1:8:2]
    assert ranks[0]["batches"]["0"] != ranks[0]["batches"]["1"]


def test_ddp_ranks_hold_identical_weights(ddp_run):
    _, _, record, _ = ddp_run
    weights = [torch.load(record / f"weights{r}.pt") for r in (0, 1)]
    for moment in ("start", "step1", "end"):
        assert torch.equal(weights[0][moment], weights[1][moment]), moment
    assert not torch.equal(weights[0]["start"], weights[0]["step1"])


def test_ddp_validation_is_over_the_whole_validation_set(ddp_run):
    config, out, record, stdout = ddp_run
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["val_pearson"] == ranks[1]["val_pearson"] and len(ranks[0]["val_pearson"]) == 2
    metrics = pd.read_csv(out / "metrics.csv")  # rank 0 alone wrote it: one row per epoch
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics["val_pearson"].tolist() == pytest.approx(ranks[0]["val_pearson"], abs=1e-7)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 10 and summary["val_size"] == 101
    assert stdout.count("SUMMARY {}") == 1 and stdout.count('"world_size": 2') == 1  # rank 1 returns {}
    # The saved (best) model, evaluated in this one process on the same validation rows.
    model, saved = load_run(out)
    _, val_set, *_ = load_split(saved.data, saved.seed)
    pred = predict(model, val_set.codes, singleton=val_set.singleton, precision="32", fold=False)
    target = val_set.targets.numpy()
    assert pearson(pred, target) == pytest.approx(summary["best_val_pearson"], abs=1e-5)
    assert spearman(pred, target) == pytest.approx(summary["best_val_spearman"], abs=1e-5)
    best = metrics.loc[metrics["val_pearson"].idxmax()]
    assert summary["best_val_pearson"] == best["val_pearson"] and np.isfinite(best["val_loss"])
    assert RunConfig.load(out / "config.yaml").train.devices == "2"
