"""Run pictures: whole-number epoch ticks, the validation scatter, drawing into a caller's axes."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from promoterlab.evaluation.plots import plot_curves, plot_val_scatter


def history(epochs: int) -> pd.DataFrame:
    ramp = np.linspace(0.2, 1.0, epochs)
    return pd.DataFrame({"epoch": np.arange(1, epochs + 1), "train_loss": 1 - ramp / 2, "val_loss": 1.1 - ramp / 3,
                         "train_pearson": ramp, "val_pearson": ramp * 0.9})


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_curves_have_whole_number_epoch_ticks(tmp_path, epochs):
    fig = plot_curves(history(epochs), tmp_path / "curves.png")
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    image = matplotlib.image.imread(tmp_path / "curves.png")
    assert image.shape[:2] == (420, 1080)  # 9 x 3.5 inches at 120 dpi
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_val_scatter_names_r_and_n(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.normal(8, 2, size=500)
    pred = target + rng.normal(0, 1, size=500)
    pred[3] = np.nan  # left out of r and n
    fig = plot_val_scatter(pred, target, tmp_path / "val_scatter.png", title="validation")
    keep = np.isfinite(pred)
    r = np.corrcoef(pred[keep], target[keep])[0, 1]
    [ax, colour_bar] = fig.axes
    assert ax.get_title() == f"validation\nr = {r:.3f}, n = 499"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("measured", "predicted")
    assert colour_bar.get_ylabel() == "sequences"
    assert sum(len(c.get_offsets()) for c in ax.collections) > 50  # hexagons drawn
    assert matplotlib.image.imread(tmp_path / "val_scatter.png").shape[:2] == (540, 600)
    with pytest.raises(ValueError, match="3 predictions for 2 measured values"):
        plot_val_scatter([1, 2, 3], [1, 2])


def test_plots_draw_into_the_callers_axes():
    fig = Figure()
    loss_ax, r_ax, scatter_ax = fig.subplots(1, 3)
    assert plot_curves(history(3), ax=(loss_ax, r_ax)) is fig
    assert plot_val_scatter([1.0, 2.0, 3.5], [1.0, 2.5, 3.0], ax=scatter_ax, title="mine") is fig
    assert len(fig.axes) == 3  # no colour bar added to a figure of the caller's
    assert r_ax.get_title() == "Pearson" and scatter_ax.get_title().startswith("mine\nr = 0.9")
