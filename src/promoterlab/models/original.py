"""``legnet-original``: LegNet exactly as published, with the low-rank bilinear squeeze-excitation.

The network of autosome-ru/LegNet (``legnet/model.py``, class ``SeqNN``; Penzar et al. 2023)
on promoterlab's backbone. It differs from ``legnet`` only inside the squeeze-excitation gate,
which between its two linear maps appends a bilinear term of the bottleneck ``y`` (``h`` values):

    z = [u, B(u)],  u = W2 SiLU(W1 mean(x)) + b2,  B(u)_o = sum_ij u_i u_j T_ijo + c_o,
    gate = sigmoid(W3 SiLU(z) + b3)

where ``T`` (``h x h x h/2``) is stored as a rank-``R`` CP decomposition (tensorly-torch's
``TRL`` with ``rank=0.5``: ``T_ijo = sum_r w_r A_ir B_jr C_or``). It is computed here in plain
torch without building ``T``: ``B(u) = ((u A) * (u B) * w) C^T + c``, which needs no
tensorly-torch and costs ``3 h R`` multiply-adds instead of ``h^2 h/2``.

With ``in_channels`` 5 (the original's ``use_single_channel=False``) the network has no
singleton channel and reads the first five of promoterlab's six input channels.
Weights of the original implementation are converted by :mod:`promoterlab.models.original_weights`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from promoterlab.models.registry import register
from promoterlab.models.legnet import LegNet, LegNetConfig, SqueezeExcitation

# tensorly-torch initialises the bilinear factors of LegNet's TRL with this standard deviation of
# the full tensor (``Bilinear`` in legnet/model.py), its CP weights with 1 and its bias U(-1, 1).
BILINEAR_INIT_STD = 0.00075


def cp_rank(shape: tuple[int, ...], fraction: float) -> int:
    """The CP rank tensorly gives a fractional ``rank``: round(fraction * prod(shape) / sum(shape)),
    at least 1 (narrow models would otherwise get none)."""
    return max(1, int(round(fraction * math.prod(shape) / sum(shape))))


@dataclass
class OriginalConfig(LegNetConfig):
    """LegNet hyperparameters plus the bilinear squeeze-excitation term.

    Parameters
    ----------
    bilinear_rank : float
        CP rank of each block's bilinear tensor as a fraction of its parameter count
        (tensorly's convention, the original's ``rank=0.5``).

    Notes
    -----
    ``in_channels`` is 6 (one-hot, ``is_reverse``, ``is_singleton``) or 5 (no singleton channel).
    The defaults are the DREAM 2022 configuration (1,852,846 parameters at 6 input channels).
    """

    name: str = "legnet-original"
    bilinear_rank: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.in_channels not in (5, 6):
            raise ValueError(f"in_channels must be 6 (with the is_singleton channel) or 5 (without), "
                             f"got {self.in_channels!r}")
        rank_ok = isinstance(self.bilinear_rank, (int, float)) and not isinstance(self.bilinear_rank, bool) \
            and math.isfinite(self.bilinear_rank) and self.bilinear_rank > 0
        if not rank_ok:
            raise ValueError(f"bilinear_rank must be a number > 0, got {self.bilinear_rank!r}")


class LowRankBilinear(nn.Module):
    """``[u, B(u)]``: ``u`` with its bilinear map appended (see the module docstring).

    Parameters
    ----------
    features : int
        Size ``h`` of ``u``.
    out_features : int
        Size of ``B(u)``.
    rank : int
        CP rank ``R`` of the bilinear tensor.
    """

    def __init__(self, features: int, out_features: int, rank: int):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(rank))
        std = (BILINEAR_INIT_STD / math.sqrt(rank)) ** (1 / 3)
        self.factor_left = nn.Parameter(torch.randn(features, rank) * std)
        self.factor_right = nn.Parameter(torch.randn(features, rank) * std)
        self.factor_out = nn.Parameter(torch.randn(out_features, rank) * std)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-1.0, 1.0))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        mixed = (u @ self.factor_left) * (u @ self.factor_right) * self.weights
        return torch.cat([u, mixed @ self.factor_out.t() + self.bias], dim=-1)

    def extra_repr(self) -> str:
        (features, rank), out = self.factor_left.shape, self.factor_out.shape[0]
        return f"features={features}, out_features={out}, rank={rank}"


class BilinearSqueezeExcitation(SqueezeExcitation):
    """Squeeze-excitation whose gate has the original's bilinear term (3D or planar input).

    Parameters
    ----------
    channels : int
        Channels scaled by the gate.
    hidden : int
        Bottleneck size ``h``; the bilinear term adds ``h // 2`` values.
    rank_fraction : float
        CP rank of the bilinear tensor as a fraction (:func:`cp_rank`).
    """

    def __init__(self, channels: int, hidden: int, rank_fraction: float):
        nn.Module.__init__(self)  # a gate of its own instead of the plain one
        extra = hidden // 2
        # Indices 0, 2, 3 and 5 hold parameters, as in the original's ``SELayer.fc``.
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
            LowRankBilinear(hidden, extra, cp_rank((hidden, hidden, extra), rank_fraction)), nn.SiLU(),
            nn.Linear(hidden + extra, channels), nn.Sigmoid(),
        )


class OriginalLegNet(LegNet):
    """LegNet with the bilinear squeeze-excitation in every block (``SeqNN`` of legnet/model.py)."""

    cfg: OriginalConfig

    def squeeze_excitation(self, channels: int, hidden: int) -> nn.Module:
        return BilinearSqueezeExcitation(channels, hidden, self.cfg.bilinear_rank)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # Without a singleton channel the network reads promoterlab's one-hot and is_reverse only.
        if self.cfg.in_channels == 5 and x.shape[1] == 6:
            x = x[:, :5]
        return super().features(x)


register("legnet-original", OriginalLegNet, OriginalConfig)
