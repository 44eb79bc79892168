"""Published LegNet weights: where they are, their checksums, what they were trained on and how
they read their input.

Every entry is a file of autosome-ru/LegNet (MIT) at a pinned commit, downloaded from
``{base}/autosome-ru/LegNet/{commit}/{path}``; ``base`` is ``$PROMOTERLAB_MODELS_URL`` when set
(a mirror, or a local server in tests), else raw.githubusercontent.com. The git blob id that the
commit lists for the file is its checksum.

The input layout is not stored in the weight files. It was read from the repository's training
and test code and scripts and from the DREAM submission of team autosome.org (``sources``);
``notes`` say what was inferred rather than stated, and where promoterlab's input differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from promoterlab.sequence import LEFT_ADAPTER, PLASMID_UPSTREAM

MODELS_URL_VAR = "PROMOTERLAB_MODELS_URL"
DEFAULT_MODELS_URL = "https://raw.githubusercontent.com"
LEGNET_REPO = "autosome-ru/LegNet"
LEGNET_COMMIT = "63773bb04a85dea33bdbf2e2350f7483cc2c96b5"
LEGNET_LICENCE = "MIT (Copyright (c) 2022 autosome-ru; LICENCE.md of autosome-ru/LegNet)"
LEGNET_CITATION = ("Penzar D., Nogina D. et al. (2023) LegNet: a best-in-class deep learning model for short DNA "
                   "regulatory regions. Bioinformatics 39(8), btad457. doi:10.1093/bioinformatics/btad457")
DREAM_CITATION = ("Rafi A. M. et al. (2024) A community effort to optimize sequence-based deep learning models of "
                  "gene regulation. Nat Biotechnol. doi:10.1038/s41587-024-02414-w")
VAISHNAV_CITATION = ("Vaishnav E. D. et al. (2022) The evolution, evolvability and engineering of gene regulatory "
                     "DNA. Nature 603, 455-463. doi:10.1038/s41586-022-04506-6")

_AT = f"https://github.com/{LEGNET_REPO}/blob/{LEGNET_COMMIT}"
_DREAM_SUBMISSION = ("https://github.com/de-Boer-Lab/random-promoter-dream-challenge-2022/tree/main/"
                     "dream_submissions/autosome.org/code")
_LAYOUT_SOURCES = (
    f"{_AT}/legnet/train.py (preprocess_data: the first 17 bp are cut and the plasmid upstream of the N80 "
    "insert is prepended, the last seqsize bases kept; CODES: one-hot order A, G, C, T, N = 0.25; add_rev: "
    "is_reverse = 1 for the reverse complement of the whole window; add_singleton_column: is_singleton = "
    "target is an integer)",
    f"{_AT}/legnet/test.py (forward and reverse-complement predictions averaged)",
    f"{_AT}/legnet/model.py (SeqNN: 6 input channels with use_single_channel, else 5)",
    f"{_AT}/tutorial/demo_notebook.ipynb (\"The final predictions for evaluation were made by specifying "
    "is_singleton=0\"; 110 bp sequences padded on the 5' end with plasmid to 150 bp)",
)
_LAYOUT_NOTES = (
    "Channel order: the original one-hot order is A, G, C, T; the conversion permutes the stem's input "
    "channels so that promoterlab's A, C, G, T encoding is fed unchanged.",
    "Adapter: the original cuts the first 17 bp of every sequence unconditionally; promoterlab cuts them only "
    "when the sequence starts with the 17 bp adapter TGCATTTTTTTCACATC. The two agree on every sequence of "
    "the 110 bp library design (adapter + N80 + GGTTACGGCTGTT) and differ on sequences without the adapter.",
    "Upstream flank: promoterlab's plasmid sequence (200 bp upstream of the N80 insert, from the DREAM "
    "plasmid.json) equals the 200 bp before the N80 stretch of the PLASMID constant in legnet/train.py.",
    "is_singleton at prediction: promoterlab sets 0, as the tutorial states and as the Prix Fixe "
    "re-implementation (AutosomePredictor) does. legnet/test.py instead derives it from the second column of "
    "the file it scores with the integer rule; for the DREAM test file, whose second column is 0 everywhere, "
    "that gives 1 for every sequence (inferred from the code with the numpy 1.22.4 of the submission's "
    "environment.yml, not verified by running it).",
    "N: promoterlab and legnet/train.py encode N as 0.25 in the four base channels; the Seq2Tensor of the DREAM "
    "submission's code assigns 0.25 to an integer tensor, which stores 0 (inferred from the code); this "
    "matters only for sequences with N.",
)


@dataclass(frozen=True)
class ReportedMetric:
    """A metric the authors reported for a model, with what it was computed on and where it is."""

    name: str
    value: float
    scope: str
    source: str


@dataclass(frozen=True)
class PretrainedModel:
    """One published weight file of the original LegNet and what is known about it.

    Attributes
    ----------
    name : str
        Registry key (``promoterlab models fetch NAME``).
    path : str
        Path of the file in ``repo`` at ``commit``.
    git_blob : str
        Git blob id of the file at that commit: its checksum.
    description, trained_on, training_size, medium, training : str
        What the model is, its training data (name, size, growth medium) and recipe.
    seq_len, left_adapter, upstream, singleton_channel
        The input layout, as the ``DataConfig`` fields of the converted run.
    metrics : tuple of ReportedMetric
        Metrics reported by the authors.
    citation : tuple of str
        Publications to cite (the model, then its data).
    sources : tuple of str
        Where the facts above were read.
    notes : tuple of str
        What was inferred, and where promoterlab's handling differs from the original code.
    """

    name: str
    path: str
    git_blob: str
    description: str
    trained_on: str
    training_size: str
    medium: str
    training: str
    metrics: tuple[ReportedMetric, ...]
    citation: tuple[str, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...] = ()
    seq_len: int = 150
    left_adapter: str = LEFT_ADAPTER
    upstream: str = PLASMID_UPSTREAM
    singleton_channel: bool = True
    repo: str = LEGNET_REPO
    commit: str = LEGNET_COMMIT
    licence: str = LEGNET_LICENCE
    seed: int | None = None
    layout_sources: tuple[str, ...] = field(default=_LAYOUT_SOURCES)
    layout_notes: tuple[str, ...] = field(default=_LAYOUT_NOTES)

    def url(self, base_url: str | None = None) -> str:
        """Download address: ``{base}/{repo}/{commit}/{path}`` (base: :func:`models_url`)."""
        return f"{models_url(base_url)}/{self.repo}/{self.commit}/{self.path}"

    @property
    def filename(self) -> str:
        """The file name, e.g. ``model_80.pth``."""
        return self.path.rsplit("/", 1)[-1]


def models_url(base_url: str | None = None) -> str:
    """The base address of the weights: ``base_url``, else ``$PROMOTERLAB_MODELS_URL``, else GitHub's raw files."""
    base = base_url or os.environ.get(MODELS_URL_VAR, "").strip() or DEFAULT_MODELS_URL
    return base.rstrip("/")


