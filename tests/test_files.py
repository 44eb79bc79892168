"""Atomic writes: the target is replaced whole or not at all."""

from __future__ import annotations

import pytest

from promoterlab.files import atomic_path, write_text_atomic


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_concurrent_writers_get_their_own_temp_files(tmp_path):
    target = tmp_path / "spec.yaml"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("a")
        second.write_text("b")
    assert target.read_text() == "a"  # the outer block finishes last and wins
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]
