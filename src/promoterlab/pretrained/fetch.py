"""Download published LegNet weights, verify them and convert them into a promoterlab run folder.

:func:`download_weights` fetches a registry entry's file into the data directory
(``DATA_DIR/pretrained/NAME/``) with :func:`promoterlab.datasets.transfer.download_file`:
resumed after an interruption, checked against the entry's git blob id, placed only when
complete and correct. :func:`import_weights` converts an original state dict (a downloaded or a
local file) into a run folder that every command loads like a trained run: ``config.yaml``,
``model.pt``, ``summary.json`` and a model card ``README.md``. :func:`fetch_pretrained` does both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from promoterlab.version import __version__
from promoterlab.config import DataConfig, RunConfig, TrainConfig
from promoterlab.sequence import Layout
from promoterlab.datasets.download import resolve_data_dir
from promoterlab.datasets.transfer import ChecksumError, DownloadError, check_file, download_file, file_digests
from promoterlab.models import count_parameters
from promoterlab.models.original_weights import OriginalWeightsError, original_model
from promoterlab.pretrained.card import model_card, run_summary
from promoterlab.pretrained.registry import PretrainedModel, get_pretrained
from promoterlab.pretrained.run_folder import write_run_folder
from promoterlab.runs import CARD, SUMMARY

_BASES = set("ACGTN")


def weights_path(entry: PretrainedModel, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the entry's file is kept: ``DATA_DIR/pretrained/NAME/FILE``."""
    return resolve_data_dir(data_dir) / "pretrained" / entry.name / entry.filename


def download_weights(entry: PretrainedModel | str, data_dir: str | os.PathLike[str] | None = None, *,
                     base_url: str | None = None, progress: bool = True, retries: int = 3) -> Path:
    """The verified weight file of ``entry``, downloaded unless a verified copy is in place.

    Parameters
    ----------
    entry : PretrainedModel or str
        Registry entry or its name.
    data_dir : path-like, optional
        Root data directory (see :func:`~promoterlab.datasets.resolve_data_dir`).
    base_url : str, optional
        Base address (default ``$PROMOTERLAB_MODELS_URL``, else GitHub's raw files).
    progress : bool
        Show a progress bar.
    retries : int
        Resumes of an interrupted transfer within this call.

    Raises
    ------
    ChecksumError
        If the downloaded file's git blob id differs from the entry's: the file is removed and
        nothing is placed.
    DownloadError
        If the transfer fails; an interrupted partial file is kept and resumed by the next call.
    """
    entry = get_pretrained(entry) if isinstance(entry, str) else entry
    target = weights_path(entry, data_dir)
    if target.is_file():
        try:
            check_file(target, git_blob=entry.git_blob)
            return target
        except ChecksumError:
            pass  # a damaged copy: downloaded again, replaced only once the new one is verified
    created = [p for p in (target.parent, *target.parents[1:3]) if not p.exists()]
    try:
        download_file(entry.url(base_url), target, git_blob=entry.git_blob, progress=progress, retries=retries)
    except ChecksumError as err:
        for folder in created:  # leave no empty folders behind a refused file
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise ChecksumError(f"{entry.name}: {err}; the published file has git blob id {entry.git_blob}") from None
    return target


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in a ``.pth`` file, loaded without running code from it (``weights_only``).

    Raises
    ------
    ValueError
        If the file cannot be read as a PyTorch file of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file raises errors of many types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a PyTorch state dict, or cut short ({first[:200]})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def check_layout(layout: Layout) -> None:
    """Refuse adapters or flanks with letters other than A, C, G, T, N (messages name the option)."""
    for name, value in (("left_adapter", layout.left_adapter), ("upstream", layout.upstream)):
        bad = set(value.upper()) - _BASES
        if bad:
            raise ValueError(f"{name} must be DNA (A, C, G, T, N), found {''.join(sorted(bad))!r}")


def import_weights(path: str | os.PathLike[str], out: str | os.PathLike[str], layout: Layout = Layout(),
                   entry: PretrainedModel | None = None, url: str | None = None,
                   overwrite: bool = False) -> Path:
    """Convert an original LegNet state dict file into a run folder.

    Parameters
    ----------
    path : path-like
        ``SeqNN.state_dict()`` saved by ``torch.save`` (e.g. a ``model_80.pth`` of autosome-ru/LegNet).
    out : path-like
        Run folder to write (new or empty, unless ``overwrite``).
    layout : Layout
        How sequences are placed in the model's window (``seq_len``, ``left_adapter``,
        ``upstream``); the singleton channel is read from the weights.
    entry : PretrainedModel, optional
        The registry entry the file was downloaded for (its facts go into the model card).
    url : str, optional
        Where the file came from, recorded in ``summary.json``.
    overwrite : bool
        Replace the run files in a non-empty ``out``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        If the file is not an original LegNet state dict, the layout is invalid, the weights
        contradict the registry entry, or ``out`` cannot be written.
    """
    check_layout(layout)
    state = read_state_dict(path)
    try:
        model = original_model(state, layout.seq_len)
    except OriginalWeightsError as err:
        raise ValueError(f"{path}: {err}") from None
    singleton = model.cfg.in_channels == 6
    if entry is not None and entry.singleton_channel != singleton:
        raise ValueError(f"{path}: the weights read {model.cfg.in_channels} input channels, but {entry.name} is "
                         f"registered {'with' if entry.singleton_channel else 'without'} a singleton channel")
    config = RunConfig(
        data=DataConfig(seq_len=layout.seq_len, left_adapter=layout.left_adapter, upstream=layout.upstream,
                        singleton_channel=singleton),
        model=model.cfg, train=TrainConfig(loss="kl", ensemble=1),
        seed=entry.seed if entry and entry.seed is not None else 0, version=__version__)
    digests = file_digests(path, git_blob=True)
    weights = {"file": Path(path).name if entry else str(Path(path).resolve()), "url": url, **digests}
    weights.pop("md5")
    summary = run_summary(config, count_parameters(model), weights, entry)
    texts = {SUMMARY: json.dumps(summary, indent=2) + "\n", CARD: model_card(summary)}
    return write_run_folder(out, model, config, texts, overwrite=overwrite)


def fetch_pretrained(entry: PretrainedModel | str, out: str | os.PathLike[str],
                     data_dir: str | os.PathLike[str] | None = None, *, base_url: str | None = None,
                     progress: bool = True, retries: int = 3, overwrite: bool = False) -> Path:
    """Download (or reuse) a published model's verified weights and convert them into the run folder ``out``.

    Raises
    ------
    ChecksumError, DownloadError
        As :func:`download_weights`; ``out`` is then not created.
    ValueError
        As :func:`import_weights`.
    """
    entry = get_pretrained(entry) if isinstance(entry, str) else entry
    if Path(out).is_dir() and any(Path(out).iterdir()) and not overwrite:  # before a download, not after
        raise ValueError(f"{out}: not empty; give a new or empty directory, or --overwrite to replace its "
                         "run files")
    path = download_weights(entry, data_dir, base_url=base_url, progress=progress, retries=retries)
    layout = Layout(entry.seq_len, entry.left_adapter, entry.upstream)
    return import_weights(path, out, layout, entry=entry, url=entry.url(base_url), overwrite=overwrite)


__all__ = ["ChecksumError", "DownloadError", "check_layout", "download_weights", "fetch_pretrained",
           "import_weights", "read_state_dict", "weights_path"]
