"""A run's models as a design and selection oracle: mean and sd of many sequences at once, the
gradient of a design score with respect to the bases, and an embedding for diversity.

Everything here takes ``(n, L)`` uint8 codes already laid out in the run's window
(:meth:`ModelScorer.window_codes` places inserts between a design space's flanks).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from promoterlab.data.dataset import encode_sequences
from promoterlab.design.constraints import DesignSpace
from promoterlab.evaluation.calibration import Calibration, member_moments, scale_features
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE
from promoterlab.sequence import tangermeme_one_hot
from promoterlab.interpret.wrapper import OneHotExpression
from promoterlab.models.fold import fold_batchnorm
from promoterlab.runs import Run

GRADIENT_BATCH_SIZE = 64


class ModelScorer:
    """The members of a run (one model or an ensemble), loaded once.

    Parameters
    ----------
    run : Run
        The trained run.
    device, precision, batch_size
        As for :func:`~promoterlab.evaluation.predict.predict`.
    """

    def __init__(self, run: Run, device: str = "cpu", precision: str = "auto",
                 batch_size: int = PREDICT_BATCH_SIZE):
        self.run = run
        loaded = run.load_members(device)
        self.models = [model for model, _ in loaded]
        self.members = [(fold_batchnorm(model), config) for model, config in loaded]
        self.layout = loaded[0][1].data.layout
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.evaluations = 0

    @property
    def n_models(self) -> int:
        return len(self.members)

    def window_codes(self, inserts: np.ndarray, space: DesignSpace) -> np.ndarray:
        """Inserts placed between the space's flanks in the run's window: ``(n, seq_len)``.

        Raises
        ------
        ValueError
            When the insert and the right flank do not fit into the window.
        """
        offset = self.insert_offset(space)
        template = encode_sequences([space.left + "A" * space.length + space.right], self.layout).numpy()[0]
        codes = np.repeat(template[None], len(inserts), axis=0)
        codes[:, offset:offset + space.length] = inserts
        return codes

    def insert_offset(self, space: DesignSpace) -> int:
        """Where the insert starts in the window (the sequence ends at the window's end)."""
        offset = self.layout.seq_len - len(space.right) - space.length
        if offset < 0:
            raise ValueError(f"a {space.length} bp insert with a {len(space.right)} bp right flank does not fit into "
                             f"the model's {self.layout.seq_len} bp window")
        return offset

    def predict(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd (0 for one model) over the members, RC-averaged, of laid-out codes."""
        self.evaluations += len(codes)
        moments = member_moments(self.members, codes, self.batch_size, self.device, self.precision, fold=False,
                                 second_moment=False)
        return moments.mean, moments.sd

    def interval(self, codes: np.ndarray, calibration: Calibration, level: float) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated ``level`` interval of laid-out codes."""
        moments = member_moments(self.members, codes, self.batch_size, self.device, self.precision, fold=False,
                                 second_moment=calibration.feature == "predictive_sd")
        return calibration.interval(moments.mean, scale_features(moments), level)

    def gradient(self, codes: np.ndarray, score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                 ) -> np.ndarray:
        """``(n, 4, L)`` gradient of ``score(mean, sd)`` (per sequence) with respect to the one-hot
        bases of laid-out ``codes``, in fp32, through every member."""
        wrapped = [OneHotExpression(model).to(self.device).eval() for model in self.models]
        grads = []
        for begin in range(0, len(codes), GRADIENT_BATCH_SIZE):
            x = tangermeme_one_hot(codes[begin:begin + GRADIENT_BATCH_SIZE]).float().to(self.device).requires_grad_(True)
            values = torch.stack([model(x)[:, 0] for model in wrapped])
            mean, sd = values.mean(dim=0), values.std(dim=0, unbiased=False) if len(wrapped) > 1 else values[0] * 0
            score(mean, sd).sum().backward()
            grads.append(x.grad.detach().cpu().numpy())
        return np.concatenate(grads) if grads else np.zeros((0, 4, codes.shape[1]), np.float32)

    @torch.inference_mode()
    def embed(self, codes: np.ndarray) -> np.ndarray:
        """``(n, D)``: every member's features averaged over positions and both strands, side by side.

        Raises
        ------
        ValueError
            For a model without a ``features`` method (the LegNet family has one).
        """
        parts = []
        for model, _ in self.members:
            if not hasattr(model, "features"):
                raise ValueError(f"{type(model).__name__} has no features() to embed sequences with")
            wrapped = _Features(model).to(self.device).eval()
            chunks = []
            for begin in range(0, len(codes), self.batch_size):
                x = tangermeme_one_hot(codes[begin:begin + self.batch_size]).float().to(self.device)
                chunks.append(wrapped(x).float().cpu().numpy())
            parts.append(np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32))
        return np.concatenate(parts, axis=1)


class _Features(nn.Module):
    """Position-averaged features of both strands of a ``(batch, 4, L)`` one-hot (flags as at prediction)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(x.sum(dim=1, keepdim=True) == 0, torch.full_like(x, 0.25), x)  # N, as predict encodes it
        flags = x.new_zeros(x.shape[0], 2, x.shape[2])
        forward = self.model.features(torch.cat([x, flags], dim=1))
        reverse_flags = flags.clone()
        reverse_flags[:, 0] = 1.0
        reverse = self.model.features(torch.cat([x.flip(1, 2), reverse_flags], dim=1))
        pool = tuple(range(2, forward.dim()))
        return (forward.mean(dim=pool) + reverse.mean(dim=pool)) / 2
