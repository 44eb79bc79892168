"""From a validated table to encoded tensors and batch loaders.

Sequences are stored once as ``(n, L)`` uint8 codes (150 bytes each, about 1 GB for the
6.7 M DREAM sequences); the 6-channel float input is built per batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from promoterlab.data.augment import EvoAugConfig, evoaug, random_noise
from promoterlab.data.readers import DataError, read_table
from promoterlab.data.encoded import EncodedSet, SplitSets, held_out_test_size
from promoterlab.data.splits import split_indices
from promoterlab.data.store_batches import config_store, load_store_split
from promoterlab.sequence import (Layout, SequenceError, common_suffix, insert_windows, is_integer, lay_out,
                                  model_input, reverse_complement_codes)


def encode_sequences(seqs: pd.Series | list[str], layout: Layout, path: str | Path = "<sequences>",
                     lines: np.ndarray | None = None) -> torch.Tensor:
    """Lay out and encode sequences (:func:`~promoterlab.sequence.lay_out`); a sequence too long
    for the model, or with a character other than ACGTN, is a :class:`DataError`.

    ``lines`` are the sequences' line numbers in ``path`` (for the error message); without
    them the message names the sequence's position in ``seqs``.
    """
    try:
        return torch.from_numpy(lay_out(list(seqs), layout).codes)
    except SequenceError as err:
        raise DataError.from_sequence_error(err, path, lines) from None


def encode_frame(frame: pd.DataFrame, layout: Layout, singleton_channel: bool = True,
                 path: str | Path = "<table>") -> EncodedSet:
    """Encode a reader's frame (``seq``, ``target``, ``line``) with its singleton flags."""
    codes = encode_sequences(frame["seq"], layout, path, frame["line"].to_numpy())
    targets = frame["target"].to_numpy(dtype=np.float32)
    singleton = is_integer(targets) if singleton_channel else np.zeros(len(targets), dtype=bool)
    return EncodedSet(codes, torch.from_numpy(targets), torch.from_numpy(singleton))


def load_split(cfg, seed: int, windows: bool = False) -> SplitSets:
    """The seeded training, validation and held-out test sets of a
    :class:`~promoterlab.config.DataConfig` (split by ``cfg.split_seed`` when it is set, else by
    ``seed``; :func:`~promoterlab.data.splits.split_indices`).

    ``cfg.store`` says where they are read from
    (:func:`~promoterlab.data.store_batches.config_store`): from a memory-mapped sequence store,
    the training set is a :class:`~promoterlab.data.store_batches.StoreSet` that reads its codes
    batch by batch; else ``cfg.path`` is read into memory. Either way a seed gives the same rows
    in the same order, so the same batches.

    With ``windows``, the training and validation sets carry each sequence's insert window,
    without the right flank that all training sequences share
    (:func:`~promoterlab.sequence.common_suffix`).
    """
    seed = seed if getattr(cfg, "split_seed", None) is None else cfg.split_seed
    store = config_store(cfg)
    if store is not None:
        return load_store_split(cfg, seed, windows=windows, store=store)
    return load_table_split(cfg, seed, windows)


def load_table_split(cfg, seed: int, windows: bool = False) -> SplitSets:
    """:func:`load_split` in memory: read and validate the whole of ``cfg.path``, then encode the
    chosen rows."""
    frame = read_table(cfg.path, cfg.seq_col, cfg.target_col, cfg.group_col, drop_missing=cfg.drop_missing)
    groups = frame["group"].to_numpy() if cfg.group_col else None
    try:
        rows = split_indices(len(frame), cfg.train_size, cfg.val_size, seed, groups, held_out_test_size(cfg))
    except ValueError as err:
        raise DataError(cfg.path, None, str(err)) from None
    chosen = np.concatenate([rows.train, rows.val, rows.test])
    encoded = encode_frame(frame.iloc[chosen], cfg.layout, cfg.singleton_channel, cfg.path)
    n_train, n_val = len(rows.train), len(rows.val)
    if windows:
        right_flank = common_suffix(frame["seq"].iloc[rows.train])
        encoded.windows = insert_windows(frame["seq"].iloc[chosen], cfg.layout, right_flank=right_flank)
    train_set = encoded.subset(np.arange(n_train))
    if cfg.clip_targets:
        low, high = cfg.clip_targets
        train_set.targets = train_set.targets.clamp(float(low), float(high))
    val_set = encoded.subset(np.arange(n_train, n_train + n_val))
    test_set = None
    if len(rows.test):
        test_set = encoded.subset(np.arange(n_train + n_val, len(chosen)))
        test_set.singleton, test_set.windows = torch.zeros_like(test_set.singleton), None
    return SplitSets(train_set, val_set, test_set, rows, len(frame))


def load_test_file(cfg) -> EncodedSet:
    """The measured rows of ``cfg.test_path`` (rows without a value are skipped), laid out as
    ``cfg`` lays out training data, with the singleton channel 0 as at prediction; columns as
    ``cfg.seq_col``/``cfg.target_col``, or found as for any table."""
    frame = read_table(cfg.test_path, cfg.seq_col, cfg.target_col, drop_missing=True)
    if frame.empty:
        raise DataError(cfg.test_path, None, "no row has a measured value to test on")
    return encode_frame(frame, cfg.layout, singleton_channel=False, path=cfg.test_path)


