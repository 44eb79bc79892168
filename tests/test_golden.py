"""Golden values: LegNet's forward pass on fixed weights and input, the KL loss computed by hand
from the soft-label formula, and predictions that do not depend on the batch size."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

import promoterlab
from promoterlab.models import build_model, count_parameters, model_config
from promoterlab.objective import Objective


def fixed_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Every float parameter and buffer drawn from a generator seeded by its own name, so that the
    values do not depend on the order in which the model creates its layers: weight matrices
    N(0, 1/fan_in), BatchNorm scales 1 + N(0, 0.1²), biases and running means N(0, 0.1²),
    running variances 1 + |N(0, 0.1²)|."""
    state = model.state_dict()
    for name, value in state.items():
        if not value.is_floating_point():
            continue
        draw = torch.randn(value.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())),
                           dtype=torch.float64)
        if name.endswith("running_var"):
            draw = 1 + 0.1 * draw.abs()
        elif value.ndim >= 2:
            draw = draw * value[0].numel() ** -0.5
        elif name.endswith("weight"):
            draw = 1 + 0.1 * draw
        else:
            draw = 0.1 * draw
        state[name] = draw.to(value.dtype)
    model.load_state_dict(state)
    return model.eval()


def fixed_input() -> torch.Tensor:
    """Three one-hot sequences of 150 bp: plain, flagged reverse, flagged singleton."""
    pos = torch.arange(150)
    x = torch.zeros(3, 6, 150)
    for row in range(3):
        x[row, (pos * (row + 3) + pos // 7) % 4, pos] = 1.0
    x[1, 4] = 1.0
    x[2, 5] = 1.0
    return x


# Bins 0, 5, 9 and 17 of the three rows, computed once with the LegNet of this commit.
GOLDEN_BINS = [0, 5, 9, 17]
GOLDEN = [[0.00252164, -0.04712121, -0.04487039, 0.12046487],
          [0.00272232, -0.04718594, -0.04504972, 0.12034096],
          [0.00262138, -0.04708410, -0.04494050, 0.12031447]]


def golden_legnet() -> torch.nn.Module:
    return fixed_weights(build_model(model_config("legnet", width=0.125), 18))


def test_legnet_forward_matches_golden_output():
    model = golden_legnet()
    assert count_parameters(model) == 32_872
    with torch.no_grad():
        out = model(fixed_input())
    assert out.shape == (3, 18) and out.dtype == torch.float32
    np.testing.assert_allclose(out[:, GOLDEN_BINS].numpy(), GOLDEN, rtol=0, atol=1e-5)
    # The rows differ by far more than the tolerance: the golden values see the input and its flags.
    assert (out[1] - out[0]).abs().max() > 1e-4 and (out[2] - out[0]).abs().max() > 1e-4


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def soft_labels_by_hand(e: float) -> list[float]:
    """README: p_k = Φ((k+1 − (e+0.5))/0.5) − Φ((k − (e+0.5))/0.5), outer bins open-ended."""
    return [(1.0 if k == 17 else _phi((k + 1 - (e + 0.5)) / 0.5)) - (0.0 if k == 0 else _phi((k - (e + 0.5)) / 0.5))
            for k in range(18)]


def test_kl_loss_matches_the_soft_label_formula():
    targets = [8.0, 0.25, 16.6]
    logits = [[0.0] * 18, [-0.1 * k for k in range(18)], [math.sin(k) for k in range(18)]]
    by_hand = 0.0
    for e, row in zip(targets, logits):
        labels = soft_labels_by_hand(e)
        assert sum(labels) == pytest.approx(1.0, abs=1e-12)
        log_norm = math.log(sum(math.exp(v) for v in row))
        by_hand += sum(p * (math.log(p) - (z - log_norm)) for p, z in zip(labels, row) if p > 0)
    by_hand /= len(targets)  # batch mean
    assert by_hand == pytest.approx(2.22146119, abs=1e-8)
    assert soft_labels_by_hand(8.0)[8] == pytest.approx(0.68268949, abs=1e-8)  # Φ(1) − Φ(−1)
    loss = Objective("kl", 18).loss_value(torch.tensor(logits), torch.tensor(targets))
    assert float(loss) == pytest.approx(by_hand, abs=1e-5)


def test_mse_loss_is_the_mean_squared_error():
    loss = Objective("mse").loss_value(torch.tensor([1.0, 2.0, 4.5]), torch.tensor([0.0, 2.0, 3.5]))
    assert float(loss) == pytest.approx((1 + 0 + 1) / 3)


def briefly_trained_legnet() -> torch.nn.Module:
    """A seeded LegNet after five AdamW steps on random sequences: its BatchNorm statistics and
    weights are no longer the initial ones, and its predictions differ between inputs."""
    torch.manual_seed(0)
    model = build_model(model_config("legnet", width=0.125), 18).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        codes = torch.randint(0, 4, (32, 150), generator=generator)
        x = torch.nn.functional.one_hot(codes, 6).float().transpose(1, 2)
        optimizer.zero_grad()
        Objective("kl", 18).loss_value(model(x), codes[:, :10].float().sum(1) / 30 * 17).backward()
        optimizer.step()
    return model.eval()


def test_predict_does_not_depend_on_the_batch_size():
    model = briefly_trained_legnet()
    codes = torch.randint(0, 4, (70, 150), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    one = promoterlab.predict(model, codes, batch_size=1)
    many = promoterlab.predict(model, codes, batch_size=64)  # one full batch and a remainder of 6
    assert one.shape == many.shape == (70,)
    np.testing.assert_allclose(one, many, rtol=1e-6, atol=1e-6)  # float32 carries ~7 digits of 8.5
    assert np.ptp(one) > 5e-4  # distinct inputs give distinct predictions, far beyond the tolerance
    assert ((one > 0) & (one < 17)).all()  # expected bins
