"""Keep Lightning's banners and unactionable warnings off a user's terminal."""

from __future__ import annotations

import logging
import warnings

QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*LeafSpec.*",
    r".*exists and is not empty.*",
    r".*smaller than the logging interval.*",
    # A budget that validates every k-th epoch checkpoints every epoch: no val_pearson in between.
    r".*could not find the monitored key.*",
)


def quiet_lightning() -> None:
    """Silence Lightning's banners ("GPU available", "💡 Tip", "Loading `train_dataloader`")
    and its warnings that a user cannot act on. For command lines and worker processes; a
    library import never calls it."""
    import lightning.pytorch  # noqa: F401  (importing it sets its loggers to INFO, so this comes after)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
