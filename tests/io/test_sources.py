"""The store follows data/csv (and data/root): orphaned stores are set aside, never used."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from bead.io.events import EventChunk
from bead.io.sources import ORPHANED, set_aside_orphans, source_stems
from bead.io.store import StoreWriter


def _chunk() -> EventChunk:
    one = np.array([1])
    return EventChunk(evt_id=np.array([0]), evt_weight=np.ones(1), met=np.ones(1),
                      met_phi=np.zeros(1), num_jets=one, jet_num_constits=one, jet_btag=one * 0,
                      con_pid=np.array([211]), con_pt=np.ones(1), con_eta=np.zeros(1),
                      con_phi=np.zeros(1))


def _store(folder: Path, stem: str, fmt: str = "h5", source: str | None = None) -> Path:
    path = folder / f"{stem}.{fmt}"
    with StoreWriter(path, fmt, source=source or f"{stem}.csv") as writer:
        writer.append(_chunk())
    return path


def test_stores_without_a_source_are_set_aside(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "csv").mkdir(parents=True)
    (data / "root").mkdir()
    (data / "csv" / "bkg_train_pythia.csv").write_text("x")
    (data / "csv" / "sig_test_svj_new.csv.gz").write_bytes(b"x")
    (data / "root" / "bkg_test_delphes.root").write_bytes(b"x")
    assert source_stems(data) == {"bkg_train_pythia", "sig_test_svj_new", "bkg_test_delphes"}
    store = data / "h5"
    kept = [_store(store, s) for s in ("bkg_train_pythia", "sig_test_svj_new")]
    kept.append(_store(store, "bkg_test_delphes", source="bkg_test_delphes.root"))
    renamed = _store(store, "sig_test_svj_old")  # its CSV was renamed to ..._new
    deleted = _store(store, "bkg_train_herwig")  # its CSV was deleted
    moved = set_aside_orphans(store, ".h5", data)
    assert sorted(p.name for p in moved) == ["bkg_train_herwig.h5", "sig_test_svj_old.h5"]
    assert all(p.parent == store / ORPHANED and p.is_file() for p in moved)
    assert not renamed.exists() and not deleted.exists()
    assert all(p.exists() for p in kept)
    assert set_aside_orphans(store, ".h5", data) == []  # nothing left to do


def test_an_original_bead_store_records_no_source_and_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "data" / "h5"
    store.mkdir(parents=True)
    original = store / "bkg_test_sherpa.h5"
    with h5py.File(original, "w") as h5:  # the original's plain float32 datasets, no attrs
        h5["events"] = np.zeros((1, 5), np.float32)
        h5["jets"] = np.zeros((0, 7), np.float32)
        h5["constituents"] = np.zeros((0, 7), np.float32)
    assert set_aside_orphans(store, ".h5", tmp_path / "data") == []
    assert original.exists()


def test_parquet_stores_follow_their_source_too(tmp_path: Path) -> None:
    _store(tmp_path, "bkg_train_pythia", fmt="parquet")
    assert set_aside_orphans(tmp_path, ".parquet", tmp_path / "nodata") == [
        tmp_path / ORPHANED / "bkg_train_pythia.parquet"]
