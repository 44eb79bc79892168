"""The training objective: what the model outputs, the loss, and how an output becomes a value.

One :class:`Objective` is the single definition that the model head (``n_outputs``), training
(``loss``, ``check_targets``) and prediction (``value``, ``average``) use:

- ``kl``: ``n_bins`` bin logits; targets on the 0..n_bins-1 sort-seq scale become soft labels,
  p_k = mass of Normal(e + 0.5, 0.5) in [k, k+1) with open outer bins (LegNet's DREAM recipe);
  the loss is the KL divergence; the value is the expected bin sum_k k * softmax_k.
- ``mse``: one value, mean squared error, any scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSSES = ("kl", "mse")
DEFAULT_BINS = 18  # the sort-seq bins of the DREAM and de Boer libraries (LegNet's head)
SOFT_LABEL_SIGMA = 0.5


def soft_labels(targets: torch.Tensor, n_bins: int, sigma: float = SOFT_LABEL_SIGMA) -> torch.Tensor:
    """Soft labels: mass of Normal(e + 0.5, sigma) in [k, k+1), outer bins open-ended.

    The expected bin index of the result is close to ``e`` away from the two ends.
    """
    edges = torch.arange(1, n_bins, dtype=torch.float64, device=targets.device)
    cdf = torch.special.ndtr((edges[None, :] - (targets.double()[:, None] + 0.5)) / sigma)
    cdf = F.pad(cdf, (1, 0), value=0.0)
    cdf = F.pad(cdf, (0, 1), value=1.0)
    return (cdf[:, 1:] - cdf[:, :-1]).to(torch.float32)


def expected_bin(logits: torch.Tensor) -> torch.Tensor:
    """Prediction from bin logits: sum_k k * softmax_k (in fp32 whatever the input precision)."""
    logits = logits.float()
    bins = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=1) * bins).sum(dim=1)


@dataclass(frozen=True)
class Objective:
    """A loss and the output it needs.

    Parameters
    ----------
    loss : str
        ``"kl"`` (soft bin labels) or ``"mse"``.
    n_bins : int
        Bins of the ``kl`` objective; targets must lie in ``0..n_bins - 1``.
    """

    loss: str = "kl"
    n_bins: int = DEFAULT_BINS

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if isinstance(self.n_bins, bool) or not isinstance(self.n_bins, int) or self.n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, not {self.n_bins!r}")

    @classmethod
    def of(cls, config) -> "Objective":
        """The objective of a :class:`~promoterlab.config.RunConfig` (loss and the model's bins)."""
        return cls(config.train.loss, int(config.model.n_bins))

    @property
    def n_outputs(self) -> int:
        """Model outputs: ``n_bins`` logits for ``kl``, one value for ``mse``."""
        return self.n_bins if self.loss == "kl" else 1

    def check_targets(self, targets: torch.Tensor, source: str = "the training data") -> None:
        """Refuse targets this objective cannot learn: constant ones, or off the bin scale for ``kl``."""
        if len(targets) and float(targets.max()) == float(targets.min()):
            raise ValueError(f"{source}: every target is {float(targets[0]):g}; a model cannot learn from "
                             "targets without variance")
        if self.loss == "kl" and len(targets) and (targets.min() < 0 or targets.max() > self.n_bins - 1):
            raise ValueError(
                f"--loss kl needs targets on the 0..{self.n_bins - 1} bin scale, but {source} spans "
                f"{float(targets.min()):.3g}..{float(targets.max()):.3g}; use --loss mse for other scales")

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        """What the output is compared with: soft bin labels (``kl``) or the targets (``mse``).

        ``kl`` targets may also be given as ``(batch, n_bins)`` bin probabilities (a teacher's,
        :mod:`promoterlab.training.distill`): they are the labels.
        """
        if self.loss == "kl":
            return targets.float() if targets.ndim == 2 else soft_labels(targets, self.n_bins)
        return targets.float()

    def target_values(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as values: themselves, or the expected bin of ``(batch, n_bins)`` probabilities."""
        if targets.ndim == 2:
            bins = torch.arange(targets.shape[1], dtype=torch.float32, device=targets.device)
            return (targets.float() * bins).sum(dim=1)
        return targets.float()

    def loss_value(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """KL divergence to the soft labels (batch mean), or mean squared error; computed in fp32."""
        if self.loss == "kl":
            return F.kl_div(F.log_softmax(output.float(), dim=1), self.labels(targets), reduction="batchmean")
        return F.mse_loss(output.float().reshape(-1), targets.float())

    def value(self, output: torch.Tensor) -> torch.Tensor:
        """Model output -> predicted expression (expected bin, or the value itself)."""
        return expected_bin(output) if self.loss == "kl" else output.float().reshape(-1)

    def average(self, output_fwd: torch.Tensor, output_rc: torch.Tensor) -> torch.Tensor:
        """Average the two strands' outputs: bin probabilities (returned as log-probabilities,
        still a valid logit vector) or values."""
        if self.loss == "kl":
            probs = (torch.softmax(output_fwd.float(), 1) + torch.softmax(output_rc.float(), 1)) / 2
            return probs.clamp_min(1e-12).log()
        return (output_fwd.float().reshape(-1) + output_rc.float().reshape(-1)) / 2

    @classmethod
    def from_output(cls, output: torch.Tensor) -> "Objective":
        """The objective a model's output shape implies: bins for ``(batch, k > 1)``, else a value.

        For :func:`promoterlab.predict` on any ``nn.Module`` trained elsewhere.
        """
        if output.ndim == 2 and output.shape[1] > 1:
            return cls("kl", int(output.shape[1]))
        return cls("mse")
