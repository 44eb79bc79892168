"""Named public datasets: their published files, download addresses and checksums.

Every file has a path relative to the dataset's directory. The DREAM paths follow the
layout ``train/``, ``test/``, ``test/test_subset_ids/``, ``test/public_leaderboard_ids/``
so that an existing copy in that layout (such as ``../shared/data/dream2022``) is found
as it is. Where no checksum could be established before the first download, ``md5`` and
``sha256`` are ``None``; the downloader then records the checksums it computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    Attributes
    ----------
    path : str
        Location relative to the dataset directory (POSIX separators).
    url : str
        Where the file is downloaded from.
    size : int or None
        Size in bytes, when known.
    md5, sha256 : str or None
        Hex digests, when known.
    note : str
        Provenance or caveats of this entry.
    """

    path: str
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """A named dataset and its files.

    Attributes
    ----------
    name : str
        Registry key, also the default directory name under the data directory.
    description : str
        One line on what the data is.
    citation : str
        The publication to cite.
    landing_page : str
        Human-readable source page(s).
    files : tuple of RemoteFile
        The published files.
    note : str
        Caveats of the whole entry.
    """

    name: str
    description: str
    citation: str
    landing_page: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)
    note: str = ""

    @property
    def known_size(self) -> int:
        """Sum of the sizes that are known, in bytes."""
        return sum(f.size or 0 for f in self.files)

    def file(self, path: str) -> RemoteFile:
        """The entry whose relative path is ``path``."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(f"dataset {self.name!r} has no file {path!r}")


class UnknownDatasetError(KeyError):
    """A dataset name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


_DREAM_REPO = "https://raw.githubusercontent.com/de-Boer-Lab/random-promoter-dream-challenge-2022"
# The index-file URLs are pinned to the commits whose copies were compared (size and
# content) with ../shared/data/dream2022; the repository moved ``dream/data`` to ``data``.
_DREAM_NEW = f"{_DREAM_REPO}/1b40970e8dcddf31d07ccc4604a82afac8f49095/data"
_DREAM_OLD = f"{_DREAM_REPO}/abce63b4cc761d28b38f12312acf2b377cf562b8/dream/data"
_GITHUB_NOTE = ("size and content checked against the repository copy; sha256/md5 computed "
                "from the identical copy in ../shared/data/dream2022")
_ZENODO_2022 = "https://zenodo.org/records/7395397/files"


def _index_file(base: str, sub: str, name: str, size: int, sha256: str, md5: str) -> RemoteFile:
    return RemoteFile(f"test/{sub}/{name}", f"{base}/{sub}/{name}", size, md5, sha256, _GITHUB_NOTE)


