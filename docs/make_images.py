"""Make the pictures of README.md (docs/images/) from real runs, so that they can be refreshed.

    python docs/make_images.py                 # about 10 minutes on 2 CPU cores
    python docs/make_images.py --keep work/    # keep the run and the outputs it made

It simulates the demo's library (6,000 promoters with planted yeast motifs, seed 0), trains the
default 3-model ensemble on it (one epoch budget as the README's example), and then runs the
README's chain on the result: the training curves and the held-out test scatter of the run
folder, the ISM logo over its heat map of one promoter (``explain``), a motif the model learned
(``motifs``), the calibration of the ensemble's sd on the test set, and the data-size curve of the
converged seed study (``docs/seed_study_converged``, copied).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    parser.add_argument("--epochs", type=int, default=6, help="Epochs per model.")
    args = parser.parse_args()

    from promoterlab import api
    from promoterlab.config import DataConfig, RunConfig, TrainConfig
    from promoterlab.data.simulate import simulate_library, write_library
    from promoterlab.evaluation.ensemble import plot_calibration
    from promoterlab.evaluation.plots import plot_val_scatter
    from promoterlab.interpret.explain import explain_file
    from promoterlab.interpret.motifs import find_motifs
    from promoterlab.models import model_config

    work = args.keep or Path(tempfile.mkdtemp(prefix="promoterlab-images-"))
    work.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(exist_ok=True)
    library = write_library(work / "library.txt", n=6000, seed=0)
    config = RunConfig(data=DataConfig(path=str(library)), model=model_config("legnet", width=0.25),
                       train=TrainConfig(epochs=args.epochs, ensemble=3, precision="32"), seed=0)
    run = work / "run"
    summary = api.train(config, run)
    shutil.copy(run / "curves.png", IMAGES / "training_curves.png")

    test = pd.read_csv(run / "test_predictions.tsv", sep="\t")
    plot_val_scatter(test["prediction"], test["target"], IMAGES / "test_scatter.png",
                     title=f"held-out test ({summary['n_models']}-model ensemble)")
    plot_calibration(test["target"], test["prediction"], test["sd"], IMAGES / "calibration.png",
                     title="held-out test")

    promoters = work / "promoters.fa"
    seqs = simulate_library(200, seed=21)
    strongest = seqs.sort_values("expr", ascending=False)["seq"].tolist()
    promoters.write_text("".join(f">p{i}\n{seq}\n" for i, seq in enumerate(strongest)))
    explain_file(run, promoters, work / "explained", method="ism", ids=["p0"], max_plots=1, precision="32")
    shutil.copy(next((work / "explained").glob("*.png")), IMAGES / "ism_logo.png")

    _, found, table = find_motifs(run, promoters, work / "motifs", method="ism", min_size=5, precision="32")
    if found:
        best = table.sort_values("n_seqlets", ascending=False).iloc[0] if "n_seqlets" in table else table.iloc[0]
        name = best["motif"] if "motif" in best else found[0].name
        shutil.copy(work / "motifs" / f"{name}.png", IMAGES / "motif_logo.png")

    converged = HERE / "seed_study_converged" / "report_figures" / "size_curve_test.png"
    if converged.exists():
        shutil.copy(converged, IMAGES / "data_size_curve.png")
    print(f"test Pearson {summary['test']['pearson']:.3f}; pictures in {IMAGES}")
    print(np.array(sorted(p.name for p in IMAGES.glob("*.png"))))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
