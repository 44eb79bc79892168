"""Weights of the original LegNet implementation (``SeqNN`` of autosome-ru/LegNet) as ``legnet-original``.

:func:`architecture_from_state_dict` reads the architecture from the tensor shapes of an original
state dict; :func:`convert_state_dict` renames its tensors to promoterlab's modules;
:func:`original_model` does both and returns the loaded network.

Channel order: the original encodes bases as A, G, C, T (``CODES`` in legnet/train.py:
A=0, G=1, C=2, T=3), promoterlab as A, C, G, T (:mod:`promoterlab.sequence`). The converter
permutes the input channels of the stem's weight, so that promoterlab's encoding is fed
unchanged; the flag channels (``is_reverse``, ``is_singleton``) keep their places.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from promoterlab.models.original import OriginalConfig, OriginalLegNet, cp_rank

ORIGINAL_BASES = "AGCT"
PROMOTERLAB_BASES = "ACGT"
_PREFIX = "seqextractor."
_STEM = f"{_PREFIX}blc0.0.weight"
_HEAD = "mapper.0.weight"

# (pattern on an original key, promoterlab key); \1 is the block index where there is one.
_RULES = [(re.compile(pattern), target) for pattern, target in (
    (r"seqextractor\.blc0\.0\.weight", "stem.0.weight"),
    (r"seqextractor\.blc0\.1\.(\w+)", r"stem.1.\1"),
    (r"seqextractor\.inv_res_blc(\d+)\.0\.weight", r"blocks.\1.branch.0.0.weight"),
    (r"seqextractor\.inv_res_blc(\d+)\.1\.(\w+)", r"blocks.\1.branch.0.1.\2"),
    (r"seqextractor\.inv_res_blc(\d+)\.3\.weight", r"blocks.\1.branch.1.weight"),
    (r"seqextractor\.inv_res_blc(\d+)\.4\.(\w+)", r"blocks.\1.branch.2.\2"),
    (r"seqextractor\.inv_res_blc(\d+)\.6\.fc\.([025])\.(weight|bias)", r"blocks.\1.branch.4.gate.\2.\3"),
    (r"seqextractor\.inv_res_blc(\d+)\.6\.fc\.3\.mod\.trl\.bias", r"blocks.\1.branch.4.gate.3.bias"),
    (r"seqextractor\.inv_res_blc(\d+)\.6\.fc\.3\.mod\.trl\.weight\.weights", r"blocks.\1.branch.4.gate.3.weights"),
    (r"seqextractor\.inv_res_blc(\d+)\.6\.fc\.3\.mod\.trl\.weight\.factors\.factor_0",
     r"blocks.\1.branch.4.gate.3.factor_left"),
    (r"seqextractor\.inv_res_blc(\d+)\.6\.fc\.3\.mod\.trl\.weight\.factors\.factor_1",
     r"blocks.\1.branch.4.gate.3.factor_right"),
    (r"seqextractor\.inv_res_blc(\d+)\.6\.fc\.3\.mod\.trl\.weight\.factors\.factor_2",
     r"blocks.\1.branch.4.gate.3.factor_out"),
    (r"seqextractor\.inv_res_blc(\d+)\.7\.weight", r"blocks.\1.branch.5.0.weight"),
    (r"seqextractor\.inv_res_blc(\d+)\.8\.(\w+)", r"blocks.\1.branch.5.1.\2"),
    (r"seqextractor\.resize_blc(\d+)\.0\.weight", r"blocks.\1.mix.0.weight"),
    (r"seqextractor\.resize_blc(\d+)\.1\.(\w+)", r"blocks.\1.mix.1.\2"),
    (r"mapper\.0\.(weight|bias)", r"head.bins.\1"),
)]
_DROPPED = ("bins",)  # the original's constant arange(18) buffer for the expected bin


class OriginalWeightsError(ValueError):
    """A state dict that is not one of the original LegNet ``SeqNN``; the message says what is wrong."""


def _tensors(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """The state dict's tensors, without a ``module.`` prefix (``nn.DataParallel``) on every key."""
    if not isinstance(state_dict, Mapping):
        raise OriginalWeightsError(f"expected a state dict (a mapping of names to tensors), got "
                                   f"{type(state_dict).__name__}")
    if {"config", "state_dict"} <= set(state_dict):
        raise OriginalWeightsError("this is a promoterlab model file (config and state_dict), not the state dict "
                                   "of the original LegNet; load it with load_run")
    tensors = {str(k): v for k, v in state_dict.items()}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    bad = next((k for k, v in tensors.items() if not torch.is_tensor(v)), None)
    if bad is not None:
        raise OriginalWeightsError(f"entry {bad!r} is a {type(tensors[bad]).__name__}, not a tensor; "
                                   "expected the state dict of the original LegNet (SeqNN)")
    for key in (_STEM, _HEAD, f"{_PREFIX}resize_blc0.0.weight"):
        if key not in tensors:
            raise OriginalWeightsError(f"no tensor {key!r}: not a state dict of the original LegNet (SeqNN of "
                                       f"autosome-ru/LegNet legnet/model.py); its first keys are "
                                       f"{', '.join(list(tensors)[:3]) or 'none'}")
    if any(".core" in k for k in tensors):
        raise OriginalWeightsError("the bilinear term is stored as a Tucker decomposition (a core tensor); only the "
                                   "CP factorisation of the published code (weights and factors) is supported")
    return tensors


