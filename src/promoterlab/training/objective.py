"""The two training objectives and how a model output becomes an expression value."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from promoterlab.data.encoding import expected_bin, soft_labels

N_BINS = 18


def n_outputs(loss: str) -> int:
    """Output size of the model for ``loss``: 18 bin logits for KL, one value for MSE."""
    return N_BINS if loss == "kl" else 1


def check_targets(loss: str, targets: torch.Tensor, source: str = "the training data") -> None:
    """KL soft labels live on the 0..17 sort-seq scale; refuse anything else."""
    if loss == "kl" and len(targets) and (targets.min() < 0 or targets.max() > N_BINS - 1):
        raise ValueError(
            f"--loss kl needs targets on the 0..{N_BINS - 1} bin scale, but {source} spans "
            f"{float(targets.min()):.3g}..{float(targets.max()):.3g}; use --loss mse for other scales")


def loss_fn(loss: str, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL divergence to the soft labels (batch mean), or mean squared error."""
    if loss == "kl":
        labels = soft_labels(targets.detach().cpu(), N_BINS).to(output.device)
        return F.kl_div(F.log_softmax(output.float(), dim=1), labels, reduction="batchmean")
    return F.mse_loss(output.float(), targets.float())


def to_value(output: torch.Tensor) -> torch.Tensor:
    """Bin logits -> expected bin; a scalar output is returned as is."""
    return expected_bin(output.float()) if output.ndim == 2 and output.shape[1] > 1 else output.float().reshape(-1)


def averaged_output(output_fwd: torch.Tensor, output_rc: torch.Tensor) -> torch.Tensor:
    """Average forward and reverse-complement outputs: bin probabilities (as log-probabilities,
    so the result is still a valid logit vector) or values."""
    if output_fwd.ndim == 2 and output_fwd.shape[1] > 1:
        probs = (torch.softmax(output_fwd.float(), 1) + torch.softmax(output_rc.float(), 1)) / 2
        return probs.clamp_min(1e-12).log()
    return (output_fwd.float() + output_rc.float()) / 2
