"""``promoterlab doctor``: the machine, and the kernels chosen per model (timing faked)."""

from __future__ import annotations

import json

from test_cli_safety import assert_error, invoke

from promoterlab.models import autotune


def test_doctor_reports_machine_and_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMOTERLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(autotune.KERNELS_ENV, "auto")
    measured = []

    def fake_measure(model, purpose, precision, batch_size, objective, candidates, clock, max_seconds):
        measured.append((purpose, precision, batch_size))
        return {autotune.candidate_label(k, t): 100.0 + 10 * (k.label == "3d/grouped") for k, t in candidates}

    monkeypatch.setattr(autotune, "_measure", fake_measure)
    result = invoke("doctor", "--model", "legnet-s", "--precision", "32", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert "cpu:" in result.output and f"cache: {tmp_path}" in result.output
    assert "legnet-s train (32, batch 128): 3d/grouped@" in result.output
    assert "legnet-s predict (bf16, batch 64): 3d/grouped@" in result.output and "1.10x the rule" in result.output
    assert sorted(measured) == [("predict", "32", 64), ("predict", "bf16", 64), ("train", "32", 128),
                                ("train", "bf16", 128)]
    again = invoke("doctor", "--model", "legnet-s", "--precision", "32", "--purpose", "train", "--json")
    report = json.loads(again.stdout)
    assert len(measured) == 4 and report["choices"][0]["source"] == "cache"  # nothing measured again
    assert report["choices"][0]["kernels"] == {"block_channels": 1, "planar": False}
    assert {"cpu", "isa", "capability", "torch", "native_bf16"} <= set(report["machine"])


def test_doctor_refuses_bad_options():
    assert_error(invoke("doctor", "--purpose", "serve"), "--purpose", "serve")
    assert_error(invoke("doctor", "--precision", "16"), "--precision", "16")
    assert_error(invoke("doctor", "--model", "resnet"), "--model", "resnet")