_DREAM_FILES = (
    RemoteFile(
        "train/train_sequences.txt", f"{_ZENODO_2022}/train_sequences.txt?download=1",
        note="the 6,739,258 training sequences (seq<TAB>expr); name confirmed by the wget line in "
             "gautammalik-git/Camformer manuscript_figures/Figure_1/Figure1b_histogram.R; "
             "size and checksum unknown here, recorded on first download"),
    RemoteFile(
        "test/test_sequences.txt", f"{_ZENODO_2022}/test_sequences.txt?download=1",
        note="the 71,103 test sequences (seq<TAB>0); file name as distributed by the challenge, "
             "not confirmed on the Zenodo record page; checksum recorded on first download"),
    RemoteFile(
        "test/filtered_test_data_with_MAUDE_expression.txt",
        f"{_ZENODO_2022}/filtered_test_data_with_MAUDE_expression.txt?download=1",
        note="measured test expression, official order (seq<TAB>expr); name used by the official "
             "evaluation script (as copied in gautammalik-git/Camformer), record not confirmed; "
             "also packaged in Zenodo record 10633252"),
    _index_file(_DREAM_NEW, "test_subset_ids", "all_random_seqs.csv", 858758,
                "f1f3fb397cf664ce9bd5796e68418aad42e9ee017f60b129009b14c10e1096bb",
                "57a91e8f2db842f211676f8ad8c005fc"),
    _index_file(_DREAM_OLD, "test_subset_ids", "challenging_seqs.csv", 303214,
                "b62de941b2d9cf4367d9933e4b43c3997ecb8c6f508f429d4488a3345193d097",
                "9d916ed980ea697841c954602dce778d"),
    _index_file(_DREAM_OLD, "test_subset_ids", "high_exp_seqs.csv", 138018,
                "8ca895e422e92770b715f917ff48593cc7e2d1a004683aef9eea37229de9480f",
                "67727bb062232e720037bcd1ff311502"),
    _index_file(_DREAM_NEW, "test_subset_ids", "low_exp_seqs.csv", 141135,
                "206926a6054c106039b8ae87b2807305ae5454ccc725bc8b162512496949a9c2",
                "d9788063cb79f5cdaf3dd258c42f6a45"),
    _index_file(_DREAM_NEW, "test_subset_ids", "motif_perturbation_seqs.csv", 978811,
                "627cba47abd45b54cfad6e522697cfa0f5b0c7b005290a9311d1ab9e6f45a65a",
                "7076285c4fb9f83035d6eb58a189f19a"),
    _index_file(_DREAM_NEW, "test_subset_ids", "motif_tiling_seqs.csv", 706063,
                "1edaaa96fe9af4987d119cd647a6f53da99dd87eb30e55fb85c76e753cfada03",
                "1efdba91de87df604a231e49e86a19c3"),
    _index_file(_DREAM_NEW, "test_subset_ids", "yeast_seqs.csv", 141464,
                "af3041c3645ba3ae4ff8a992abe1e5170ce57e625e7c5f819e4550036224b22e",
                "955f4db512da17b2ebaf93f6bddd67ef"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "SNVs_exp_indices.json", 256491,
                "d9c05e424283d904f7f7fddc42c47bd908f96ce2cd944dad7dd98b8c61720ff1",
                "067e53c830e01549c1a3cc10e3f15245"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "challenging_exp_indices.json", 5409,
                "57fea77662a5eb45a2e4e734cacc7dea509f4e23ddbe20d4b8c70c44ad578d97",
                "79b1e44356936706be5ee789377ec533"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "ground.json", 252964,
                "c2980b4879fd86ba97885ab3cb8843f62a42820ff7ad34b2e0546cfed17f584e",
                "343cf4feaec589f29e04c98fd45e4077"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "high_exp_indices.json", 2574,
                "55fc35e976866c66756663ef025a82d705cf31fa5776f47fc2af076572d051d9",
                "b4398ce990adf13aed4370b717c47546"),
    _index_file(_DREAM_NEW, "public_leaderboard_ids", "low_exp_indices.json", 2770,
                "41e0a632819d2df50e22a65c803c10bdfb612c9a39ff1b16e717e9206ea32ea2",
                "788002c778ea93b034de30aaff283665"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "motif_perturbation_exp_indices.json", 18346,
                "14075add0dd9edef8cb986bb9bb522de5051125c1d7d8c3895ffb9dc42cc060e",
                "5eadf7933ca2163d6fc4a6a02b7bdcbd"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "motif_tiling_exp_indices.json", 14639,
                "5b018298681f9dc431e18318f69f8da15972bd80131a7d72a9bed43bd1efdc1e",
                "c60b1ad1283c27f2822610b9171b6bf4"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "random_exp_indices.json", 20701,
                "8f3d16a799454ca1e7a40e7041d07c63818041eb1dab089c79885d3a621d3084",
                "78780f32274d4352699d489678d7f840"),
    _index_file(_DREAM_OLD, "public_leaderboard_ids", "sample_submission.json", 265699,
                "b48e2962f7cbe633339eee526beb473c2123edbea1b03968035db4df67ea8eb4",
                "7fb60dd1b3c6444ac68c3dac87a58d5d"),
    _index_file(_DREAM_NEW, "public_leaderboard_ids", "yeast_exp_indices.json", 5837,
                "83f1f62ec6fb3f5f7ab427cd48259c3f7d0e4bed629a83edc05f226384295162",
                "74655ffd51a79095a07f36c33a90373c"),
    RemoteFile("plasmid/plasmid.json", f"{_DREAM_NEW}/plasmid.json", 8296,
               "af7148cbad52bb8270e7891dcb0d019f",
               "e1444cace7908c314be020e79c7790558f3947c3c932fd0c02136df14df59113", _GITHUB_NOTE),
)

_ZENODO_VAISHNAV = "https://zenodo.org/records/4436477/files"
_VAISHNAV_NOTE = ("file name from the download table in autosome-ru/LegNet scripts/paper/README.md; "
                  "size and checksum recorded on first download")