def _shape(tensors: dict[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    if key not in tensors:
        raise OriginalWeightsError(f"no tensor {key!r}: the state dict of the original LegNet is incomplete")
    shape = tuple(tensors[key].shape)
    if len(shape) != ndim:
        raise OriginalWeightsError(f"{key} has shape {shape}; expected {ndim} dimensions")
    return shape


def architecture_from_state_dict(state_dict: Mapping, seq_len: int = 150) -> OriginalConfig:
    """The ``legnet-original`` config of an original LegNet state dict, read from its tensor shapes.

    Parameters
    ----------
    state_dict : mapping
        ``SeqNN.state_dict()`` of autosome-ru/LegNet (as saved in its ``model_*.pth`` files).
    seq_len : int
        Input length (the original's ``seqsize``); the weights do not depend on it.

    Returns
    -------
    OriginalConfig
        Block channels, kernel size, input channels (6 with the singleton channel, 5 without),
        expansion, SE reduction, channels per group, bins and the bilinear rank fraction.

    Raises
    ------
    OriginalWeightsError
        If the state dict is not one of ``SeqNN`` or its shapes fit no ``legnet-original``.
    """
    tensors = _tensors(state_dict)
    c0, in_channels, kernel = _shape(tensors, _STEM, 3)
    channels = [c0]
    while f"{_PREFIX}resize_blc{len(channels) - 1}.0.weight" in tensors:
        channels.append(_shape(tensors, f"{_PREFIX}resize_blc{len(channels) - 1}.0.weight", 3)[0])
    inner = _shape(tensors, f"{_PREFIX}inv_res_blc0.0.weight", 3)[0]
    per_group = _shape(tensors, f"{_PREFIX}inv_res_blc0.3.weight", 3)[1]
    hidden = _shape(tensors, f"{_PREFIX}inv_res_blc0.6.fc.0.weight", 2)[0]
    rank = _shape(tensors, f"{_PREFIX}inv_res_blc0.6.fc.3.mod.trl.weight.factors.factor_0", 2)[1]
    n_bins = _shape(tensors, _HEAD, 3)[0]
    if min(channels) < 1 or hidden < 1 or inner % channels[1] or c0 // hidden < 1:
        raise OriginalWeightsError(f"block 0 expands to {inner} channels with an SE bottleneck of {hidden}: "
                                   f"no LegNet block of {c0} -> {channels[1]} channels")
    # The published code uses rank 0.5; another fraction is read from the first block's rank.
    size = hidden * hidden * (hidden // 2)
    candidates = (0.5, rank * (2 * hidden + hidden // 2) / size) if size else (0.5,)
    fraction = next((f for f in candidates
                     if all(_block_rank(tensors, i) in (None, cp_rank(_block_shape(tensors, i), f))
                            for i in range(len(channels) - 1))), None)
    if fraction is None:
        raise OriginalWeightsError("the CP ranks of the bilinear terms fit no single rank fraction")
    try:
        config = OriginalConfig(in_channels=in_channels, seq_len=seq_len, block_channels=channels,
                                kernel_size=kernel, expansion=inner // channels[1], se_reduction=c0 // hidden,
                                channels_per_group=per_group, n_bins=n_bins, bilinear_rank=fraction)
    except ValueError as err:
        raise OriginalWeightsError(f"the tensor shapes give no legnet-original: {err}") from None
    if config.channels() != channels:
        raise OriginalWeightsError(f"block channels {channels} include odd counts, which legnet-original cannot "
                                   "hold")
    return config


def _block_shape(tensors: dict[str, torch.Tensor], block: int) -> tuple[int, int, int]:
    hidden = _shape(tensors, f"{_PREFIX}inv_res_blc{block}.6.fc.0.weight", 2)[0]
    return hidden, hidden, hidden // 2


def _block_rank(tensors: dict[str, torch.Tensor], block: int) -> int | None:
    key = f"{_PREFIX}inv_res_blc{block}.6.fc.3.mod.trl.weight.factors.factor_0"
    return tensors[key].shape[-1] if key in tensors else None  # a missing tensor is reported later


def stem_permutation(in_channels: int) -> list[int]:
    """Original input channel of each promoterlab input channel (bases reordered, flags kept)."""
    return [ORIGINAL_BASES.index(base) for base in PROMOTERLAB_BASES] + list(range(4, in_channels))


def convert_state_dict(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """An original LegNet state dict renamed to ``legnet-original``'s modules, stem reordered.

    Raises
    ------
    OriginalWeightsError
        For a tensor that the original ``SeqNN`` does not have.
    """
    return _convert(_tensors(state_dict))[0]


def _convert(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Converted tensors, and the original name of each (for messages)."""
    converted, sources = {}, {}
    for key, value in tensors.items():
        if key in _DROPPED:
            continue
        target = next((rule.sub(new, key) for rule, new in _RULES if rule.fullmatch(key)), None)
        if target is None:
            raise OriginalWeightsError(f"unexpected tensor {key!r} {tuple(value.shape)}: not part of the original "
                                       "LegNet (SeqNN)")
        converted[target], sources[target] = value.detach().clone(), key
    stem = converted["stem.0.weight"]
    converted["stem.0.weight"] = stem[:, stem_permutation(stem.shape[1])].contiguous()
    return converted, sources


def original_model(state_dict: Mapping, seq_len: int = 150) -> OriginalLegNet:
    """The ``legnet-original`` network holding an original LegNet state dict, in eval mode.

    Raises
    ------
    OriginalWeightsError
        If the state dict is not one of ``SeqNN``, or tensors are missing or have other shapes
        than its architecture needs.
    """
    from promoterlab.models import build_model

    config = architecture_from_state_dict(state_dict, seq_len)
    converted, sources = _convert(_tensors(state_dict))
    model = build_model(config, config.n_bins)
    expected = model.state_dict()
    missing = [k for k in expected if k not in converted]
    if missing:
        raise OriginalWeightsError(f"{len(missing)} tensor(s) missing from the original state dict for the "
                                   f"architecture its shapes describe (promoterlab name of the first: {missing[0]})")
    for key, value in converted.items():
        if key not in expected:
            raise OriginalWeightsError(f"unexpected tensor {sources[key]!r} for the architecture the shapes "
                                       f"describe ({len(config.block_channels) - 1} blocks)")
        if value.shape != expected[key].shape:
            raise OriginalWeightsError(f"{sources[key]} has shape {tuple(value.shape)}; the architecture read "
                                       f"from the state dict needs {tuple(expected[key].shape)}")
    model.load_state_dict(converted)
    return model.eval()
