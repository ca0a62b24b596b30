"""Atomic writes: whole files or none, readable like any other new file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bead.fileio import atomic_path, atomic_write_text, staged_folder


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_files_get_the_usual_mode(tmp_path: Path, umask_022) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_staged_folder_moves_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(tmp_path, last=("m.json",)) as staging:
        (staging / "x.bin").write_text("new")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    with staged_folder(tmp_path, last=("m.json",)) as staging:
        (staging / "m.json").write_text("new")
        (staging / "x.bin").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "x.bin"]
    assert (tmp_path / "m.json").read_text() == "new"
