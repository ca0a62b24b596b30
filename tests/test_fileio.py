"""Atomic writes: whole files or none, readable like any other new file; the temporary files
of a killed run are removed by the next one, never those of a live writer."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bead.fileio import (
    _host_id,
    atomic_path,
    atomic_write_text,
    remove_stale_temporaries,
    staged_folder,
)


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


def _dead_pid() -> int:
    """The id of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path: Path, caplog) -> None:
    host, dead, old = _host_id(), _dead_pid(), 2 * 3600
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # name: (seconds since last touched, removed?)
        files = {
            f".a.h5.{host}-{dead}.k3j4h5g6.tmp": (0, True),  # this host, writer gone
            f".b.h5.{host}-{sleeper.pid}.k3j4h5g6.tmp": (old, False),  # writer still running
            f".c.h5.{host}-{os.getpid()}.k3j4h5g6.tmp": (old, False),  # this very process
            f".d.h5.0badf00d-{dead}.k3j4h5g6.tmp": (0, False),  # another host, fresh
            f".e.h5.0badf00d-{dead}.k3j4h5g6.tmp": (old, True),  # another host, untouched
            ".f.h5.1f2e3d4c5b6a.tmp": (0, False),  # an older version's name, fresh
            ".g.h5.1f2e3d4c5b6a.tmp": (old, True),  # an older version's name, untouched
            ".hidden": (old, False), "x.tmp": (old, False), ".foo.tmp": (old, False),
            "a.h5": (old, False),  # not bead's temporary names
        }
        for name, (age, _) in files.items():
            (tmp_path / name).write_text("x")
            _age(tmp_path / name, age)
        staging = tmp_path / f".staging.{host}-{dead}.abc123"
        staging.mkdir()
        (staging / "t.safetensors").write_text("x")
        live_staging = tmp_path / f".staging.{host}-{sleeper.pid}.abc123"
        live_staging.mkdir()
        with caplog.at_level(logging.INFO, logger="bead.fileio"):
            removed = remove_stale_temporaries(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    gone = [name for name, (_, stale) in files.items() if stale]
    kept = [name for name, (_, stale) in files.items() if not stale]
    assert sorted(p.name for p in removed) == sorted([*gone, staging.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, live_staging.name])
    assert "removed 4 temporary file(s) left by an interrupted run" in caplog.text
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_temporary_names_carry_their_writer(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.txt") as tmp:
        assert tmp.name.startswith(f".a.txt.{_host_id()}-{os.getpid()}.")
    with staged_folder(tmp_path) as staging:
        assert staging.name.startswith(f".staging.{_host_id()}-{os.getpid()}.")
