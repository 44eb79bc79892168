"""Writing a converted model as an ordinary run folder, all files or none."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from torch import nn

from promoterlab.config import RunConfig
from promoterlab.files import write_text_atomic
from promoterlab.runs import CONFIG, MODEL, save_model


def write_run_folder(out: str | Path, model: nn.Module, config: RunConfig, texts: dict[str, str],
                     overwrite: bool = False) -> Path:
    """Write ``config.yaml``, the ``texts`` (file name -> content) and ``model.pt`` (last) into ``out``.

    The files are written into a staging folder beside ``out`` first: a new or empty ``out`` is
    then that folder renamed, so that a failure leaves nothing behind. With ``overwrite``, the same
    files in a non-empty ``out`` are replaced one by one (each atomically); other files there stay.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        If ``out`` exists and is not a folder, or holds files and ``overwrite`` is false.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory; give a directory for the run")
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not overwrite:
        raise ValueError(f"{out}: not empty; give a new or empty directory, or --overwrite to replace its "
                         "run files")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        config.save(staging / CONFIG)
        for name, text in texts.items():
            write_text_atomic(staging / name, text)
        save_model(model, config, staging)  # the file that marks a usable run: last
        if not occupied:
            if out.is_dir():
                out.rmdir()
            os.replace(staging, out)
            return out
        for name in (CONFIG, *texts, MODEL):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
