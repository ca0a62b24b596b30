"""Atomic file writes: an interrupted run never leaves a half-written file (SPEC §2).

Every file is written under a hidden temporary name beside its final one and renamed into place
when complete. A run killed outright (SIGKILL, a crash, a power cut) cannot remove its
temporary files, so their names say who wrote them (host and process id), and the next run of a
mode removes the ones in its output folders whose writer is gone:
:func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".staging."
# A temporary name whose writer cannot be checked (another host, or no writer in the name) is
# only removed when nothing touched it for this long: a live writer keeps its files fresh.
STALE_AFTER_S = 3600.0
_WRITER = r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.)?"  # absent in names of older versions
_TEMP_FILE = re.compile(rf"^\.(?P<name>.+?)\.{_WRITER}[^.]+\.tmp$")
_STAGING = re.compile(rf"^\.staging\.{_WRITER}[^.]+$")


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in blocks (stores and checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _host_id() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _writer_tag() -> str:
    """``<host>-<pid>.``: who writes a temporary file, so a later run can tell a stale one."""
    return f"{_host_id()}-{os.getpid()}."


def _file_mode() -> int:
    """The mode a plain ``open`` would give a new file: mkstemp's 0600 would hide outputs from
    the rest of a group sharing a workspace."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _file_mode())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(folder: Path, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a staging folder inside ``folder``; only when the block succeeds are its files
    moved into ``folder`` (those named in ``last`` at the end), so a failure part-way through
    a set of files that belong together leaves the previous set untouched."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + _writer_tag(), dir=folder))
    try:
        yield staging
        names = sorted(p.name for p in staging.iterdir())
        for name in [n for n in names if n not in last] + [n for n in last if n in names]:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _last_touched(path: Path) -> float:
    """Newest modification time of ``path`` and, for a folder, of the files in it."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [p.lstat().st_mtime for p in path.iterdir()]
    return max(times)


def _is_stale(path: Path, match: re.Match[str], now: float) -> bool:
    host, pid = match["host"], match["pid"]
    if host == _host_id() and pid is not None:
        return int(pid) != os.getpid() and not _pid_running(int(pid))
    return now - _last_touched(path) > STALE_AFTER_S


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files (``.<name>.<host>-<pid>.<random>.tmp``) and staging folders
    (``.staging.<host>-<pid>.<random>``) that bead left in ``folder`` when a run was killed.

    A temporary name is stale when its writer was a process on this host that no longer runs;
    when the writer cannot be checked (another host sharing the folder, or a name written by an
    older version without a writer) only after :data:`STALE_AFTER_S` without any change. Other
    names are never touched. Returns what was removed (logged in one line).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for path in sorted(folder.iterdir()):
        pattern = _STAGING if path.is_dir() and not path.is_symlink() else _TEMP_FILE
        match = pattern.match(path.name)
        try:
            if match is None or not _is_stale(path, match, now):
                continue
            if pattern is _STAGING:
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # its writer finished or another run removed it meanwhile
            continue
        removed.append(path)
    if removed:
        logger.info("%s: removed %d temporary file(s) left by an interrupted run: %s", folder,
                    len(removed), ", ".join(p.name for p in removed))
    return removed
