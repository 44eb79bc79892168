"""Equivalent ways of computing a model's layers, chosen per model instance.

Each formulation computes the same function with the same parameters (state dicts do not
change), but which is fastest depends on the CPU and the precision:

- ``block_channels``: LegNet's k=7 convolution with 2 channels per group as the stock grouped
  kernel (1) or as a block-diagonal convolution of wide groups of that many input channels
  (:class:`~promoterlab.models.grouped_conv.BlockGroupedConv1d`). Block-diagonal is about 2x
  faster in bf16; in fp32 the stock kernel on planar tensors is 1.5-2.5x faster, with AVX-512
  and with AVX2 alike (loaded 2-core Xeon, the layer's forward and backward).
- ``planar``: stem and blocks on ``(batch, C, 1, L)`` channels-last tensors instead of
  ``(batch, C, L)`` (:mod:`promoterlab.models.layers`).

:func:`default_kernels` is the rule used when nothing was measured; the training layer times
the :func:`kernel_candidates` on the machine and caches its choice
(:mod:`promoterlab.models.autotune`); :func:`apply_kernels` sets one on a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from promoterlab.models.grouped_conv import BlockGroupedConv1d


@dataclass(frozen=True)
class Kernels:
    """How a model's layers compute (the function is the same for every value).

    Parameters
    ----------
    block_channels : int
        Input channels per wide group of the grouped convolutions (1: the stock grouped kernel).
    planar : bool
        Stem and blocks on planar channels-last tensors on a CPU.
    """

    block_channels: int = 32
    planar: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.block_channels, bool) or not isinstance(self.block_channels, int) \
                or self.block_channels < 1:
            raise ValueError(f"block_channels must be an integer >= 1, got {self.block_channels!r}")

    @property
    def label(self) -> str:
        """Short name, e.g. ``planar/grouped`` or ``3d/block32``."""
        conv = "grouped" if self.block_channels == 1 else f"block{self.block_channels}"
        return f"{'planar' if self.planar else '3d'}/{conv}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Kernels:
        return cls(block_channels=int(values["block_channels"]), planar=bool(values["planar"]))


# The reference code's way: stock grouped kernel on (batch, C, L) tensors.
PLAIN_KERNELS = Kernels(block_channels=1, planar=False)
BF16_KERNELS = Kernels(block_channels=32, planar=True)
FP32_KERNELS = Kernels(block_channels=1, planar=True)


def is_bf16(precision: str) -> bool:
    """Whether a precision setting (``"32"``, ``"bf16-mixed"``, ``"bf16"``, ...) computes in bf16."""
    return "bf16" in str(precision)


def default_kernels(precision: str) -> Kernels:
    """The formulation used when none was measured: block-diagonal in bf16, stock in fp32."""
    return BF16_KERNELS if is_bf16(precision) else FP32_KERNELS


def kernel_candidates(precision: str) -> list[Kernels]:
    """Formulations worth timing for ``precision``, the likeliest winner first."""
    first = default_kernels(precision)
    others = [Kernels(1, True), Kernels(16, True), Kernels(32, True), Kernels(1, False), Kernels(32, False)]
    return [first, *(k for k in others if k != first)]


def apply_kernels(model: nn.Module, kernels: Kernels) -> nn.Module:
    """Set ``kernels`` on every layer of ``model`` (in place; returns ``model``).

    Only this model instance changes; copies made before keep their formulation.
    """
    for module in model.modules():
        if isinstance(module, BlockGroupedConv1d):
            module.set_block(kernels.block_channels)
        if hasattr(module, "planar_on_cpu"):
            module.planar_on_cpu = kernels.planar
    return model


def kernels_of(model: nn.Module) -> Kernels | None:
    """The formulation ``model`` computes with (``None`` for a model with no such layers).

    Read from its first grouped convolution and first planar-capable module.
    """
    block = next((m.block for m in model.modules() if isinstance(m, BlockGroupedConv1d)), None)
    planar = next((m.planar_on_cpu for m in model.modules() if hasattr(m, "planar_on_cpu")), None)
    if block is None and planar is None:
        return None
    return Kernels(block_channels=block if block is not None else 1, planar=bool(planar))