_VAISHNAV_FILES = tuple(
    RemoteFile(f"test/{name}", f"{_ZENODO_VAISHNAV}/{name}?download=1", note=_VAISHNAV_NOTE)
    for name in ("Native_complex.csv", "Native_defined.csv", "Drift_complex.csv",
                 "Drift_defined.csv", "Drift_delta_complex.csv", "Drift_delta_defined.csv")
)

_GEO = "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE104nnn/GSE104878/suppl"
_GEO_NOTE = ("GEO supplementary file of GSE104878 (name as listed by the EUGENe deBoer20 loader); "
             "size and checksum recorded on first download")
_DEBOER_FILES = tuple(
    RemoteFile(f"GSE104878/{name}", f"{_GEO}/{name}", note=_GEO_NOTE)
    for name in (
        "GSE104878_20160503_average_promoter_ELs_per_seq_atLeast100Counts.txt.gz",
        "GSE104878_20160609_average_promoter_ELs_per_seq_Abf1TATA_ALL.shuffled.txt.gz",
        "GSE104878_20160609_average_promoter_ELs_per_seq_pTpA_ALL.shuffled.txt.gz",
        "GSE104878_20161024_average_promoter_ELs_per_seq_3p1E7_Gal_ALL.shuffled.txt.gz",
        "GSE104878_20161024_average_promoter_ELs_per_seq_3p1E7_Gly_ALL.shuffled.txt.gz",
        "GSE104878_20170811_average_promoter_ELs_per_seq_OLS_Glu_goodCores_ALL.txt.gz",
        "GSE104878_20180808_processed_Native80_and_N80_spikein.txt.gz",
        "GSE104878_pTpA_random_design_tiling_etc_YPD_expression.txt.gz",
    )
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="dream2022",
            description="Random Promoter DREAM Challenge 2022: yeast N80 promoters, "
                        "6.7 M training and 71,103 test sequences, test subsets and "
                        "public-leaderboard truth",
            citation="Rafi A. M. et al. (2024) A community effort to optimize sequence-based "
                     "deep learning models of gene regulation. Nat Biotechnol. "
                     "doi:10.1038/s41587-024-02414-w",
            landing_page="https://zenodo.org/records/7395397 ; https://zenodo.org/records/10633252 ; "
                         "https://github.com/de-Boer-Lab/random-promoter-dream-challenge-2022",
            files=_DREAM_FILES,
            note="Zenodo record 10633252 (the paper's processed data) also holds train.txt, val.txt, "
                 "test_subset_ids.tar.gz, public_leaderboard_ids.tar.gz and model weights; the "
                 "subset-id and leaderboard files are taken here one by one from the challenge "
                 "repository instead. The SNV subset-id file (all_SNVs_seqs.csv) was not found "
                 "in any public copy.",
        ),
        Dataset(
            name="vaishnav2022",
            description="Vaishnav et al. 2022 yeast promoter test sets (native and drift "
                        "sequences, complex and defined media)",
            citation="Vaishnav E. D. et al. (2022) The evolution, evolvability and engineering of "
                     "gene regulatory DNA. Nature 603, 455-463. doi:10.1038/s41586-022-04506-6",
            landing_page="https://zenodo.org/records/4436477",
            files=_VAISHNAV_FILES,
            note="the training files of the same record (complex_media_training_data_Glu.txt, "
                 "defined_media_training_data_SC_Ura.txt) are tens of GB and not registered",
        ),
        Dataset(
            name="deboer2020",
            description="de Boer et al. 2020 processed expression files (random, designed and "
                        "native yeast promoter libraries) from GEO GSE104878",
            citation="de Boer C. G. et al. (2020) Deciphering eukaryotic gene-regulatory logic "
                     "with 100 million random promoters. Nat Biotechnol 38, 56-65. "
                     "doi:10.1038/s41587-019-0315-8",
            landing_page="https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE104878",
            files=_DEBOER_FILES,
            note="GSE104878_20180808_processed_Native80_and_N80_spikein.txt.gz is the native-"
                 "fragment library that ../shared/data/deboer2020_native was derived from",
        ),
    )
}


def list_datasets() -> list[Dataset]:
    """All registered datasets, by name."""
    return [DATASETS[name] for name in sorted(DATASETS)]


def get_dataset(name: str) -> Dataset:
    """The dataset called ``name``.

    Raises
    ------
    UnknownDatasetError
        If no dataset has that name; the message lists the known names.
    """
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {known}") from None
