"""LegNet architecture: golden parameter count, shapes, registry."""

from __future__ import annotations

import pytest
import torch

from promoterlab.models import build_model, count_parameters, model_config, model_names
from promoterlab.models.legnet import LegNet, LegNetConfig


def test_full_legnet_has_the_published_parameter_count():
    # 1,725,122 = published LegNet (DREAM 2022 setting) without the bilinear SE term
    assert count_parameters(build_model(model_config("legnet"), 18)) == 1_725_122


def test_legnet_s_is_half_width():
    cfg = model_config("legnet-s")
    assert cfg.channels() == [c // 2 for c in model_config("legnet").channels()]
    assert count_parameters(build_model(cfg, 18)) == 444_778
    assert model_config("legnet-s", width=0.25).width == 0.25
    assert {"legnet", "legnet-s"} <= set(model_names())


def test_block_structure_follows_the_reference():
    model = build_model(model_config("legnet"), 18)
    first = model.blocks[0]
    expand, grouped = first.branch[0][0], first.branch[1]
    assert (expand.in_channels, expand.out_channels) == (256, 512)  # 4 x the block's output channels
    assert grouped.groups == 256 and grouped.kernel_size == (7,)
    assert first.branch[4].gate[0].out_features == 64  # SE bottleneck: input channels / 4
    assert (first.mix[0].in_channels, first.mix[0].out_channels) == (512, 128)


@pytest.mark.parametrize("n_outputs, shape", [(18, (3, 18)), (1, (3,))])
def test_output_shapes(n_outputs, shape):
    model = LegNet(LegNetConfig(width=0.125), n_outputs)
    assert model(torch.randn(3, 6, 150)).shape == shape


def test_initialisation():
    model = build_model(model_config("legnet"), 18)
    stem = model.stem[0].weight
    assert stem.std().item() == pytest.approx((2 / (7 * 256)) ** 0.5, rel=0.1)
    linear = model.blocks[0].branch[4].gate[0].weight
    assert linear.std().item() == pytest.approx(0.001, rel=0.1)


def test_unknown_model_and_setting():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_config("nope")
    with pytest.raises(ValueError, match="has no setting colour"):
        model_config("legnet", colour=1)
