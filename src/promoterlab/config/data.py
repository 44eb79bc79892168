"""Where a run's data comes from, and how it is laid out and split (``config.yaml``'s ``data``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from promoterlab.config.checks import check_count, is_number
from promoterlab.config.setting import setting
from promoterlab.sequence import Layout


@dataclass
class DataConfig:
    """Where the data comes from and how it is laid out and split."""

    path: str | None = setting(None, "The training table (DREAM text, CSV or TSV, optionally .gz).", cli=False)
    seq_col: str | None = setting(None, "Sequence column of a table with a header (default: seq or sequence).",
                                  metavar="NAME")
    target_col: str | None = setting(None, "Target column of a table with a header (default: expr, expression, "
                                     "target or el_combined).", metavar="NAME")
    group_col: str | None = setting(None, "Group column: no group is split between training, validation and "
                                    "test (e.g. connected components of overlapping native fragments).",
                                    metavar="NAME")
    drop_missing: bool = setting(False, "Drop rows with a missing or non-numeric target (else: an error naming "
                                 "the line).")
    train_size: int | None = setting(None, "Training sequences, drawn after test and validation (default: all "
                                     "the rest; a smaller size is a subset of a larger one).")
    val_size: int | str = setting("auto", "Validation sequences, which choose the checkpoint; auto: a tenth of "
                                  "the rows, at least 256 (at most a fifth of the rows) and at most 2,048.")
    # Held out before validation is drawn and never used to train, choose a checkpoint or stop.
    test_size: int | float | str = setting("auto", "Held-out test set, drawn first and never used in training: "
                                           "rows, a fraction (0.1) or 0 for none; auto: a tenth of the rows, "
                                           "at least 256 (at most a fifth of the rows) and at most 2,048.",
                                           metavar="N|F|auto")
    test_path: str | None = setting(None, "Test on this measured file instead of a held-out split.",
                                    flag="--test", metavar="FILE")
    seq_len: int = setting(Layout().seq_len, "Model input length: the insert and the plasmid before it (an "
                           "insert longer than this is an error).")
    left_adapter: str = setting(Layout().left_adapter, "Leading adapter of your sequences, replaced by the "
                                "plasmid upstream of the insert (\"\": none; de Boer 2020: "
                                "AACTGCATTTTTTTCACATC).", metavar="BASES")
    upstream: str = setting(Layout().upstream, "Plasmid sequence upstream of the insert (it normally ends "
                            "with the left adapter), prepended to reach --seq-len (default: the DREAM "
                            "plasmid's 200 bp).", metavar="BASES")
    singleton_channel: bool = setting(True, "Give the model the is_singleton channel (the DREAM convention: a "
                                      "target that is a whole number was seen in one sorting bin).")
    # Validation inputs carry the data's is_singleton flags, as LegNet's DREAM code validates
    # (the flag is computed on the whole training file before the split); False sets them to 0,
    # as at prediction time. Test sets and new sequences always get 0.
    val_singleton: bool = setting(True, "Validation inputs carry the data's is_singleton flags, as LegNet's "
                                  "DREAM code validates (off: 0, as at prediction).")
    clip_targets: list[float] | None = setting(None, "LOW,HIGH: clip training targets into this range, e.g. "
                                               "0,17 for values that slightly overshoot the bin scale.",
                                               kind="range")
    store: str = setting("auto", "Read the data through a memory-mapped sequence store: auto (cached for tables "
                         "of 32 MB or more), on, off, or a store folder from 'promoterlab data encode'.",
                         metavar="auto|on|off|DIR")
    # The members of an ensemble share the first member's split, so the ensemble is validated
    # and tested on sequences that none of its members trained on.
    split_seed: int | None = setting(None, "Seed of the split (default: the run's --seed).")

    def _check_test(self) -> None:
        if isinstance(self.test_path, os.PathLike):
            self.test_path = os.fspath(self.test_path)
        if self.test_path is not None and (not isinstance(self.test_path, str) or not self.test_path.strip()):
            raise ValueError(f"test_path must be a file name, got {self.test_path!r}")
        size = self.test_size
        if isinstance(size, float) and not isinstance(size, bool) and size.is_integer() and size >= 1:
            self.test_size = size = int(size)
        fraction = isinstance(size, float) and 0 < size < 1
        count = isinstance(size, int) and not isinstance(size, bool) and size >= 0
        if not (size == "auto" or fraction or count):
            raise ValueError(f"test_size must be auto, a number of rows >= 0 or a fraction between 0 and 1, "
                             f"got {size!r}")
        if self.test_path:
            if size not in ("auto", 0):
                raise ValueError(f"test_size {size!r} and test_path {self.test_path}: give a held-out test size or "
                                 "a test file, not both")
            self.test_size = 0

    @property
    def layout(self) -> Layout:
        """The run's :class:`~promoterlab.sequence.Layout` (saved as the three fields above)."""
        return Layout(self.seq_len, self.left_adapter, self.upstream)

    def __post_init__(self) -> None:
        # Every message starts with the field name (the command line turns it into its option).
        if self.train_size is not None:
            check_count("train_size", self.train_size, 1)
        check_count("val_size", self.val_size, 1, auto=True)
        self._check_test()
        check_count("seq_len", self.seq_len, 1)
        if isinstance(self.store, bool):  # YAML 1.1 reads a bare on/off as a boolean
            self.store = "on" if self.store else "off"
        if isinstance(self.store, os.PathLike):
            self.store = os.fspath(self.store)
        if not isinstance(self.store, str) or not self.store.strip():
            raise ValueError(f"store must be auto, on, off or the folder of a sequence store, got {self.store!r}")
        if self.clip_targets is not None:
            bounds = list(self.clip_targets) if isinstance(self.clip_targets, (list, tuple)) else []
            if (len(bounds) != 2 or not all(is_number(b) and math.isfinite(b) for b in bounds)
                    or not bounds[0] < bounds[1]):
                raise ValueError(f"clip_targets must be LOW,HIGH with LOW < HIGH, got {self.clip_targets!r}")


