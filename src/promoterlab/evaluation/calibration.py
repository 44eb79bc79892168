"""Prediction intervals that hold what they say: split-conformal calibration on the validation set.

An ensemble's sd measures how much its models disagree, not how far its mean lies from a
measurement (most of that distance is measurement noise, which every member has learned to
average away): on native test sequences only 18 % of measurements fall within ±1 sd. A
calibrated interval is ``mean ± q(level) · (s(x) + c)`` where ``s(x)`` is a per-sequence scale,
``c`` an offset, and ``q(level)`` the conformal quantile of the normalised errors
``|y − mean| / (s + c)`` on the run's validation set (with the finite-sample correction
``⌈(n + 1)·level⌉ / n``). Validation and test sequences are exchangeable (both drawn from the
same table, by group where the table has groups), so the intervals cover ``level`` of the test
measurements on average, whatever the scale; a scale that tracks the error makes them narrower
where the model is sure and wider where it is not.

Scales (:func:`scale_features`):

- ``ensemble_sd``: the members' standard deviation (ensembles only);
- ``predictive_sd``: the standard deviation of the predicted distribution over the expression
  bins (KL objective), for an ensemble of the mixture of its members' distributions (mean member
  variance + variance of the member means): the model's own estimate of measurement noise plus
  the members' disagreement. This is what a **single model** is calibrated with (LegNet has no
  dropout, so MC dropout is not available; this spread costs one more pass);
- ``constant``: the same width everywhere (plain split conformal; MSE single models).

The scale and the offset (0, ¼, ½, 1, 2 or 4 times the median scale) are those whose 68 % and
95 % intervals are narrowest on validation on average. The result is saved as
``calibration.json`` in the run folder (an ensemble's in the ensemble folder).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from promoterlab.config import RunConfig
from promoterlab.evaluation.predict import PREDICT_BATCH_SIZE, predict
from promoterlab.files import write_text_atomic
from promoterlab.runs import CALIBRATION, Run, ensemble_members

REPORT_LEVELS = (0.68, 0.95)
OFFSET_MULTIPLES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
QUANTILE_GRID = 1001  # normalised-error quantiles saved, at probabilities 0, 0.001, ..., 1
FORMAT_VERSION = 1


class CalibrationError(ValueError):
    """A run without a usable calibration; the message says why and what to do."""


class _SecondMoment(nn.Module):
    """``sum_k k² · softmax_k`` of a bin model's logits, as one value per sequence, so that
    :func:`~promoterlab.evaluation.predict.predict` averages it over the two strands like a value."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x).float()
        bins = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
        return (torch.softmax(logits, dim=1) * bins**2).sum(dim=1)


@dataclass
class Moments:
    """Every member's predicted mean ``(K, n)`` and, for bin models, second moment ``(K, n)``."""

    means: np.ndarray
    second: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.means.mean(axis=0)

    @property
    def sd(self) -> np.ndarray:
        """The members' population sd (0 for one model), as :func:`ensemble_predict` gives it."""
        return self.means.std(axis=0, ddof=0)


def member_moments(members: Sequence[tuple[nn.Module, RunConfig]], codes, batch_size: int = PREDICT_BATCH_SIZE,
                   device: str = "cpu", precision: str = "auto", fold: bool = True,
                   second_moment: bool = True) -> Moments:
    """RC-averaged predictions of every member for laid-out ``codes`` (singleton channel 0), and
    the second moment of their bin distributions when the members predict bins and it is asked for."""
    def run(model: nn.Module) -> np.ndarray:
        return predict(model, codes, batch_size=batch_size, device=device, precision=precision,
                       fold=fold).astype(np.float64)

    means = np.stack([run(model) for model, _ in members])
    bins = all(config.train.loss == "kl" for _, config in members)
    second = np.stack([run(_SecondMoment(model)) for model, _ in members]) if second_moment and bins else None
    return Moments(means, second)


def scale_features(moments: Moments) -> dict[str, np.ndarray]:
    """The per-sequence scales a calibration may use (see the module docstring)."""
    features = {"constant": np.ones(moments.means.shape[1])}
    if moments.means.shape[0] > 1:
        features["ensemble_sd"] = moments.sd
    if moments.second is not None:
        variance = moments.second.mean(axis=0) - moments.mean**2
        features["predictive_sd"] = np.sqrt(np.clip(variance, 0.0, None))
    return features


