"""The columnar event store (SPEC §4.3): one HDF5 or Parquet file per CSV, written in chunks.

HDF5 keeps the original BEAD tables (``events``, ``jets``, ``constituents``) as compound
datasets, so ids stay integers and every column is named. Parquet keeps one jagged record per
event (events -> jets -> constituents). Files are written under a temporary name and renamed
only when complete, so a later mode never reads a half-written store.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bead.errors import DataError, UsageError
from bead.fileio import atomic_path
from bead.io.events import EventChunk

FORMAT_VERSION = 1
FORMATS = {"h5": ".h5", "parquet": ".parquet"}

EVENTS_DTYPE = np.dtype([
    ("evt_id", "<i8"), ("evt_weight", "<f8"), ("met", "<f8"), ("met_phi", "<f8"),
    ("num_jets", "<i4"),
])
JETS_DTYPE = np.dtype([
    ("evt_id", "<i8"), ("jet_index", "<i4"), ("num_constits", "<i4"), ("b_tagged", "<i4"),
    ("jet_pt", "<f8"), ("jet_eta", "<f8"), ("jet_phi", "<f8"),
])
CONSTITUENTS_DTYPE = np.dtype([
    ("evt_id", "<i8"), ("jet_index", "<i4"), ("constituent_index", "<i4"),
    ("particle_id", "<i4"), ("pt", "<f8"), ("eta", "<f8"), ("phi", "<f8"),
])
_H5_TABLES = {"events": EVENTS_DTYPE, "jets": JETS_DTYPE, "constituents": CONSTITUENTS_DTYPE}
_H5_CHUNK_ROWS = 1 << 12  # 150-180 kB per chunk: little waste in a small file's last one
# HDF5 compression, among the filters every HDF5 reader has (README: measured speed and size).
# "none" is the default: conversion is about twice as fast as with "gzip" (deflate level 1
# after byte shuffling), for stores about twice as big.
H5_COMPRESSION: dict[str, dict[str, object]] = {
    "none": {},
    "gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
}
# zstd without dictionary pages: faster to write and smaller than with them for these columns of
# mostly distinct floats; read by pyarrow, awkward and pandas alike.
PARQUET_OPTIONS: dict[str, object] = {"compression": "zstd", "use_dictionary": False}


def _fields(*pairs: tuple[str, pa.DataType]) -> list[pa.Field]:
    """Non-nullable fields, so readers (awkward) see plain, not optional, types."""
    return [pa.field(name, dtype, nullable=False) for name, dtype in pairs]


def _list(item: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("item", item, nullable=False))


_CONSTITUENT_TYPE = pa.struct(_fields(
    ("particle_id", pa.int32()), ("pt", pa.float64()), ("eta", pa.float64()),
    ("phi", pa.float64()),
))
_JET_TYPE = pa.struct(_fields(
    ("num_constits", pa.int32()), ("b_tagged", pa.int32()), ("jet_pt", pa.float64()),
    ("jet_eta", pa.float64()), ("jet_phi", pa.float64()),
    ("constituents", _list(_CONSTITUENT_TYPE)),
))
PARQUET_SCHEMA = pa.schema(_fields(
    ("evt_id", pa.int64()), ("evt_weight", pa.float64()), ("met", pa.float64()),
    ("met_phi", pa.float64()), ("num_jets", pa.int32()), ("jets", _list(_JET_TYPE)),
))


def store_suffix(fmt: str) -> str:
    """File suffix of a store format (``h5`` or ``parquet``)."""
    try:
        return FORMATS[fmt]
    except KeyError:
        raise UsageError(f"store format must be one of {', '.join(FORMATS)}, not {fmt!r}") from None


def h5_filters(compression: str) -> dict[str, object]:
    """The h5py dataset options of an HDF5 compression name (``none`` or ``gzip``)."""
    try:
        return H5_COMPRESSION[compression]
    except KeyError:
        raise UsageError(f"h5_compression must be one of {', '.join(H5_COMPRESSION)}, not "
                         f"{compression!r}") from None


class _Aborted(Exception):
    """Thrown into the temporary file's context to remove it without an error."""


