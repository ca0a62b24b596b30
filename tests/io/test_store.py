"""The HDF5/Parquet event store (SPEC §4.3): round trips, open readers, atomic writes, and the
original BEAD's plain float32 stores."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.lib import recfunctions

from bead.errors import DataError, UsageError
from bead.fileio import remove_stale_temporaries
from bead.io.events import EventChunk
from bead.io.store import (
    StoreWriter,
    count_store_events,
    is_original_store,
    iter_store,
    read_store,
    store_suffix,
)


def make_chunk(first_id: int, num_jets: list[int], seed: int) -> EventChunk:
    """Random events; includes events without jets and jets without constituents."""
    rng = np.random.default_rng(seed)
    n_ev, n_jets = len(num_jets), sum(num_jets)
    constits = rng.integers(0, 5, n_jets)
    n_con = int(constits.sum())
    return EventChunk(
        evt_id=first_id + 2 * np.arange(n_ev),  # gaps, as after skipped rows
        evt_weight=rng.uniform(1e-9, 1e-6, n_ev),
        met=rng.uniform(0, 300, n_ev),
        met_phi=rng.uniform(-np.pi, np.pi, n_ev),
        num_jets=np.array(num_jets, dtype=np.int64),
        jet_num_constits=constits.astype(np.int64),
        jet_btag=rng.integers(0, 2, n_jets),
        con_pid=rng.choice([22, 211, -211, 130, 11, -13], n_con),
        con_pt=rng.exponential(10.0, n_con),
        con_eta=rng.normal(0, 1, n_con),
        con_phi=rng.uniform(-np.pi, np.pi, n_con),
    )


CHUNKS = [make_chunk(0, [2, 0, 3, 1], seed=1), make_chunk(8, [1, 4, 2], seed=2)]


def assert_same(a: EventChunk, b: EventChunk) -> None:
    for f in fields(EventChunk):
        got, want = getattr(b, f.name), getattr(a, f.name)
        assert got.dtype == want.dtype, f.name
        np.testing.assert_array_equal(got, want, err_msg=f.name)


def write(path: Path, fmt: str, chunks: list[EventChunk] = CHUNKS) -> Path:
    with StoreWriter(path, fmt, source="bkg_train_x.csv") as writer:
        for chunk in chunks:
            writer.append(chunk)
    return path


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"bkg_train_x{store_suffix(fmt)}", fmt)
    assert_same(EventChunk.concatenate(CHUNKS), read_store(path))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


@pytest.mark.parametrize("fmt", ["h5", "parquet", "original"])
@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_chunks_of_a_store_are_its_events_in_order(tmp_path: Path, fmt: str, size: int) -> None:
    whole = EventChunk.concatenate(CHUNKS)
    path = (write_original(tmp_path / "bkg_train_x.h5", whole) if fmt == "original" else
            write(tmp_path / f"bkg_train_x{store_suffix(fmt)}", fmt))
    chunks = list(iter_store(path, size))
    assert [c.n_events for c in chunks] == [min(size, 7 - s) for s in range(0, 7, size)]
    assert count_store_events(path) == 7
    joined = EventChunk.concatenate(chunks)
    for f in fields(EventChunk):  # the original format stores float32
        np.testing.assert_allclose(getattr(joined, f.name), getattr(whole, f.name), rtol=1e-6,
                                   err_msg=f.name)


def test_h5_tables_have_named_integer_columns(tmp_path: Path) -> None:
    chunk = EventChunk.concatenate(CHUNKS)
    path = write(tmp_path / "s.h5", "h5")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["source"] == "bkg_train_x.csv"
        assert h5.attrs["format_version"] == 1
        events, jets, cons = h5["events"][()], h5["jets"][()], h5["constituents"][()]
    assert events.dtype.names == ("evt_id", "evt_weight", "met", "met_phi", "num_jets")
    assert jets.dtype.names == ("evt_id", "jet_index", "num_constits", "b_tagged", "jet_pt",
                                "jet_eta", "jet_phi")
    assert cons.dtype.names == ("evt_id", "jet_index", "constituent_index", "particle_id", "pt",
                                "eta", "phi")
    for table, name in ((events, "evt_id"), (jets, "jet_index"), (cons, "particle_id")):
        assert table.dtype[name].kind == "i"
    np.testing.assert_array_equal(jets["evt_id"], [0, 0, 4, 4, 4, 6, 8, 10, 10, 10, 10, 12, 12])
    np.testing.assert_array_equal(jets["jet_index"], [0, 1, 0, 1, 2, 0, 0, 0, 1, 2, 3, 0, 1])
    pt, eta, phi, _ = chunk.jet_kinematics()
    np.testing.assert_allclose(jets["jet_pt"], pt)
    np.testing.assert_allclose(jets["jet_eta"], eta)
    np.testing.assert_allclose(jets["jet_phi"], phi)
    # constituent rows point at their jet and keep their order within it
    owner = chunk.constit_jet_index()
    np.testing.assert_array_equal(cons["evt_id"], jets["evt_id"][owner])
    np.testing.assert_array_equal(cons["jet_index"], jets["jet_index"][owner])
    np.testing.assert_array_equal(cons["constituent_index"], chunk.constit_index_in_jet())


def test_parquet_is_a_jagged_record_for_awkward_and_pyarrow(tmp_path: Path) -> None:
    chunk = EventChunk.concatenate(CHUNKS)
    path = write(tmp_path / "s.parquet", "parquet")
    assert pq.ParquetFile(path).metadata.num_row_groups == 2  # one per appended chunk
    events = ak.from_parquet(path)
    assert str(ak.type(events.jets.constituents.particle_id)) == "7 * var * var * int32"
    np.testing.assert_array_equal(ak.num(events.jets, axis=1), chunk.num_jets)
    np.testing.assert_array_equal(ak.flatten(events.jets.constituents.pt, axis=None),
                                  chunk.con_pt)
    np.testing.assert_array_equal(events.evt_id, chunk.evt_id)
    table = pq.read_table(path)
    assert table.column("jets").to_pylist()[1] == []
    assert table.schema.metadata[b"bead.source"] == b"bkg_train_x.csv"


# The standard HDF5 filters every reader has (H5Z_FILTER_DEFLATE, H5Z_FILTER_SHUFFLE): no
# h5py-only filter such as lzf.
STANDARD_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE}


@pytest.mark.parametrize(("compression", "filters"), [
    ("none", set()), ("gzip", {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE})])
def test_h5_compression_uses_standard_filters_only(tmp_path: Path, compression: str,
                                                   filters: set[int]) -> None:
    path = tmp_path / "s.h5"
    with StoreWriter(path, "h5", h5_compression=compression) as writer:
        for chunk in CHUNKS:
            writer.append(chunk)
    with h5py.File(path, "r") as h5:
        for name in ("events", "jets", "constituents"):
            plist = h5[name].id.get_create_plist()
            used = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
            assert used == filters and used <= STANDARD_FILTERS, name
    assert_same(EventChunk.concatenate(CHUNKS), read_store(path))
    with pytest.raises(UsageError, match="h5_compression must be one of none, gzip, not 'lzf'"):
        StoreWriter(path, "h5", h5_compression="lzf")


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_the_temporary_file_names_its_writer(tmp_path: Path, fmt: str) -> None:
    # While a store is written, its temporary file carries this process's id, so a later run
    # never removes it as stale; once the writer is gone, it would.
    path = tmp_path / f"s{store_suffix(fmt)}"
    with StoreWriter(path, fmt) as writer:
        writer.append(CHUNKS[0])
        (tmp,) = tmp_path.iterdir()
        assert tmp.name.startswith(f".{path.name}.") and tmp.name.endswith(".tmp")
        assert f"-{os.getpid()}." in tmp.name
        assert remove_stale_temporaries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_abort_removes_the_temporary_file(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"s{store_suffix(fmt)}", fmt, CHUNKS[:1])
    writer = StoreWriter(path, fmt).__enter__()
    writer.append(CHUNKS[1])
    writer.abort()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert_same(CHUNKS[0], read_store(path))


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_exception_mid_write_leaves_no_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"s{store_suffix(fmt)}"
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(path, fmt) as writer:
        writer.append(CHUNKS[0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_failed_rewrite_keeps_the_old_file(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"s{store_suffix(fmt)}", fmt, CHUNKS[:1])
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(path, fmt) as writer:
        writer.append(CHUNKS[1])
        raise RuntimeError("boom")
    assert_same(CHUNKS[0], read_store(path))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    write(path, fmt, CHUNKS[1:])  # a completed rewrite replaces it
    assert_same(CHUNKS[1], read_store(path))


def test_formats_and_bad_files(tmp_path: Path) -> None:
    assert (store_suffix("h5"), store_suffix("parquet")) == (".h5", ".parquet")
    with pytest.raises(UsageError, match="store format"):
        store_suffix("root")
    with pytest.raises(UsageError, match="store format"):
        StoreWriter(tmp_path / "s.csv", "csv")
    with pytest.raises(DataError, match="does not exist"):
        read_store(tmp_path / "missing.h5")
    (tmp_path / "s.root").write_text("x")
    with pytest.raises(DataError, match="unknown store suffix"):
        read_store(tmp_path / "s.root")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(DataError, match=r"junk\.h5: not a readable BEAD HDF5 store"):
        read_store(tmp_path / "junk.h5")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"junk\.parquet: not a readable BEAD Parquet store"):
        read_store(tmp_path / "junk.parquet")
    with h5py.File(tmp_path / "old.h5", "w") as h5:
        h5.create_dataset("events", data=np.zeros(1))
    with pytest.raises(DataError, match=r"old\.h5: store format version None"):
        read_store(tmp_path / "old.h5")


# --- the original BEAD's HDF5 stores ----------------------------------------------------------

ORIGINAL = "bead_original_h5"
ORIGINAL_FILES = ["bkg_test_herwig.h5", "bkg_test_pythia.h5", "bkg_test_sherpa.h5",
                  "bkg_train_herwig.h5", "bkg_train_pythia.h5", "bkg_train_sherpa.h5",
                  "sig_test_svj.h5"]


def write_original(path: Path, chunk: EventChunk, **edits: tuple[str, int, int, float]) -> Path:
    """An original-BEAD-style store of ``chunk``: the three tables as plain float32 (N, w)
    datasets in the SPEC §4.3 column order, no attributes. ``edits`` set single cells
    (``name=(table, row, column, value)``) to break it."""
    compound = tmp = path.with_name("compound.h5")
    write(compound, "h5", [chunk])
    with h5py.File(compound) as h5:
        tables = {name: recfunctions.structured_to_unstructured(h5[name][()]).astype("f4")
                  for name in ("events", "jets", "constituents")}
    tmp.unlink()
    for table, row, column, value in edits.values():
        tables[table][row, column] = value
    with h5py.File(path, "w") as h5:
        for name, data in tables.items():
            h5.create_dataset(name, data=data)
    return path


@pytest.mark.parametrize("name", ORIGINAL_FILES)
def test_original_fixture_stores_are_read_as_they_are(shared_fixture, name: str) -> None:
    path = shared_fixture(f"{ORIGINAL}/{name}")
    assert is_original_store(path)
    chunk = read_store(path)
    with h5py.File(path) as h5:
        events, jets, cons = (h5[n][()] for n in ("events", "jets", "constituents"))
    assert events.dtype == np.float32 and events.shape[1] == 5 and jets.shape[1] == 7
    np.testing.assert_array_equal(chunk.evt_id, events[:, 0])
    np.testing.assert_array_equal(chunk.evt_weight, events[:, 1])
    np.testing.assert_array_equal(chunk.met, events[:, 2])
    np.testing.assert_array_equal(chunk.num_jets, events[:, 4])
    np.testing.assert_array_equal(chunk.jet_num_constits, jets[:, 2])
    np.testing.assert_array_equal(chunk.jet_btag, jets[:, 3])
    np.testing.assert_array_equal(chunk.con_pid, cons[:, 3])
    np.testing.assert_array_equal(chunk.con_pt, cons[:, 4])
    np.testing.assert_array_equal(chunk.con_phi, cons[:, 6])
    assert chunk.evt_id.dtype == chunk.con_pid.dtype == np.int64
    # the original's own jet columns agree with the vector sum of the constituents
    np.testing.assert_allclose(chunk.jet_kinematics()[0], jets[:, 4], rtol=1e-4)


def test_an_original_store_round_trips_and_is_told_apart(tmp_path: Path) -> None:
    chunk = EventChunk.concatenate(CHUNKS)
    path = write_original(tmp_path / "bkg_train_x.h5", chunk)
    assert is_original_store(path)
    got = read_store(path)
    for f in fields(EventChunk):
        np.testing.assert_allclose(getattr(got, f.name), getattr(chunk, f.name), rtol=1e-6,
                                   err_msg=f.name)
    assert not is_original_store(write(tmp_path / "new.h5", "h5"))
    assert not is_original_store(write(tmp_path / "new.parquet", "parquet"))
    (tmp_path / "text.h5").write_text("x")
    assert not is_original_store(tmp_path / "text.h5")
    assert not is_original_store(tmp_path / "missing.h5")


@pytest.mark.parametrize(("edit", "message"), [
    (("jets", 1, 0, 4.0), "'jets' row 1 has evt_id 4, but the counts in 'events' and 'jets' "
                          "put it at 0"),
    (("constituents", 0, 2, 1.0), "'constituents' row 0 has constituent_index 1, but the "
                                  "counts in 'events' and 'jets' put it at 0"),
    (("events", 0, 4, 3.0), "the num_jets of 'events' add up to 7, but 'jets' has 6 rows"),
    (("events", 1, 4, -1.0), "'events' row 1 has a negative num_jets"),
    (("constituents", 2, 3, 21.5), "'constituents' row 2 column particle_id is 21.5, not an "
                                   "integer"),
    (("events", 3, 2, np.nan), "'events' row 3 column met is nan, not finite"),
])
def test_a_broken_original_store_is_named(tmp_path: Path, edit: tuple, message: str) -> None:
    path = write_original(tmp_path / "bkg_train_x.h5", CHUNKS[0], cell=edit)
    with pytest.raises(DataError) as info:
        read_store(path)
    assert str(info.value) == f"{path}: original BEAD store: {message}"


def test_an_original_store_of_the_wrong_width_is_named(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        h5.create_dataset("events", data=np.zeros((2, 4), dtype="f4"))
        h5.create_dataset("jets", data=np.zeros((0, 7), dtype="f4"))
        h5.create_dataset("constituents", data=np.zeros((0, 7), dtype="f4"))
    with pytest.raises(DataError, match=r"'events' has shape \(2, 4\), expected \(N, 5\) with "
                                        "columns evt_id, evt_weight, met, met_phi, num_jets"):
        read_store(tmp_path / "s.h5")


def test_original_stores_go_through_prepare_train_detect(shared_fixture, tmp_path: Path,
                                                         capsys) -> None:
    from bead.cli import main
    from bead.config import Config, save_config

    base = ["-p", "ws", "p1", "--workspaces", str(tmp_path), "--no-progress"]
    assert main(["-m", "new_project", *base]) == 0
    save_config(Config(epochs=2, batch_size=8, train_size=0.7),
                tmp_path / "ws" / "p1" / "config" / "p1_config.toml")
    store_dir = tmp_path / "ws" / "data" / "h5"
    store_dir.mkdir(parents=True)
    for name in ORIGINAL_FILES:
        shutil.copyfile(shared_fixture(f"{ORIGINAL}/{name}"), store_dir / name)
    capsys.readouterr()
    assert main(["-m", "chain", *base, "-o", "prepareinputs_train_detect"]) == 0
    out = " ".join("".join(capsys.readouterr()).split())
    assert "set aside" not in out  # an original store has no source to miss
    (prepared,) = (store_dir / "tensors" / "processed").iterdir()
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert sorted(s["source"] for s in manifest["samples"]) == ORIGINAL_FILES
    assert manifest["generators"] == ["herwig", "pythia", "sherpa"]
    metrics = json.loads((tmp_path / "ws" / "p1" / "output" / "results" / "metrics.json")
                         .read_text())
    assert "sig_test_svj" in json.dumps(metrics["per_signal"])
