"""Pretrained-model registry: download from a local HTTP server at the real path, verify, convert, use.

The fixture state dict of the original LegNet (../shared/fixtures/legnet_reference) is served as
``/autosome-ru/LegNet/<commit>/models/dream2022/model_80.pth`` under ``PROMOTERLAB_MODELS_URL``,
registered with its own git blob id; nothing is downloaded from the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from promoterlab.cli import app
from promoterlab.sequence import Layout
from promoterlab.datasets.transfer import git_blob_id
from promoterlab.evaluation.predict import predict_sequences
from promoterlab.models.original_weights import original_model, stem_permutation
from promoterlab.pretrained import MODELS_URL_VAR, PRETRAINED, get_pretrained, list_pretrained
from promoterlab.pretrained.fetch import import_weights, weights_path
from promoterlab.runs import load_run

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
REFERENCE = SHARED / "fixtures" / "legnet_reference"
FLANKS = SHARED / "data" / "dream2022" / "plasmid" / "flanks.txt"
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/fixtures/legnet_reference not available")
NAME = "legnet-dream2022"
REAL_PATH = "/autosome-ru/LegNet/63773bb04a85dea33bdbf2e2350f7483cc2c96b5/models/dream2022/model_80.pth"
SEQS = {  # two DREAM test sequences (110 bp, adapters included) and a short one without the adapter
    "t0": "TGCATTTTTTTCACATCAAAAAAAAAAAAAAAAAAAAAAACTAGCAAACCAATGAAGCGGCTTGGCTTACAGGTACATTTTACCTTAGCGCTAAATG"
          "GGTTACGGCTGTT",
    "t1": "TGCATTTTTTTCACATCAAAAAAAAAAAAAAAAAAAGAAAACGAGCCTTCAGCATGTGAATTAAAGAAATAGTAATCCCAACGCACTCATCCGCTATG"
          "GTTACGGCTGTT",
    "short": "ACGTTTGACCAGGGTAAC",
}


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes) with ``Range: bytes=N-``; ``server.cut[path]`` cuts the
    next response after that many body bytes (with the full length announced, as a dropped connection)."""

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match else 0
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cut.pop(self.path, None)
        self.wfile.write(data[start:] if cut is None else data[start:start + cut])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.cut, httpd.requests = {}, {}, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(MODELS_URL_VAR, f"http://127.0.0.1:{httpd.server_address[1]}/")
    yield httpd
    httpd.shutdown()
    httpd.server_close()


FIXTURE_BYTES = (REFERENCE / "dream2022.state_dict.pt").read_bytes() if REFERENCE.is_dir() else b""


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def served(server, monkeypatch):
    """The fixture weights served at the real path and registered (test entry) under their own blob id."""
    server.files[REAL_PATH] = FIXTURE_BYTES
    monkeypatch.setitem(PRETRAINED, NAME, dataclasses.replace(get_pretrained(NAME), git_blob=blob_id(FIXTURE_BYTES)))
    return server


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def reference_io() -> dict:
    return dict(np.load(REFERENCE / "dream2022.io.npz"))


def test_registry_holds_the_published_files():
    entries = {e.name: e for e in list_pretrained()}
    assert {n: (e.path, e.git_blob) for n, e in entries.items()} == {
        "legnet-dream2022": ("models/dream2022/model_80.pth", "7d314e2f2f9bb1aba4a5a91d4598f687df12e3ce"),
        "legnet-vaishnav2022-complex": ("models/complex/model_300.pth", "6cffcf0df0d59e8e567559e5469925209a2e2e6b"),
        "legnet-vaishnav2022-defined": ("models/defined/model_150.pth", "0183e7f230f2b0bcde464ec6704e9cac6546b7c3"),
    }
    for entry in entries.values():
        assert (entry.seq_len, entry.singleton_channel, entry.licence.split()[0]) == (150, True, "MIT")
        assert entry.metrics and entry.citation[0].startswith("Penzar") and entry.sources and entry.layout_notes
    assert entries[NAME].url("https://raw.githubusercontent.com") == f"https://raw.githubusercontent.com{REAL_PATH}"


def test_base_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(MODELS_URL_VAR, raising=False)
    assert get_pretrained(NAME).url().startswith("https://raw.githubusercontent.com/autosome-ru/LegNet/63773bb")
    monkeypatch.setenv(MODELS_URL_VAR, "http://mirror.example/")
    assert get_pretrained(NAME).url() == f"http://mirror.example{REAL_PATH}"
    assert get_pretrained(NAME).url("http://other") == f"http://other{REAL_PATH}"


def test_registry_layout_is_the_original_preprocessing():
    """legnet/train.py cuts 17 bp and prepends the plasmid: for a 110 bp sequence, the 57 bp flank + 93 bp."""
    flank = dict(line.split("\t") for line in FLANKS.read_text().splitlines() if line and not line.startswith("#"))
    entry = get_pretrained(NAME)
    layout = Layout(entry.seq_len, entry.left_adapter, entry.upstream)
    assert layout.apply(SEQS["t0"]) == flank["FLANK5_57BP_LEGNET150"] + SEQS["t0"][17:]


