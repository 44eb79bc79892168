"""Dataset registry and downloader, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pooch
import pytest
import requests
import typer
from typer.testing import CliRunner

from promoterlab.cli.data import data_app
from promoterlab.datasets import (
    DATASETS,
    MANIFEST_NAME,
    ChecksumError,
    Dataset,
    DownloadError,
    RemoteFile,
    download_file,
    fetch,
    get_dataset,
    read_manifest,
    resolve_data_dir,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes
CUT = 100_000


class _State:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}
        self.fail: dict[str, int] = {}  # name -> how many next requests get HTTP 503
        self.ignore_range = False


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves files from the state's folder, honouring ``Range: bytes=N-``.

    A name in ``state.cut`` has its next response cut after that many body bytes, with the
    full Content-Length announced, as a dropped connection would leave it.
    """

    def do_GET(self) -> None:
        state: _State = self.server.state
        name = self.path.lstrip("/").split("?")[0]
        state.requests.append((name, self.headers.get("Range")))
        path = state.root / name
        if not path.is_file():
            self.send_error(404)
            return
        if state.fail.get(name):
            state.fail[name] -= 1
            self.send_error(503)
            return
        data, start = path.read_bytes(), 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = state.cut.pop(name, None)
        self.wfile.write(body if cut is None else body[:cut])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.state = _State(root)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state
    httpd.shutdown()
    httpd.server_close()


