"""``legnet-original`` against the outputs of the original LegNet code (../shared/fixtures/legnet_reference).

The fixtures hold state dicts of ``SeqNN`` (autosome-ru/LegNet legnet/model.py) in two
configurations and what that code returns in eval mode for 16 inputs in its own channel order
(A, G, C, T, is_reverse[, is_singleton]).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from promoterlab.sequence import encode, model_input
from promoterlab.models import build_model, count_parameters, model_config
from promoterlab.models.fold import fold_batchnorm
from promoterlab.models.original_weights import (
    OriginalWeightsError,
    architecture_from_state_dict,
    convert_state_dict,
    original_model,
    stem_permutation,
)

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "legnet_reference"
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/fixtures/legnet_reference not available")
NAMES = ("dream2022", "legnet_train_defaults")
# bf16 inference (autocast, BN folded, planar): measured at most 0.013 from fp32 on both fixtures.
BF16_TOLERANCE = 0.05


def load(name: str) -> tuple[dict, dict, dict]:
    """State dict, recorded inputs/outputs and constructor of a fixture."""
    state = torch.load(REFERENCE / f"{name}.state_dict.pt", map_location="cpu", weights_only=True)
    io = dict(np.load(REFERENCE / f"{name}.io.npz"))
    constructor = json.loads((REFERENCE / "constructors.json").read_text())[name]
    return state, io, constructor


def promoterlab_input(x: np.ndarray) -> torch.Tensor:
    """The fixture's inputs in promoterlab's channel order, 6 channels (singleton 0 when absent)."""
    x = torch.from_numpy(x)[:, stem_permutation(x.shape[1])]
    return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1) if x.shape[1] == 5 else x


def outputs(model: torch.nn.Module, x: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities over the bins and the expected bin, as the original's forward returns them."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x).float()
    return torch.log_softmax(logits, dim=1), (torch.softmax(logits, dim=1) * torch.arange(18)).sum(dim=1)


@pytest.mark.parametrize("name", NAMES)
def test_architecture_and_parameters_are_read_from_the_shapes(name):
    state, _, constructor = load(name)
    args = constructor["constructor"]
    assert len(state) == constructor["state_dict_keys"]
    cfg = architecture_from_state_dict(state, seq_len=args["seqsize"])
    assert cfg.name == "legnet-original" and cfg.seq_len == args["seqsize"]
    assert cfg.block_channels == args["block_sizes"] and cfg.kernel_size == args["ks"]
    assert cfg.in_channels == (6 if args["use_single_channel"] else 5)
    assert (cfg.expansion, cfg.se_reduction, cfg.n_bins) == (args["resize_factor"], args["se_reduction"],
                                                             args["final_ch"])
    assert cfg.channels_per_group == 2 and cfg.bilinear_rank == 0.5
    assert count_parameters(original_model(state)) == constructor["params"]
    # The registry builds the same network from the config alone.
    assert count_parameters(build_model(cfg, cfg.n_bins)) == constructor["params"]


def test_default_config_is_the_dream_network():
    assert count_parameters(build_model(model_config("legnet-original"), 18)) == 1_852_846


@pytest.mark.parametrize("name", NAMES)
def test_outputs_equal_the_original_in_float32(name):
    state, io, _ = load(name)
    model = original_model(state)
    model.planar_on_cpu = False
    logprobs, score = outputs(model, promoterlab_input(io["x"]))
    np.testing.assert_allclose(logprobs.numpy(), io["logprobs"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(score.numpy(), io["score"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_fast_paths_give_the_same_outputs(name):
    state, io, _ = load(name)
    model = original_model(state)
    assert model.planar_on_cpu  # planar channels-last layout and block-diagonal grouped convolutions
    assert any(m.merged > 1 for m in model.modules() if hasattr(m, "merged"))
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    for fast in (model, folded):
        logprobs, score = outputs(fast, promoterlab_input(io["x"]))
        np.testing.assert_allclose(logprobs.numpy(), io["logprobs"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(score.numpy(), io["score"], rtol=0, atol=1e-5)
    logprobs, score = outputs(folded, promoterlab_input(io["x"]), bf16=True)
    np.testing.assert_allclose(logprobs.numpy(), io["logprobs"], rtol=0, atol=BF16_TOLERANCE)
    np.testing.assert_allclose(score.numpy(), io["score"], rtol=0, atol=BF16_TOLERANCE)


@pytest.mark.parametrize("name", NAMES)
def test_promoterlab_encoding_is_fed_unchanged(name):
    """The original reads bases as A, G, C, T: its inputs, decoded that way and encoded by promoterlab,
    are what the converted model needs; unconverted channel order gives other outputs."""
    state, io, _ = load(name)
    x = io["x"]
    seqs = ["".join("AGCT"[i] for i in row) for row in x[:, :4].argmax(axis=1)]
    assert np.all(x[:, :4].sum(axis=1) == 1)
    singleton = torch.from_numpy(x[:, 5, 0]) if x.shape[1] == 6 else None
    encoded = model_input(torch.from_numpy(encode(seqs)), torch.from_numpy(x[:, 4, 0]), singleton)
    assert torch.equal(encoded, promoterlab_input(x))
    model = original_model(state)
    wrong, _ = outputs(model, torch.cat([torch.from_numpy(x), encoded[:, x.shape[1]:]], dim=1))
    assert (wrong - torch.from_numpy(io["logprobs"])).abs().max() > 1e-3


def test_without_singleton_channel_the_sixth_channel_is_ignored():
    state, io, _ = load("legnet_train_defaults")
    model = original_model(state)
    x = promoterlab_input(io["x"])
    flagged = x.clone()
    flagged[:, 5] = 1.0
    assert torch.equal(outputs(model, x)[0], outputs(model, flagged)[0])


def test_stem_channels_are_permuted_and_keys_renamed():
    state, _, _ = load("dream2022")
    converted = convert_state_dict(state)
    stem = state["seqextractor.blc0.0.weight"]
    assert torch.equal(converted["stem.0.weight"][:, 1], stem[:, 2])  # C <- the original's channel 2
    assert torch.equal(converted["stem.0.weight"][:, 2], stem[:, 1])  # G <- the original's channel 1
    assert torch.equal(converted["stem.0.weight"][:, 4:], stem[:, 4:])
    assert torch.equal(converted["blocks.0.branch.4.gate.3.factor_out"],
                       state["seqextractor.inv_res_blc0.6.fc.3.mod.trl.weight.factors.factor_2"])
    assert "bins" not in converted and len(converted) == len(state) - 1


def test_new_model_trains_every_parameter():
    model = build_model(model_config("legnet-original", width=0.125), 18).train()
    model(torch.randn(4, 6, 150)).logsumexp(dim=1).sum().backward()
    bilinear = model.blocks[0].branch[4].gate[3]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bilinear.parameters())


def _changed(state: dict, drop: str | None = None, add: dict | None = None, reshape: str | None = None) -> dict:
    state = dict(state)
    if drop:
        del state[drop]
    if reshape:
        state[reshape] = state[reshape][:-1]
    return {**state, **(add or {})}


@pytest.mark.parametrize("change, message", [
    (lambda s: build_model(model_config("legnet"), 18).state_dict(), "no tensor 'seqextractor.blc0.0.weight'"),
    (lambda s: {"config": {}, "state_dict": s}, "promoterlab model file"),
    (lambda s: [1, 2], "expected a state dict"),
    (lambda s: _changed(s, drop="seqextractor.inv_res_blc3.6.fc.3.mod.trl.weight.factors.factor_1"), "missing"),
    (lambda s: _changed(s, add={"seqextractor.inv_res_blc0.9.weight": torch.zeros(3)}),
     "unexpected tensor 'seqextractor.inv_res_blc0.9.weight'"),
    (lambda s: _changed(s, reshape="seqextractor.resize_blc2.1.running_var"),
     "seqextractor.resize_blc2.1.running_var has shape (63,)"),
    (lambda s: _changed(s, add={"mapper.0.weight": "18 bins"}), "'mapper.0.weight' is a str, not a tensor"),
])
def test_wrong_state_dict_is_a_clear_error(change, message):
    state, _, _ = load("dream2022")
    with pytest.raises(OriginalWeightsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        original_model(change(state))