def test_git_blob_id_is_gits(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert git_blob_id(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object hello.txt`


def test_fetch_downloads_verifies_and_converts(served, tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    result = invoke("models", "fetch", NAME, "-o", out, "--data-dir", data, "--no-progress")
    assert result.exit_code == 0, result.output
    assert served.requests == [(REAL_PATH, None)]
    cached = weights_path(get_pretrained(NAME), data)
    assert cached.read_bytes() == FIXTURE_BYTES
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.yaml", "model.pt", "summary.json"]

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["seq_len"] == 150 and config["data"]["singleton_channel"] is True
    assert config["data"]["left_adapter"] == "TGCATTTTTTTCACATC" and config["model"]["name"] == "legnet-original"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pretrained"] == NAME and summary["params"] == 1_852_846 and summary["seed"] == 42
    assert summary["weights"]["git_blob"] == blob_id(FIXTURE_BYTES) and summary["weights"]["url"].endswith(REAL_PATH)
    assert {m["name"] for m in summary["reported_metrics"]} >= {"score_pearson_r2", "train_pearson"}
    card = (out / "README.md").read_text()
    assert "MIT" in card and "doi:10.1093/bioinformatics/btad457" in card and "is_singleton" in card

    model, run_config = load_run(out)
    io = reference_io()
    with torch.inference_mode():
        logits = model(torch.from_numpy(io["x"])[:, stem_permutation(6)])
    np.testing.assert_allclose(torch.log_softmax(logits, 1).numpy(), io["logprobs"], rtol=0, atol=1e-5)

    # A second fetch reuses the verified file: no request.
    assert invoke("models", "fetch", NAME, "-o", tmp_path / "again", "--data-dir", data, "--no-progress").exit_code == 0
    assert len(served.requests) == 1


def _original_prediction(seq: str) -> float:
    """What legnet/test.py computes for one sequence, written from its description: the original's
    layout (17 bp cut, plasmid prepended, last 150 kept), one-hot A, G, C, T, is_reverse, is_singleton 0,
    forward and reverse-complement expected bins averaged, on the unconverted weights."""
    flank = dict(line.split("\t") for line in FLANKS.read_text().splitlines() if line and not line.startswith("#"))
    upstream = flank["PLASMID_UPSTREAM_200BP_OF_N80"]
    window = (upstream + seq[17:])[-150:]
    reverse = window[::-1].translate(str.maketrans("ACGT", "TGCA"))
    state = torch.load(REFERENCE / "dream2022.state_dict.pt", map_location="cpu", weights_only=True)
    model = original_model(state)
    model.stem[0].weight.data = state["seqextractor.blc0.0.weight"]  # the original channel order
    values = []
    for text, rev in ((window, 0.0), (reverse, 1.0)):
        x = torch.zeros(1, 6, 150)
        for i, base in enumerate(text):
            x[0, "AGCT".index(base), i] = 1.0
        x[0, 4] = rev
        with torch.inference_mode():
            values.append(float((torch.softmax(model(x), 1) * torch.arange(18)).sum()))
    return sum(values) / 2


def test_converted_run_predicts_like_the_original_code(served, tmp_path):
    out = tmp_path / "run"
    assert invoke("models", "fetch", NAME, "-o", out, "--data-dir", tmp_path / "data", "--no-progress").exit_code == 0
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">{k}\n{v}\n" for k, v in SEQS.items()))
    result = invoke("predict", out, fasta, "-o", tmp_path / "pred.tsv", "--precision", "32", "--no-progress")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "pred.tsv", sep="\t")
    assert list(table["id"]) == list(SEQS)
    for key in ("t0", "t1"):  # sequences with the adapter: the original's layout is promoterlab's
        assert table.set_index("id").loc[key, "prediction"] == pytest.approx(_original_prediction(SEQS[key]), abs=1e-4)
    model, config = load_run(out)
    direct = predict_sequences(model, list(SEQS.values()), config, precision="32")
    np.testing.assert_allclose(table["prediction"].to_numpy(), direct, rtol=0, atol=1e-5)


def test_corrupted_file_is_refused_and_nothing_is_left(served, tmp_path):
    altered = bytearray(FIXTURE_BYTES)
    altered[len(altered) // 2] ^= 0xFF
    served.files[REAL_PATH] = bytes(altered)
    data, out = tmp_path / "data", tmp_path / "run"
    result = invoke("models", "fetch", NAME, "-o", out, "--data-dir", data, "--no-progress")
    assert result.exit_code == 1  # the work failed: the file is not the published one
    assert "checksum error" in result.stderr and "git_blob" in result.stderr and "Traceback" not in result.output
    assert not out.exists() and not data.exists()  # no run folder, no file, no partial file, no empty folders
    assert served.requests == [(REAL_PATH, None)]  # a checksum error is final, not retried


def test_interrupted_download_resumes(served, tmp_path):
    data, cut = tmp_path / "data", 3_000_000
    served.cut[REAL_PATH] = cut
    failed = invoke("models", "fetch", NAME, "-o", tmp_path / "run", "--data-dir", data, "--no-progress",
                    "--retries", "0")
    assert failed.exit_code == 2 and "kept" in failed.stderr and not (tmp_path / "run").exists()
    part = weights_path(get_pretrained(NAME), data).with_name("model_80.pth.part")
    assert part.stat().st_size == cut
    result = invoke("models", "fetch", NAME, "-o", tmp_path / "run", "--data-dir", data, "--no-progress")
    assert result.exit_code == 0, result.output
    assert served.requests == [(REAL_PATH, None), (REAL_PATH, f"bytes={cut}-")]
    assert weights_path(get_pretrained(NAME), data).read_bytes() == FIXTURE_BYTES and not part.exists()


def test_import_reads_the_singleton_channel_from_the_weights(tmp_path):
    out = tmp_path / "run"
    result = invoke("models", "import", REFERENCE / "legnet_train_defaults.state_dict.pt", "-o", out, "--seq-len", 120)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["seq_len"] == config["model"]["seq_len"] == 120
    assert config["data"]["singleton_channel"] is False and config["model"]["in_channels"] == 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == "imported" and summary["params"] == 2_881_192 and "reported_metrics" not in summary
    model, _ = load_run(out)
    io = dict(np.load(REFERENCE / "legnet_train_defaults.io.npz"))
    x = torch.from_numpy(io["x"])[:, stem_permutation(5)]
    with torch.inference_mode():
        logits = model(torch.cat([x, torch.zeros_like(x[:, :1])], dim=1))
    np.testing.assert_allclose(torch.log_softmax(logits, 1).numpy(), io["logprobs"], rtol=0, atol=1e-5)
    fasta = tmp_path / "seqs.fa"
    fasta.write_text(f">t0\n{SEQS['t0']}\n")
    assert invoke("predict", out, fasta, "-o", tmp_path / "p.tsv", "--no-progress").exit_code == 0


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d.joinpath("notes.txt").write_text("not weights") and d / "notes.txt", "not a PyTorch state dict"),
    (lambda d: torch.save({"w": torch.zeros(2)}, d / "x.pth") or d / "x.pth", "no tensor 'seqextractor.blc0.0.weight'"),
    (lambda d: torch.save({"config": {}, "state_dict": {}}, d / "m.pt") or d / "m.pt", "promoterlab model file"),
])
def test_import_refuses_other_files(tmp_path, make, fragment):
    source = make(tmp_path)
    result = invoke("models", "import", source, "-o", tmp_path / "run")
    assert result.exit_code == 2 and fragment in result.stderr and str(source) in result.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run.*"))


def test_import_refuses_a_bad_layout_and_an_occupied_folder(tmp_path):
    weights = REFERENCE / "dream2022.state_dict.pt"
    result = invoke("models", "import", weights, "-o", tmp_path / "run", "--left-adapter", "TGCA-X")
    assert result.exit_code == 2 and "--left-adapter" in result.stderr and not (tmp_path / "run").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = invoke("models", "import", weights, "-o", tmp_path / "busy")
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert invoke("models", "import", weights, "-o", tmp_path / "busy", "--overwrite").exit_code == 0
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine" and (tmp_path / "busy" / "model.pt").is_file()


def test_import_weights_api_writes_a_loadable_run(tmp_path):
    out = import_weights(REFERENCE / "dream2022.state_dict.pt", tmp_path / "run", Layout(150))
    model, config = load_run(out)
    assert config.model.name == "legnet-original" and config.data.layout == Layout(150)


def test_models_group_lists_and_keeps_the_benchmark(tmp_path):
    result = invoke("models")
    assert result.exit_code == 0 and all(word in result.output for word in ("list", "fetch", "import", "benchmark"))
    listed = invoke("models", "list", "--data-dir", tmp_path)
    assert listed.exit_code == 0
    for entry in list_pretrained():
        assert entry.name in listed.stdout and entry.git_blob[:12] in listed.stdout
    rows = json.loads(invoke("models", "list", "--json", "--data-dir", tmp_path).stdout)
    assert [r["name"] for r in rows] == list(PRETRAINED) and not any(r["downloaded"] for r in rows)
    assert rows[0]["metrics"][0]["value"] == 0.829 and rows[0]["layout_sources"]
    unknown = invoke("models", "fetch", "no-such-model", "-o", tmp_path / "run")
    assert unknown.exit_code == 2 and "legnet-dream2022" in unknown.stderr and not (tmp_path / "run").exists()
    mixed = invoke("models", "--benchmark", "list")
    assert mixed.exit_code == 2 and "--benchmark" in mixed.stderr
    assert invoke("models", "benchmark", "--device", "nonsense").exit_code == 2