class TrainBatches(Dataset):
    """Index ``i < n`` is sequence ``i``; with ``rc_augment``, ``i >= n`` is the reverse complement
    of sequence ``i - n``, doubling the training set. Items are whole batches of indices.

    With ``augment`` (and ``augmenting`` True, the default), each sequence's insert is augmented
    with :func:`~promoterlab.data.augment.evoaug` before the reverse complement is taken, and
    rows that draw noise get :func:`~promoterlab.data.augment.random_noise` on the float input.
    A batch's randomness comes from a generator seeded with ``seed`` and the batch's indices, so a
    batch is the same whenever it is built (a resumed run sees the batches of an uninterrupted one).
    Set ``augmenting`` to False for unaugmented batches (fine-tuning epochs).
    """

    def __init__(self, data: EncodedSet, rc_augment: bool = True, augment: EvoAugConfig | None = None,
                 seed: int = 0):
        if augment is not None and data.windows is None:
            raise ValueError("augmentation needs the insert windows of the training sequences "
                             "(load_split(..., windows=True))")
        self.data, self.rc_augment, self.augment, self.seed = data, rc_augment, augment, seed
        self.augmenting = augment is not None

    def __len__(self) -> int:
        return len(self.data) * (2 if self.rc_augment else 1)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        n = len(self.data)
        reverse = indices >= n
        rows = indices % n
        codes = self.data.codes[rows]
        augment = self.augment if self.augmenting else None
        if augment is not None:
            generator = batch_generator(self.seed, indices)
            windows = self.data.windows[rows]
            codes, noise_rows = evoaug(codes, windows, augment, generator)
        if reverse.any():
            codes[reverse] = reverse_complement_codes(codes[reverse]).to(codes.dtype)
        x = model_input(codes, reverse, self.data.singleton[rows])
        if augment is not None and noise_rows.any():
            x = random_noise(x, windows, augment.noise, generator, rows=noise_rows, reverse=reverse)
        return x, self.data.targets[rows]


def batch_generator(seed: int, indices: torch.Tensor) -> torch.Generator:
    """A ``torch.Generator`` seeded from ``seed`` and a batch's indices (in order)."""
    state = np.random.SeedSequence([int(seed) % 2**63, *indices.tolist()]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]) % 2**63)


class EvalBatches(Dataset):
    """Batches of (forward input, reverse-complement input, target) for RC-averaged evaluation.
    The singleton channel is ``singleton`` when given (validation on held-out training data),
    else 0, as at prediction time."""

    def __init__(self, codes: torch.Tensor, targets: torch.Tensor | None = None,
                 singleton: torch.Tensor | None = None):
        self.codes, self.singleton = codes, singleton
        self.targets = targets if targets is not None else torch.full((len(codes),), float("nan"))

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = self.codes[indices]
        singleton = None if self.singleton is None else self.singleton[indices]
        return (model_input(codes, False, singleton), model_input(reverse_complement_codes(codes), True, singleton),
                self.targets[indices])


class ShuffledBatches(Sampler[list[int]]):
    """Random batches of indices whose order depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed from a checkpoint
    sees the same batches as one that was never interrupted.

    With ``num_replicas`` > 1 (data-parallel training) every rank computes the same order, cut
    into batches by :meth:`cut` (the single-process batches, except that the last one or two
    rounds are spread evenly so that each rank gets the same number of non-empty batches), and
    rank ``rank`` takes batches ``rank``, ``rank + num_replicas``, ...: step ``s`` of rank ``r``
    is batch ``s * num_replicas + r``. The ranks' batches together hold every index of the
    epoch exactly once; nothing is padded or dropped.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..{num_replicas - 1} for {num_replicas} replicas, got {rank}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0
        self.num_replicas, self.rank = num_replicas, rank
        if n < len(self) * num_replicas:
            raise ValueError(f"{n} training samples cannot fill {len(self)} batches on each of {num_replicas} "
                             "ranks; train on fewer devices")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-(-(-self.n // self.batch_size)) // self.num_replicas)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator)
        for batch in self.cut(order, self.batch_size, len(self) * self.num_replicas)[self.rank::self.num_replicas]:
            yield batch.tolist()

    @staticmethod
    def cut(order: torch.Tensor, batch_size: int, count: int) -> list[torch.Tensor]:
        """``order`` as ``count`` consecutive batches of at most ``batch_size`` (``count * batch_size``
        must hold it): full batches while the rest still has a row for every remaining batch, then
        the rest spread evenly (batches differ by at most one row; empty only when ``order`` is
        shorter than ``count``). With ``count = ceil(len(order) / batch_size)`` these are the full
        batches and the remainder."""
        n = len(order)
        if n > count * batch_size:
            raise ValueError(f"{n} indices do not fit {count} batches of {batch_size}")
        full = min(n // batch_size, count)
        if batch_size > 1:
            full = min(full, max(0, n - count) // (batch_size - 1))
        batches = list(order[:full * batch_size].split(batch_size)) if full else []
        if count > full:
            batches += list(order[full * batch_size:].tensor_split(count - full))
        return batches


def batch_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> DataLoader:
    """A loader whose dataset builds each batch in one vectorised call; shuffled batches are split
    across ``num_replicas`` data-parallel ranks (:class:`ShuffledBatches`)."""
    if shuffle:
        sampler = ShuffledBatches(len(dataset), batch_size, seed, num_replicas, rank)
    elif num_replicas > 1:
        raise ValueError("sequential batches are not split across ranks here; see "
                         "promoterlab.training.distributed.ValidationShards")
    else:
        sampler = BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False)
    return DataLoader(dataset, sampler=sampler, batch_size=None)
