"""Registry of public promoter datasets and a verified, resumable downloader."""

from promoterlab.datasets.download import (
    ENV_VAR,
    MANIFEST_NAME,
    FetchReport,
    FileStatus,
    dataset_dir,
    fetch,
    is_local_copy,
    read_manifest,
    resolve_data_dir,
)
from promoterlab.datasets.registry import (
    DATASETS,
    Dataset,
    RemoteFile,
    UnknownDatasetError,
    get_dataset,
    list_datasets,
)
from promoterlab.datasets.transfer import (
    ChecksumError,
    DownloadError,
    check_file,
    download_file,
    file_digests,
    git_blob_id,
)

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "MANIFEST_NAME",
    "ChecksumError",
    "Dataset",
    "DownloadError",
    "FetchReport",
    "FileStatus",
    "RemoteFile",
    "UnknownDatasetError",
    "check_file",
    "dataset_dir",
    "download_file",
    "fetch",
    "file_digests",
    "get_dataset",
    "git_blob_id",
    "is_local_copy",
    "list_datasets",
    "read_manifest",
    "resolve_data_dir",
]