def _serve(state: _State, name: str, data: bytes = PAYLOAD) -> str:
    (state.root / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_good_download(server, tmp_path):
    base, state = server
    sha = _serve(state, "good.bin")
    dest = tmp_path / "out" / "good.bin"
    digests = download_file(f"{base}/good.bin", dest, size=len(PAYLOAD), sha256=sha,
                            md5=hashlib.md5(PAYLOAD).hexdigest(), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert digests == {"size": len(PAYLOAD), "sha256": sha, "md5": hashlib.md5(PAYLOAD).hexdigest()}
    assert not dest.with_name("good.bin.part").exists()
    assert state.requests == [("good.bin", None)]


def test_corrupted_file_raises_and_leaves_nothing(server, tmp_path):
    base, state = server
    _serve(state, "bad.bin", PAYLOAD[:-1] + b"\x00")
    dest = tmp_path / "bad.bin"
    with pytest.raises(ChecksumError, match="checksum error.*sha256"):
        download_file(f"{base}/bad.bin", dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                      progress=False)
    assert not dest.exists()
    assert not dest.with_name("bad.bin.part").exists()
    assert state.requests == [("bad.bin", None)]  # a checksum error is final, not retried


def test_wrong_size_is_rejected(server, tmp_path):
    base, state = server
    _serve(state, "short.bin", PAYLOAD[:1000])
    with pytest.raises(ChecksumError, match="size is 1000"):
        download_file(f"{base}/short.bin", tmp_path / "short.bin", size=len(PAYLOAD), progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    base, state = server
    sha = _serve(state, "big.bin")
    state.cut["big.bin"] = CUT
    dest = tmp_path / "big.bin"
    download_file(f"{base}/big.bin", dest, sha256=sha, progress=False, retries=2)
    assert dest.read_bytes() == PAYLOAD
    assert state.requests == [("big.bin", None), ("big.bin", f"bytes={CUT}-")]


def test_interrupted_transfer_resumes_on_next_call(server, tmp_path):
    base, state = server
    sha = _serve(state, "big.bin")
    state.cut["big.bin"] = CUT
    dest = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match=f"1 attempt.*closed after {CUT} of {len(PAYLOAD)} bytes.*"
                                            f"{CUT} bytes kept in .*big.bin.part for resuming"):
        download_file(f"{base}/big.bin", dest, sha256=sha, progress=False, retries=0)
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == CUT and not dest.exists()
    download_file(f"{base}/big.bin", dest, sha256=sha, progress=False, retries=0)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert state.requests[-1] == ("big.bin", f"bytes={CUT}-")


def test_complete_partial_file_and_server_ignoring_range(server, tmp_path):
    base, state = server
    sha = _serve(state, "f.bin")
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download_file(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD  # answered 416, the part was complete
    state.ignore_range = True
    (tmp_path / "g.bin.part").write_bytes(b"garbage")
    _serve(state, "g.bin")
    download_file(f"{base}/g.bin", tmp_path / "g.bin", sha256=sha, progress=False)
    assert (tmp_path / "g.bin").read_bytes() == PAYLOAD  # 200 instead of 206: rewritten


def test_http_error_names_url_and_is_not_retried(server, tmp_path):
    base, state = server
    with pytest.raises(DownloadError, match="absent.bin.*HTTP 404"):
        download_file(f"{base}/absent.bin", tmp_path / "absent.bin", progress=False, retries=3)
    assert state.requests == [("absent.bin", None)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


def test_server_error_is_retried_by_pooch(server, tmp_path):
    base, state = server
    sha = _serve(state, "flaky.bin")
    state.fail["flaky.bin"] = 1
    download_file(f"{base}/flaky.bin", tmp_path / "flaky.bin", sha256=sha, progress=False, retries=1)
    assert (tmp_path / "flaky.bin").read_bytes() == PAYLOAD
    assert state.requests == [("flaky.bin", None)] * 2
    state.fail["flaky.bin"] = 2
    with pytest.raises(DownloadError, match="failed after 2 attempt.*HTTP 503"):
        download_file(f"{base}/flaky.bin", tmp_path / "again.bin", progress=False, retries=1)
    assert not (tmp_path / "again.bin").exists()


def test_present_file_is_replaced_only_by_a_verified_download(server, tmp_path):
    base, state = server
    sha = _serve(state, "new.bin")
    dest = tmp_path / "new.bin"
    dest.write_bytes(b"old copy")
    download_file(f"{base}/new.bin", dest, sha256=sha, progress=False)
    assert dest.read_bytes() == PAYLOAD  # downloaded although a file was there (fetch --force)
    dest.write_bytes(b"old copy")
    with pytest.raises(ChecksumError, match="checksum error.*sha256"):
        download_file(f"{base}/new.bin", dest, sha256="0" * 64, progress=False)
    assert dest.read_bytes() == b"old copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.bin", "served"]


def test_only_http_addresses_are_downloaded(tmp_path):
    with pytest.raises(DownloadError, match="only http and https"):
        download_file("ftp://example.org/x.bin", tmp_path / "x.bin", progress=False)


def _toy_dataset(base: str, sha: str) -> Dataset:
    return Dataset("toy", "toy data", "nobody", base, (
        RemoteFile("a/known.bin", f"{base}/known.bin", len(PAYLOAD), None, sha),
        RemoteFile("b/unknown.txt", f"{base}/unknown.txt?download=1"),
    ))


def _no_network(*args, **kwargs):
    raise AssertionError("network access attempted")


def _block_network(monkeypatch) -> None:
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", _no_network)


def test_fetch_records_checksums_and_verifies_later(server, tmp_path, monkeypatch):
    base, state = server
    dataset = _toy_dataset(base, _serve(state, "known.bin"))
    _serve(state, "unknown.txt", b"hello\n")
    target = tmp_path / "toy"
    report = fetch(dataset, target, progress=False)
    assert [f.status for f in report.files] == ["downloaded", "downloaded"] and not report.local_copy
    record = read_manifest(target)["b/unknown.txt"]
    assert record["sha256"] == hashlib.sha256(b"hello\n").hexdigest() and record["size"] == 6

    _block_network(monkeypatch)
    assert [f.status for f in fetch(dataset, target, progress=False).files] == ["verified"] * 2
    (target / "b" / "unknown.txt").write_bytes(b"hullo\n")
    report = fetch(dataset, target, progress=False)
    assert report.files[1].status == "mismatch" and "checksum mismatch" in report.files[1].detail
    assert not report.ok


def test_fetch_local_copy_reports_missing_unless_asked(server, tmp_path, monkeypatch):
    base, state = server
    dataset = _toy_dataset(base, _serve(state, "known.bin"))
    _serve(state, "unknown.txt", b"hello\n")
    copy = tmp_path / "copy"
    (copy / "a").mkdir(parents=True)
    (copy / "a" / "known.bin").write_bytes(PAYLOAD)
    report = fetch(dataset, copy, progress=False)
    assert report.local_copy and report.ok
    assert [f.status for f in report.files] == ["verified", "missing"]
    assert state.requests == [] and not (copy / MANIFEST_NAME).exists()
    report = fetch(dataset, copy, progress=False, download_missing=True)
    assert [f.status for f in report.files] == ["verified", "downloaded"]
    assert state.requests == [("unknown.txt", None)]


def test_shared_local_copy_needs_no_network(monkeypatch):
    directory = SHARED / "dream2022"
    if not directory.is_dir():
        pytest.skip("../shared/data/dream2022 not available")
    _block_network(monkeypatch)
    report = fetch(get_dataset("dream2022"), directory, progress=False)
    status = {f.path: f.status for f in report.files}
    assert report.local_copy and report.ok
    assert status["test/public_leaderboard_ids/ground.json"] == "verified"
    assert status["test/test_subset_ids/motif_tiling_seqs.csv"] == "verified"
    assert status["test/test_sequences.txt"] == "present"
    assert status["train/train_sequences.txt"] == "missing"

    app = typer.Typer()
    app.add_typer(data_app, name="data")
    result = CliRunner().invoke(app, ["data", "fetch", "dream2022", "--dir", str(directory),
                                      "--only", "test/*", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "local copy" in result.stdout and "18 verified" not in result.stdout
    assert "17 verified, 1 present, 1 missing" in result.stdout


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMOTERLAB_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("PROMOTERLAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "promoterlab" == pooch.os_cache("promoterlab")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(None) == tmp_path / "xdg" / "promoterlab"


def test_registry_entries_are_well_formed():
    assert set(DATASETS) == {"dream2022", "vaishnav2022", "deboer2020"}
    for dataset in DATASETS.values():
        paths = [f.path for f in dataset.files]
        assert len(paths) == len(set(paths)) and dataset.citation and dataset.files
        for entry in dataset.files:
            assert entry.url.startswith("https://") and not entry.path.startswith("/")
            assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
            assert entry.md5 is None or re.fullmatch(r"[0-9a-f]{32}", entry.md5)
    assert get_dataset("dream2022").file("test/public_leaderboard_ids/ground.json").size == 252964
    with pytest.raises(KeyError, match="known datasets: deboer2020, dream2022, vaishnav2022"):
        get_dataset("nope")


def test_cli_list_and_unknown_dataset(tmp_path):
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "list", "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    assert listing["data_dir"] == str(tmp_path)
    assert {d["name"] for d in listing["datasets"]} == set(DATASETS)
    result = runner.invoke(app, ["data", "fetch", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.stderr