def _scores(path: str, values: dict[str, float], epoch: int) -> tuple[ReportedMetric, ...]:
    scope = (f"training data, last epoch ({epoch}): the metrics legnet/train.py accumulates over that epoch's "
             "training batches; not held-out data")
    return tuple(ReportedMetric(name, value, scope, f"{_AT}/{path}") for name, value in values.items())


_SCRIPT = f"{_AT}/scripts/paper/README.md (training files of the Vaishnav et al. 2022 Zenodo record 4436477)"

PRETRAINED: dict[str, PretrainedModel] = {m.name: m for m in (
    PretrainedModel(
        name="legnet-dream2022",
        path="models/dream2022/model_80.pth",
        git_blob="7d314e2f2f9bb1aba4a5a91d4598f687df12e3ce",
        description="LegNet of team autosome.org, winner of the Random Promoter DREAM Challenge 2022",
        trained_on="Random Promoter DREAM Challenge 2022 training set (yeast, random N80 promoters, sort-seq "
                   "expression on the 0..17 bin scale)",
        training_size="6,739,258 sequences (the full training set; legnet/train.py trains on every row, "
                      "doubled by reverse complements)",
        medium="not stated in the sources read",
        training="scripts/dream2022/train.sh: 80 epochs of 1,000 batches of 1,024, AdamW (weight decay 0.01), "
                 "OneCycle max lr 0.005, KL loss on soft bins (shift 0.5, scale 0.5), seed 42; kernel 7, blocks "
                 "256 128 128 64 64 64 64, expansion 4, SE reduction 4, singleton channel",
        metrics=(
            ReportedMetric("score_pearson_r2", 0.829, "DREAM 2022 public leaderboard, weighted Pearson score",
                           f"{_DREAM_SUBMISSION}/README.md"),
            ReportedMetric("score_spearman", 0.860, "DREAM 2022 public leaderboard, weighted Spearman score",
                           f"{_DREAM_SUBMISSION}/README.md"),
            ReportedMetric("pearson_r2", 0.952, "DREAM 2022 public leaderboard, column PearsonR^2",
                           f"{_DREAM_SUBMISSION}/README.md"),
            ReportedMetric("spearman", 0.979, "DREAM 2022 public leaderboard, column Spearman",
                           f"{_DREAM_SUBMISSION}/README.md"),
            *_scores("models/dream2022/scores_80.json", {"train_pearson": 0.7759242275697518,
                                                          "train_spearman": 0.7906708132180237,
                                                          "train_mse": 2.245917724609375}, 80),
        ),
        citation=(LEGNET_CITATION, DREAM_CITATION),
        sources=(f"{_AT}/models/README.md (the dream2022 folder holds the weights of the final DREAM 2022 "
                 "solution, compatible with legnet/model.py)",
                 f"{_AT}/scripts/dream2022/train.sh", f"{_AT}/scripts/dream2022/test.sh",
                 f"{_DREAM_SUBMISSION} (README.md, train.sh, test.sh, train.py, test.py, environment.yml)"),
        notes=("The leaderboard scores are those of the submission made with these weights (models/README.md); "
               "promoterlab's is_singleton = 0 at prediction may differ from what the submission's test.py fed "
               "(see the layout notes).",),
        seed=42,
    ),
    PretrainedModel(
        name="legnet-vaishnav2022-complex",
        path="models/complex/model_300.pth",
        git_blob="6cffcf0df0d59e8e567559e5469925209a2e2e6b",
        description="LegNet of the LegNet paper trained on the Vaishnav et al. 2022 complex-medium library",
        trained_on="Vaishnav et al. 2022 random-promoter library measured in complex medium "
                   "(complex_media_training_data_Glu.txt)",
        training_size="the full training file (tens of millions of sequences; the exact count is not stated in "
                      "the sources read)",
        medium="complex (glucose; the file name's 'Glu')",
        training="scripts/paper/run_complex_base_model_300.sh: 300 epochs of 1,000 batches of 1,024, AdamW, "
                 "OneCycle max lr 0.005, KL loss (shift 0.5, scale 0.5), seed 42; kernel 7, blocks 256 128 128 "
                 "64 64 64 64, expansion 4, SE reduction 4, singleton channel",
        metrics=_scores("models/complex/scores_300.json", {"train_pearson": 0.8539999309613925,
                                                           "train_spearman": 0.8595715968389647,
                                                           "train_mse": 4.87832275390625}, 300),
        citation=(LEGNET_CITATION, VAISHNAV_CITATION),
        sources=(f"{_AT}/models/README.md", f"{_AT}/scripts/paper/run_complex_base_model_300.sh",
                 f"{_AT}/scripts/paper/run_complex_base_model_300_predict2022.sh", _SCRIPT,
                 f"{_AT}/data/output/complex_Native.txt (the authors' predictions for 3,929 native test "
                 "sequences, all 110 bp with the DREAM adapters)"),
        notes=("Test-set metrics (native sequences, Penzar et al. 2023 Fig. 2) are shown in the paper's figures "
               "and were not transcribed; data/output/complex_Native.txt holds the authors' predictions.",
               "The library shares the DREAM adapters and plasmid: legnet/train.py lays it out with the same "
               "plasmid constant, and the authors' test sequences start with TGCATTTTTTTCACATC."),
        seed=42,
    ),
    PretrainedModel(
        name="legnet-vaishnav2022-defined",
        path="models/defined/model_150.pth",
        git_blob="0183e7f230f2b0bcde464ec6704e9cac6546b7c3",
        description="LegNet of the LegNet paper trained on the Vaishnav et al. 2022 defined-medium library",
        trained_on="Vaishnav et al. 2022 random-promoter library measured in defined medium "
                   "(defined_media_training_data_SC_Ura.txt)",
        training_size="the full training file (tens of millions of sequences; the exact count is not stated in "
                      "the sources read)",
        medium="defined (SC-Ura; the file name's 'SC_Ura')",
        training="scripts/paper/run_defined_base_model_150.sh: 150 epochs of 1,000 batches of 1,024, AdamW, "
                 "OneCycle max lr 0.005, KL loss (shift 0.5, scale 0.5), seed 42; kernel 7, blocks 256 128 128 "
                 "64 64 64 64, expansion 4, SE reduction 4, singleton channel",
        metrics=_scores("models/defined/scores_150.json", {"train_pearson": 0.8963537298312115,
                                                           "train_spearman": 0.9003902054821804,
                                                           "train_mse": 3.3906044921875}, 150),
        citation=(LEGNET_CITATION, VAISHNAV_CITATION),
        sources=(f"{_AT}/models/README.md", f"{_AT}/scripts/paper/run_defined_base_model_150.sh",
                 f"{_AT}/scripts/paper/run_defined_base_model_150_predict2022.sh", _SCRIPT,
                 f"{_AT}/data/output/defined_Native.txt (the authors' predictions for the native test sequences)"),
        notes=("Test-set metrics (native sequences, Penzar et al. 2023 Fig. 2) are shown in the paper's figures "
               "and were not transcribed; data/output/defined_Native.txt holds the authors' predictions.",
               "The library shares the DREAM adapters and plasmid (as for legnet-vaishnav2022-complex)."),
        seed=42,
    ),
)}


class UnknownModelError(KeyError):
    """A pretrained-model name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


def list_pretrained() -> list[PretrainedModel]:
    """All registered pretrained models, in registry order."""
    return list(PRETRAINED.values())


def get_pretrained(name: str) -> PretrainedModel:
    """The pretrained model called ``name``.

    Raises
    ------
    UnknownModelError
        If no model has that name; the message lists the known names.
    """
    try:
        return PRETRAINED[name]
    except KeyError:
        raise UnknownModelError(f"unknown pretrained model {name!r}; choose one of {', '.join(PRETRAINED)} "
                                "(see 'promoterlab models list')") from None