class StoreWriter:
    """Append ``EventChunk``s to a new store file; the file appears only on a clean close.

    Use as a context manager: the file is written under a temporary name
    (:func:`bead.fileio.atomic_path`) and renamed into place, on disk, when the block ends
    without an exception; otherwise the temporary file is removed and any existing file at
    ``path`` is left untouched.
    """

    def __init__(self, path: Path, fmt: str, source: str = "",
                 h5_compression: str = "none") -> None:
        self.path = Path(path)
        self.fmt = fmt
        self.source = source
        store_suffix(fmt)
        self.h5_filters = h5_filters(h5_compression)
        self._files = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._h5: h5py.File | None = None
        self._parquet: pq.ParquetWriter | None = None

    def __enter__(self) -> StoreWriter:
        self._tmp = self._files.enter_context(atomic_path(self.path))
        try:
            if self.fmt == "h5":
                self._h5 = _open_h5(self._tmp, self.source, self.h5_filters)
            else:
                metadata = {"bead.format_version": str(FORMAT_VERSION), "bead.source": self.source}
                self._parquet = pq.ParquetWriter(
                    self._tmp, PARQUET_SCHEMA.with_metadata(metadata), **PARQUET_OPTIONS
                )
        except BaseException:
            self._discard(*sys.exc_info())
            raise
        return self

    def append(self, chunk: EventChunk) -> None:
        """Write one chunk (events keep their ``evt_id``)."""
        if self._h5 is not None:
            _append_h5(self._h5, chunk)
        elif self._parquet is not None:
            self._parquet.write_table(_to_arrow(chunk), row_group_size=max(chunk.n_events, 1))
        else:
            raise RuntimeError("StoreWriter.append outside its 'with' block")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._discard(exc_type, exc, tb)
            return
        assert self._tmp is not None
        try:
            self._close_writers()
            with open(self._tmp, "rb") as done:  # on disk before the rename makes it visible
                os.fsync(done.fileno())
        except BaseException:
            self._discard(*sys.exc_info())
            raise
        self._tmp = None
        self._files.close()  # the rename

    def abort(self) -> None:
        """Remove the temporary file and write nothing: for a caller that keeps the writer open
        across calls instead of in one ``with`` block."""
        self._discard(_Aborted, _Aborted(), None)

    def _close_writers(self) -> None:
        h5, parquet = self._h5, self._parquet
        self._h5 = self._parquet = None
        if h5 is not None:
            h5.close()
        if parquet is not None:
            parquet.close()

    def _discard(self, *exc_info: object) -> None:
        with contextlib.suppress(Exception):
            self._close_writers()
        self._tmp = None
        self._files.__exit__(*exc_info)  # removes the temporary file


