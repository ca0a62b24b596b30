"""The store follows its sources: a store file converted from a CSV (or ROOT file) that was
renamed or deleted since is set aside, so it can neither be trained on nor scored twice.

A workspace's sources are the sample files in ``data/csv/`` and ``data/root/``; a store file
``<stem>.h5`` (or ``.parquet``) belongs to the source with the same stem. Set-aside stores
move to ``<store folder>/orphaned/`` (never deleted: the store may be the only copy of events
whose source is gone). A store written by the original BEAD records no source and is itself
the input, so it is always kept.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bead.io.samples import csv_stems, root_stems
from bead.io.store import is_original_store

log = logging.getLogger(__name__)

ORPHANED = "orphaned"


def source_stems(data_dir: Path) -> set[str]:
    """The stems of the sample files under ``data_dir/csv`` and ``data_dir/root``."""
    data_dir = Path(data_dir)
    return csv_stems(data_dir / "csv") | root_stems(data_dir / "root")


def set_aside_orphans(store_dir: Path, suffix: str, data_dir: Path) -> list[Path]:
    """Move the store files of ``store_dir`` whose source is no longer under ``data_dir`` to
    ``store_dir/orphaned``; return where they went (said in one log line)."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        return []
    stems = source_stems(data_dir)
    orphans = sorted(p for p in store_dir.glob(f"*{suffix}")
                     if p.is_file() and not p.name.startswith(".")
                     and p.name.removesuffix(suffix) not in stems
                     and not is_original_store(p))
    if not orphans:
        return []
    target = store_dir / ORPHANED
    target.mkdir(exist_ok=True)
    moved = []
    for path in orphans:
        os.replace(path, target / path.name)
        moved.append(target / path.name)
    log.warning("set aside %d store file(s) whose CSV/ROOT source is no longer in %s: %s -> %s "
                "(they are not used)", len(moved), data_dir, ", ".join(p.name for p in orphans),
                target)
    return moved