def _corrected(level: float, n: int) -> float:
    """The conformal quantile level ``⌈(n + 1)·level⌉ / n``, capped at 1."""
    return min(1.0, math.ceil((n + 1) * level - 1e-9) / n)


@dataclass
class Calibration:
    """A fitted interval rule: ``mean ± quantile(level) · (feature + offset)``.

    Attributes
    ----------
    feature : str
        ``constant``, ``ensemble_sd`` or ``predictive_sd``.
    offset : float
        Added to the feature (keeps a zero spread from giving a zero-width interval).
    quantiles : list of float
        Normalised-error quantiles on validation at probabilities ``0, 1/(G-1), ..., 1``.
    n : int
        Validation measurements it was fitted on.
    """

    feature: str
    offset: float
    quantiles: list[float]
    n: int
    version: int = FORMAT_VERSION

    def multiplier(self, level: float) -> float:
        """``q(level)``: the half-width in units of the scale."""
        if not 0 < level < 1:
            raise ValueError(f"interval level must be between 0 and 1 (e.g. 0.9), got {level:g}")
        grid = np.linspace(0.0, 1.0, len(self.quantiles))
        return float(np.interp(_corrected(level, self.n), grid, self.quantiles))

    def scale(self, features: dict[str, np.ndarray]) -> np.ndarray:
        if self.feature not in features:
            raise CalibrationError(f"this calibration scales by {self.feature}, which these predictions lack")
        return features[self.feature] + self.offset

    def interval(self, mean: np.ndarray, features: dict[str, np.ndarray], level: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the ``level`` interval around ``mean``."""
        half = self.multiplier(level) * self.scale(features)
        return mean - half, mean + half

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "Calibration":
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
            raise CalibrationError(f"not a calibration of format version {FORMAT_VERSION}")
        try:
            calibration = cls(str(raw["feature"]), float(raw["offset"]), [float(q) for q in raw["quantiles"]],
                              int(raw["n"]), int(raw["version"]))
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(f"calibration fields missing or malformed ({err})") from None
        if len(calibration.quantiles) < 2 or calibration.n < 1:
            raise CalibrationError("calibration has no quantiles")
        return calibration


def _normalised_errors(y: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(y - mean) / scale


def fit_calibration(y: np.ndarray, mean: np.ndarray, features: dict[str, np.ndarray],
                    levels: Sequence[float] = REPORT_LEVELS) -> Calibration:
    """The scale and offset whose ``levels`` intervals are narrowest on average on these
    (validation) measurements, with their conformal quantiles.

    Rows where the measurement or the mean is not finite are left out.

    Raises
    ------
    ValueError
        With no finite measurement.
    """
    y, mean = np.asarray(y, dtype=np.float64).ravel(), np.asarray(mean, dtype=np.float64).ravel()
    keep = np.isfinite(y) & np.isfinite(mean)
    if not keep.any():
        raise ValueError("calibration needs at least one measured value")
    y, mean = y[keep], mean[keep]
    n = len(y)
    best: tuple[float, str, float] | None = None
    for name, values in features.items():
        values = np.asarray(values, dtype=np.float64).ravel()[keep]
        base = float(np.median(values)) if name != "constant" else 0.0
        multiples = OFFSET_MULTIPLES if name != "constant" else (0.0,)
        for multiple in multiples:
            offset = multiple * base
            scale = values + offset
            if not (scale > 0).all():
                continue
            errors = _normalised_errors(y, mean, scale)
            width = np.mean([np.quantile(errors, _corrected(level, n)) * scale.mean() for level in levels])
            if best is None or width < best[0] - 1e-12:
                best = (float(width), name, offset)
    assert best is not None  # "constant" always qualifies
    _, name, offset = best
    errors = _normalised_errors(y, mean, np.asarray(features[name], dtype=np.float64).ravel()[keep] + offset)
    quantiles = np.quantile(errors, np.linspace(0.0, 1.0, QUANTILE_GRID))
    return Calibration(name, float(offset), [float(f"{q:.6g}") for q in quantiles], n)


def coverage(y: np.ndarray, mean: np.ndarray, features: dict[str, np.ndarray], calibration: Calibration,
             levels: Sequence[float] = REPORT_LEVELS) -> dict[str, dict[str, float]]:
    """For each level: the fraction of measurements inside the calibrated interval and its mean width.

    Returns
    -------
    dict
        ``{"0.68": {"coverage": ..., "mean_width": ..., "n": ...}, ...}``; rows without a
        finite measurement are left out.
    """
    y, mean = np.asarray(y, dtype=np.float64).ravel(), np.asarray(mean, dtype=np.float64).ravel()
    keep = np.isfinite(y) & np.isfinite(mean)
    report = {}
    for level in levels:
        lower, upper = calibration.interval(mean, features, level)
        inside = (y >= lower) & (y <= upper)
        report[f"{level:g}"] = {"coverage": float(inside[keep].mean()) if keep.any() else float("nan"),
                                "mean_width": float((upper - lower)[keep].mean()) if keep.any() else float("nan"),
                                "n": int(keep.sum())}
    return report


def calibrate_run(folder: str | Path, members: Sequence[tuple[nn.Module, RunConfig]], val, test=None,
                  batch_size: int = PREDICT_BATCH_SIZE) -> dict:
    """Fit a run's calibration on its validation set, save ``folder/calibration.json`` and
    report it with its coverage on the held-out test set.

    Parameters
    ----------
    folder : str or Path
        The run folder (an ensemble's own folder for an ensemble).
    members : sequence of (nn.Module, RunConfig)
        The run's model, or the ensemble's members.
    val, test : EncodedSet
        Validation and (optional) held-out test sets; predicted with the singleton channel 0.

    Returns
    -------
    dict
        ``calibration`` (scale, offset, n, and the 68 % and 95 % half-widths in scale units)
        and, with a test set, ``test_coverage`` (:func:`coverage`): entries for ``summary.json``.
    """
    moments = member_moments(members, val.codes, batch_size=batch_size)
    calibration = fit_calibration(val.targets.numpy(), moments.mean, scale_features(moments))
    write_calibration(folder, calibration)
    report = {"calibration": {"scale": calibration.feature, "offset": calibration.offset, "n": calibration.n,
                              **{f"multiplier_{level:g}": calibration.multiplier(level) for level in REPORT_LEVELS}}}
    if test is not None and len(test):
        moments = member_moments(members, test.codes, batch_size=batch_size,
                                 second_moment=calibration.feature == "predictive_sd")
        report["test_coverage"] = coverage(test.targets.numpy(), moments.mean, scale_features(moments), calibration)
    return report


def write_calibration(folder: str | Path, calibration: Calibration) -> Path:
    path = Path(folder) / CALIBRATION
    write_text_atomic(path, json.dumps(calibration.to_dict(), indent=1))
    return path


def calibration_file(run: Run) -> Path | None:
    """Where the calibration of ``run`` lives: a model run's own folder, or an ensemble folder's
    (None for an ensemble of separately named runs, which no calibration was fitted for)."""
    if not run.ensemble:
        member = run.members[0]
        return member / CALIBRATION if member.is_dir() else None
    if run.path is not None and run.path.is_dir() and ensemble_members(run.path) is not None:
        return run.path / CALIBRATION
    return None


def load_calibration(run: Run) -> Calibration:
    """The saved calibration of ``run``.

    Raises
    ------
    CalibrationError
        Naming the run and why it has none (trained before calibrations existed, an ensemble
        of separately named runs, a damaged file).
    """
    path = calibration_file(run)
    if path is None:
        raise CalibrationError(f"{run.name}: an ensemble of separately named runs has no calibration; intervals "
                               "need an ensemble folder (train --ensemble K) or a single run")
    if not path.is_file():
        raise CalibrationError(f"{path}: not found; this run was trained before calibrated intervals existed "
                               "(retrain it, or predict without --interval)")
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CalibrationError(f"{path}: not a calibration file ({err})") from None
    except CalibrationError as err:
        raise CalibrationError(f"{path}: {err}") from None
