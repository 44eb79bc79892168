"""Make the pictures of README.md (``docs/images/``) from a real run, so that they can be refreshed.

    python docs/make_images.py                 # about 25 minutes on 2 CPU cores
    python docs/make_images.py --keep work/    # keep the run and everything the commands wrote

It runs README's "Your data in one page" on the demo's simulated library (6,000 promoters with
planted yeast motifs, seed 0), as a lab would, with the same commands: ``train`` with the
defaults, ``evaluate --split test``, ``explain``, ``motifs``, ``variants --plot`` and ``design
--plot``; and copies the data-size curve of the converged seed study
(``docs/seed_study_converged/report_figures/size_curve_test.png``, made by ``promoterlab report``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
SIZE_CURVE = HERE / "seed_study_converged" / "report_figures" / "size_curve_test.png"


def promoterlab(*args: object, cwd: Path) -> dict:
    """Run one ``promoterlab`` command as a user would; its ``--json`` result."""
    command = [sys.executable, "-m", "promoterlab", *map(str, args), "--json", "--quiet"]
    print("$ promoterlab", " ".join(map(str, args)), flush=True)
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, text=True, check=True,
                          env={**os.environ, "PROMOTERLAB_PRECISION": os.environ.get("PROMOTERLAB_PRECISION", "32")})
    return json.loads(done.stdout) if done.stdout.strip() else {}


def write_inputs(work: Path) -> None:
    """The lab's files: a measured library, promoters to explain, variants to score."""
    from promoterlab.data.simulate import simulate_library, write_library

    write_library(work / "my_library.tsv", n=6000, seed=0)
    promoters = simulate_library(200, seed=21).sort_values("expr", ascending=False)
    with (work / "promoters.fa").open("w") as fasta:
        for i, seq in enumerate(promoters["seq"]):
            fasta.write(f">promoter_{i + 1}\n{seq}\n")
    first = promoters["seq"].iloc[0]
    rows = ["id\tseq\tpos\talt"]  # substitutions across the strongest promoter's insert
    for pos in range(25, 95, 7):
        base = first[pos - 1]
        rows.append(f"p1_{pos}{base}>{'A' if base != 'A' else 'C'}\t{first}\t{pos}\t{'A' if base != 'A' else 'C'}")
    (work / "variants.tsv").write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    args = parser.parse_args()
    work = (args.keep or Path(tempfile.mkdtemp(prefix="promoterlab-images-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(exist_ok=True)
    write_inputs(work)

    summary = promoterlab("train", "my_library.tsv", "-o", "my_model", "--no-progress", cwd=work)
    shutil.copy(work / "my_model" / "curves.png", IMAGES / "training_curves.png")
    promoterlab("evaluate", "my_model", "--split", "test", "--scatter", "test_scatter.png", cwd=work)
    shutil.copy(work / "test_scatter.png", IMAGES / "test_scatter.png")
    promoterlab("explain", "my_model", "promoters.fa", "-o", "explained", "--max-plots", "1", "--no-progress",
                cwd=work)
    shutil.copy(next((work / "explained").glob("0001_*.png")), IMAGES / "ism_logo.png")
    found = promoterlab("motifs", "my_model", "promoters.fa", "-o", "motifs", "--no-progress", cwd=work)
    best = max(found["motifs"], key=lambda motif: motif["n_seqlets"])
    shutil.copy(work / "motifs" / f"{best['motif']}.png", IMAGES / "motif_logo.png")
    promoterlab("variants", "my_model", "variants.tsv", "-o", "effects.tsv", "--plot", "effects.png",
                "--no-progress", cwd=work)
    shutil.copy(work / "effects.png", IMAGES / "variant_effects.png")
    promoterlab("design", "my_model", "--goal", "max", "--n", "20", "-o", "designs.tsv", "--plot", "design.png",
                cwd=work)
    shutil.copy(work / "design.png", IMAGES / "design.png")
    shutil.copy(SIZE_CURVE, IMAGES / "data_size_curve.png")
    test = summary.get("test") or {}
    print(f"test Pearson {test.get('pearson')}; pictures in {IMAGES}: "
          f"{', '.join(sorted(p.name for p in IMAGES.glob('*.png')))}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