def read_store(path: Path) -> EventChunk:
    """Read a whole store file (``.h5`` or ``.parquet``) back into one chunk."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: store file does not exist")
    if path.suffix == FORMATS["h5"]:
        return _read_h5(path)
    if path.suffix == FORMATS["parquet"]:
        return _read_parquet(path)
    raise DataError(f"{path}: unknown store suffix (expected {' or '.join(FORMATS.values())})")


# --- HDF5 -----------------------------------------------------------------------------------


def _open_h5(path: Path, source: str, filters: dict[str, object]) -> h5py.File:
    h5 = h5py.File(path, "w")
    h5.attrs["source"] = source
    h5.attrs["format_version"] = FORMAT_VERSION
    for name, dtype in _H5_TABLES.items():
        h5.create_dataset(
            name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_H5_CHUNK_ROWS,),
            **filters,
        )
    return h5


def _append_h5(h5: h5py.File, chunk: EventChunk) -> None:
    for name, table in _h5_tables(chunk).items():
        dataset = h5[name]
        start = dataset.shape[0]
        dataset.resize((start + len(table),))
        dataset[start:] = table


def _h5_tables(chunk: EventChunk) -> dict[str, np.ndarray]:
    events = np.empty(chunk.n_events, dtype=EVENTS_DTYPE)
    events["evt_id"] = chunk.evt_id
    events["evt_weight"] = chunk.evt_weight
    events["met"] = chunk.met
    events["met_phi"] = chunk.met_phi
    events["num_jets"] = chunk.num_jets

    jet_evt_id = chunk.evt_id[chunk.jet_event_index()]
    jet_index = chunk.jet_index_in_event()
    with np.errstate(over="ignore", invalid="ignore"):  # prepare_inputs names such events
        jet_pt, jet_eta, jet_phi, _ = chunk.jet_kinematics()
    jets = np.empty(chunk.n_jets, dtype=JETS_DTYPE)
    jets["evt_id"] = jet_evt_id
    jets["jet_index"] = jet_index
    jets["num_constits"] = chunk.jet_num_constits
    jets["b_tagged"] = chunk.jet_btag
    jets["jet_pt"], jets["jet_eta"], jets["jet_phi"] = jet_pt, jet_eta, jet_phi

    owner = chunk.constit_jet_index()
    constituents = np.empty(chunk.n_constits, dtype=CONSTITUENTS_DTYPE)
    constituents["evt_id"] = jet_evt_id[owner]
    constituents["jet_index"] = jet_index[owner]
    constituents["constituent_index"] = chunk.constit_index_in_jet()
    constituents["particle_id"] = chunk.con_pid
    constituents["pt"] = chunk.con_pt
    constituents["eta"] = chunk.con_eta
    constituents["phi"] = chunk.con_phi
    return {"events": events, "jets": jets, "constituents": constituents}


def _read_h5(path: Path) -> EventChunk:
    try:
        with h5py.File(path, "r") as h5:
            if _is_original(h5):
                return _read_original(path, h5)
            _check_version(path, h5.attrs.get("format_version"))
            events, jets, cons = (h5[name][()] for name in _H5_TABLES)
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: not a readable BEAD HDF5 store ({exc})") from exc
    return _from_tables(path, events, jets, cons)


def _from_tables(path: Path, events: Any, jets: Any, cons: Any) -> EventChunk:
    """The chunk held by the three tables (record arrays or dicts of columns)."""
    return _make_chunk(
        path,
        evt_id=events["evt_id"], evt_weight=events["evt_weight"], met=events["met"],
        met_phi=events["met_phi"], num_jets=events["num_jets"],
        jet_num_constits=jets["num_constits"], jet_btag=jets["b_tagged"],
        con_pid=cons["particle_id"], con_pt=cons["pt"], con_eta=cons["eta"], con_phi=cons["phi"],
    )


# --- the original BEAD's HDF5 stores --------------------------------------------------------
# Plain float32 2-D datasets, without a format_version attribute, whose columns are those of the
# compound tables above, in the same order (SPEC §4.3). They are read as they are.


def is_original_store(path: Path) -> bool:
    """Whether ``path`` is a store written by the original BEAD (which has no source file to
    convert it again from): an HDF5 file without ``format_version`` whose ``events``, ``jets``
    and ``constituents`` are plain 2-D numeric datasets."""
    try:
        with h5py.File(path, "r") as h5:
            return _is_original(h5)
    except OSError:
        return False


def _is_original(h5: h5py.File) -> bool:
    if "format_version" in h5.attrs:
        return False
    datasets = [h5.get(name) for name in _H5_TABLES]
    return all(isinstance(d, h5py.Dataset) and d.dtype.names is None and d.dtype.kind in "fiu"
               and d.ndim == 2 for d in datasets)


def _read_original(path: Path, h5: h5py.File) -> EventChunk:
    where = f"{path}: original BEAD store"
    tables = {}
    for name, dtype in _H5_TABLES.items():
        width = len(dtype.names)
        if h5[name].shape[1] != width:
            raise DataError(f"{where}: '{name}' has shape {h5[name].shape}, expected (N, {width})"
                            f" with columns {', '.join(dtype.names)}")
        table = h5[name][()].astype(np.float64)
        bad = ~np.isfinite(table)
        ints = [i for i, column in enumerate(dtype.names) if dtype[column].kind == "i"]
        bad[:, ints] |= table[:, ints] != np.round(table[:, ints])
        if bad.any():
            row, col = np.argwhere(bad)[0]
            wanted = "an integer" if col in ints else "finite"
            raise DataError(f"{where}: '{name}' row {row} column {dtype.names[col]} is "
                            f"{float(table[row, col])}, not {wanted}")
        tables[name] = {column: table[:, i].astype(np.int64 if i in ints else np.float64)
                        for i, column in enumerate(dtype.names)}
    events, jets, cons = tables.values()
    for name, counts, other in (("events", "num_jets", "jets"),
                                ("jets", "num_constits", "constituents")):
        values, rows = tables[name][counts], len(tables[other]["evt_id"])
        if (values < 0).any():
            raise DataError(f"{where}: '{name}' row {np.argmax(values < 0)} has a negative "
                            f"{counts}")
        if values.sum() != rows:
            raise DataError(f"{where}: the {counts} of '{name}' add up to {values.sum()}, but "
                            f"'{other}' has {rows} rows")
    chunk = _from_tables(path, events, jets, cons)
    jet_owner, con_owner = chunk.jet_event_index(), chunk.constit_jet_index()
    jet_evt_id = chunk.evt_id[jet_owner]
    expected = (
        ("jets", "evt_id", jets["evt_id"], jet_evt_id),
        ("jets", "jet_index", jets["jet_index"], chunk.jet_index_in_event()),
        ("constituents", "evt_id", cons["evt_id"], jet_evt_id[con_owner]),
        ("constituents", "jet_index", cons["jet_index"], chunk.jet_index_in_event()[con_owner]),
        ("constituents", "constituent_index", cons["constituent_index"],
         chunk.constit_index_in_jet()),
    )
    for name, column, got, want in expected:
        wrong = np.flatnonzero(got != want)
        if len(wrong):
            row = wrong[0]
            raise DataError(f"{where}: '{name}' row {row} has {column} {got[row]}, but the "
                            f"counts in 'events' and 'jets' put it at {want[row]}")
    return chunk


# --- Parquet --------------------------------------------------------------------------------


def _to_arrow(chunk: EventChunk) -> pa.Table:
    def offsets(counts: np.ndarray) -> pa.Array:
        return pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))

    constituents = pa.StructArray.from_arrays(
        [pa.array(chunk.con_pid.astype(np.int32)), pa.array(chunk.con_pt),
         pa.array(chunk.con_eta), pa.array(chunk.con_phi)],
        fields=list(_CONSTITUENT_TYPE),
    )
    jet_pt, jet_eta, jet_phi, _ = chunk.jet_kinematics()
    jets = pa.StructArray.from_arrays(
        [pa.array(chunk.jet_num_constits.astype(np.int32)),
         pa.array(chunk.jet_btag.astype(np.int32)), pa.array(jet_pt), pa.array(jet_eta),
         pa.array(jet_phi),
         pa.ListArray.from_arrays(offsets(chunk.jet_num_constits), constituents,
                                   type=_JET_TYPE.field("constituents").type)],
        fields=list(_JET_TYPE),
    )
    return pa.Table.from_arrays(
        [pa.array(chunk.evt_id), pa.array(chunk.evt_weight), pa.array(chunk.met),
         pa.array(chunk.met_phi), pa.array(chunk.num_jets.astype(np.int32)),
         pa.ListArray.from_arrays(offsets(chunk.num_jets), jets,
                                   type=PARQUET_SCHEMA.field("jets").type)],
        schema=PARQUET_SCHEMA,
    )


def _read_parquet(path: Path) -> EventChunk:
    try:
        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        _check_version(path, metadata.get(b"bead.format_version"))
        return _parquet_chunk(path, table)
    except (OSError, KeyError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable BEAD Parquet store ({exc})") from exc


def _parquet_chunk(path: Path, table: pa.Table) -> EventChunk:
    """The chunk of a table of event records (one row per event)."""
    jets = pc.list_flatten(table.column("jets"))
    cons = pc.list_flatten(pc.struct_field(jets, "constituents"))

    def col(array: pa.ChunkedArray, name: str | None = None) -> np.ndarray:
        if name is not None:
            array = pc.struct_field(array, name)
        return array.to_numpy()

    return _make_chunk(
        path,
        evt_id=col(table.column("evt_id")), evt_weight=col(table.column("evt_weight")),
        met=col(table.column("met")), met_phi=col(table.column("met_phi")),
        num_jets=col(table.column("num_jets")),
        jet_num_constits=col(jets, "num_constits"), jet_btag=col(jets, "b_tagged"),
        con_pid=col(cons, "particle_id"), con_pt=col(cons, "pt"), con_eta=col(cons, "eta"),
        con_phi=col(cons, "phi"),
    )


# --- shared ---------------------------------------------------------------------------------


def _check_version(path: Path, version: object) -> None:
    if version is None or int(version) != FORMAT_VERSION:
        raise DataError(
            f"{path}: store format version {version!r} is not {FORMAT_VERSION}; "
            "convert the CSVs again"
        )


def _make_chunk(path: Path, **arrays: np.ndarray) -> EventChunk:
    """Build a chunk with the dtypes ``EventChunk`` expects, naming the file if it is broken."""
    typed = {
        name: np.ascontiguousarray(a, dtype=np.float64 if a.dtype.kind == "f" else np.int64)
        for name, a in arrays.items()
    }
    try:
        return EventChunk(**typed)
    except ValueError as exc:
        raise DataError(f"{path}: inconsistent store ({exc})") from exc


# --- reading in chunks ----------------------------------------------------------------------


def count_store_events(path: Path) -> int:
    """The number of events of a store file, from its metadata alone."""
    path = Path(path)
    try:
        if path.suffix == FORMATS["parquet"]:
            return pq.ParquetFile(path).metadata.num_rows
        with h5py.File(path, "r") as h5:
            return len(h5["events"])
    except (OSError, KeyError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable BEAD store ({exc})") from exc


def iter_store(path: Path, chunk_events: int) -> Iterator[EventChunk]:
    """The events of a store file in consecutive chunks of ``chunk_events`` (the last one
    shorter), reading only one chunk's rows at a time. An original BEAD store, whose checks
    need every table whole, is read whole and then cut."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: store file does not exist")
    if path.suffix == FORMATS["parquet"]:
        yield from _iter_parquet(path, chunk_events)
        return
    if path.suffix != FORMATS["h5"] or is_original_store(path):
        whole = read_store(path)
        for start in range(0, whole.n_events, chunk_events):
            yield whole.events(start, start + chunk_events)
        return
    try:
        with h5py.File(path, "r") as h5:
            _check_version(path, h5.attrs.get("format_version"))
            events, jets, cons = (h5[name] for name in _H5_TABLES)
            jet_row = con_row = 0
            for start in range(0, len(events), chunk_events):
                ev = events[start:start + chunk_events]
                n_jets = int(ev["num_jets"].sum())
                jt = jets[jet_row:jet_row + n_jets]
                n_cons = int(jt["num_constits"].sum())
                cs = cons[con_row:con_row + n_cons]
                jet_row, con_row = jet_row + n_jets, con_row + n_cons
                yield _from_tables(path, ev, jt, cs)
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: not a readable BEAD HDF5 store ({exc})") from exc


def _iter_parquet(path: Path, chunk_events: int) -> Iterator[EventChunk]:
    try:
        handle = pq.ParquetFile(path)
        metadata = handle.schema_arrow.metadata or {}
        _check_version(path, metadata.get(b"bead.format_version"))
        for batch in handle.iter_batches(batch_size=chunk_events):
            yield _parquet_chunk(path, pa.Table.from_batches([batch]))
    except (OSError, KeyError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable BEAD Parquet store ({exc})") from exc
