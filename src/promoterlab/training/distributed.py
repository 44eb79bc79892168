"""Data-parallel training through Lightning's DDP: one process (rank) per device, on one or more nodes.

Every rank runs the whole of :func:`~promoterlab.training.run.train`: Lightning's ``ddp``
strategy re-runs the command for the other ranks of a node, and SLURM (``srun``) or
``torchrun`` start every rank themselves. The ranks agree without talking before their process
group exists, because each of them

- reads the data and draws the same seeded split and batch order;
- knows its rank from the launcher's environment (:func:`plan_world`), so that only rank 0
  prepares and writes the run directory;
- trains on its own share of each epoch's seeded batches (:class:`RunData`,
  :class:`~promoterlab.data.dataset.ShuffledBatches`), with Lightning's ``DistributedSampler``
  turned off (``use_distributed_sampler=False``);
- validates a contiguous shard of the validation set (:class:`ValidationShards`), after which
  predictions and targets are gathered (:func:`gather_rows`): the metrics are those of the whole
  set, identical on every rank.

Strategies that start their processes from inside ``fit`` (``ddp_spawn``, ``ddp_fork``,
``ddp_notebook``) are refused: their processes would begin halfway through ``train``, and the
history, steps and averaged weights of training would stay in them.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher
from torch.utils.data import DataLoader, Dataset, Sampler

from promoterlab.config import time_budget
from promoterlab.data.dataset import ShuffledBatches, batch_loader


@dataclass(frozen=True)
class World:
    """The processes of a run: how many, and which one this is (0: the one that writes files)."""

    size: int = 1
    rank: int = 0


def lightning_devices(devices: str) -> str | int:
    """A ``TrainConfig.devices`` string as Lightning's ``devices`` argument (a count becomes an int)."""
    return int(devices) if str(devices).isdigit() else devices


def plan_world(train_cfg) -> World:
    """The processes Lightning will train ``train_cfg`` (a resolved or unresolved
    :class:`~promoterlab.config.TrainConfig`) in, and this process's rank among them.

    The rank is computed as Lightning computes it when ``fit`` connects the ranks: node rank x
    processes per node + local rank, from the launcher's environment (``NODE_RANK``/``LOCAL_RANK``
    of Lightning's ``ddp`` launcher, ``SLURM_NODEID``/``SLURM_LOCALID`` under ``srun``,
    ``GROUP_RANK``/``LOCAL_RANK`` under ``torchrun``).

    Raises
    ------
    ValueError
        For a strategy that starts its processes inside ``fit`` (``ddp_spawn``, ``ddp_fork``,
        ``ddp_notebook``), and for ``max_time`` without ``epochs`` on more than one process: the
        budget is planned from a few steps timed in one process before training starts, which
        the ranks could not share.
    """
    with _lightning_info_off():
        trainer = L.Trainer(accelerator=train_cfg.accelerator, devices=lightning_devices(train_cfg.devices),
                            strategy=train_cfg.strategy, num_nodes=train_cfg.num_nodes, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    strategy = trainer.strategy
    if isinstance(strategy.launcher, _MultiProcessingLauncher):
        raise ValueError(f"strategy {train_cfg.strategy!r} starts its processes from inside training (as Lightning "
                         "does for several devices in a notebook), which promoterlab does not support; use "
                         "--strategy ddp from a command line or script (each rank runs it whole), or --devices 1")
    if trainer.world_size == 1:
        return World()
    if time_budget(train_cfg) and train_cfg.epochs == "auto":
        raise ValueError(f"max_time without epochs (--max-time without --epochs) plans the schedule from steps "
                         f"timed in one process, which the {trainer.world_size} processes of a data-parallel run "
                         "cannot share; give --epochs as well (--max-time is then a hard stop that every rank "
                         "obeys), or train on one device")
    environment = strategy.cluster_environment
    rank = environment.node_rank() * strategy.num_processes + environment.local_rank()
    return World(trainer.world_size, rank)


@contextmanager
def _lightning_info_off():
    """Keep the banners of a Trainer built only to ask about the world off the terminal (the
    Trainer that trains prints them)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class ValidationShards(Sampler[list[int]]):
    """Rank ``rank``'s batches of rows ``0 .. n-1``, in order.

    The rows are cut into ``num_replicas`` contiguous shards whose sizes differ by at most one
    (rank 0's first), and every shard into as many batches as the largest one needs
    (:meth:`~promoterlab.data.dataset.ShuffledBatches.cut`), so that every rank runs the same
    number of validation steps. The shards hold each row exactly once: nothing is padded. With
    one replica these are the consecutive batches of ``batch_size``.
    """

    def __init__(self, n: int, batch_size: int, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..{num_replicas - 1} for {num_replicas} replicas, got {rank}")
        self.batch_size = batch_size
        self.rows = torch.arange(n).tensor_split(num_replicas)[rank]
        largest = -(-n // num_replicas)
        self.count = -(-largest // batch_size)

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        for batch in ShuffledBatches.cut(self.rows, self.batch_size, self.count):
            yield batch.tolist()


class RunData(L.LightningDataModule):
    """A run's training and validation batches, split across the ranks of the trainer that fits it.

    The loaders are built when Lightning asks for them, in every rank, from
    ``trainer.world_size`` and ``trainer.global_rank``.

    Parameters
    ----------
    train_batches : Dataset
        Whole training batches per list of indices (:class:`~promoterlab.data.dataset.TrainBatches`).
    val_batches : Dataset
        Whole validation batches per list of rows (:class:`~promoterlab.data.dataset.EvalBatches`).
    batch_size, eval_batch_size : int
        Training and validation batch sizes per rank.
    seed : int
        Seed of the batch order.
    """

    def __init__(self, train_batches: Dataset, val_batches: Dataset, batch_size: int, eval_batch_size: int,
                 seed: int):
        super().__init__()
        self.train_batches, self.val_batches = train_batches, val_batches
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.train_batches, self.batch_size, shuffle=True, seed=self.seed,
                            num_replicas=self.trainer.world_size, rank=self.trainer.global_rank)

    def val_dataloader(self) -> DataLoader:
        shards = ValidationShards(len(self.val_batches), self.eval_batch_size, self.trainer.world_size,
                                  self.trainer.global_rank)
        return DataLoader(self.val_batches, sampler=shards, batch_size=None)


def gather_rows(module: L.LightningModule, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` of every rank, concatenated in rank order (just ``rows`` in a single process).

    Ranks may hold different numbers of rows (0 included): each is padded to the longest for
    Lightning's ``all_gather`` and trimmed again, so nothing is duplicated. Every rank must call
    this, with tensors of the same dtype and trailing shape.
    """
    if module.trainer.world_size == 1:
        return rows
    with warnings.catch_warnings():  # Lightning's all_gather calls a torch function deprecated in torch 2.13
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated.*")
        counts = module.all_gather(torch.tensor(len(rows), device=rows.device))
        padded = rows.new_zeros((int(counts.max()), *rows.shape[1:]))
        padded[:len(rows)] = rows
        gathered = module.all_gather(padded)
    return torch.cat([gathered[rank, :int(count)] for rank, count in enumerate(counts)])
