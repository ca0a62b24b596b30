"""Write events in the original BEAD CSV format (SPEC §4.1).

One event per row, ``evtwt, met, metphi, njets, {npart, isbtagged, {pid, pt, eta, phi} x npart}
x njets``. Numbers are formatted with a fixed format and gzip output carries no timestamp, so the
same events always give the same bytes (the reproducibility promise of ``generate``). Writes go
to a temporary file in the target folder and are renamed into place, so an interrupted run never
leaves a half-written CSV that a later mode would trust.
"""

from __future__ import annotations

import gzip
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bead.io.events import EventChunk

HEADER = "evtwt,met,metphi,njets,npart,isbtagged,pid,pt,eta,phi\n"
FLOAT_FORMAT = "%.7g"
_GZIP_LEVEL = 1  # fast: generation and conversion time matter more than disk here


def write_bead_csv(path: Path, chunks: Iterable[EventChunk]) -> int:
    """Write ``chunks`` (in order) to ``path`` atomically; return the number of events.

    A path ending in ``.gz`` is gzip-compressed with a fixed header (no mtime).
    """
    path = Path(path)
    # A fresh hidden name in the same folder (so the rename is atomic); opened exclusively
    # with open() rather than mkstemp so the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    n_events = 0
    try:
        with open(tmp, "xb") as raw:
            if path.name.endswith(".gz"):
                inner_name = path.name[: -len(".gz")]
                with gzip.GzipFile(filename=inner_name, mode="wb", fileobj=raw,
                                   compresslevel=_GZIP_LEVEL, mtime=0) as zipped:
                    n_events = _write_rows(zipped, chunks)
            else:
                n_events = _write_rows(raw, chunks)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n_events


def _write_rows(out: BinaryIO, chunks: Iterable[EventChunk]) -> int:
    out.write(HEADER.encode("ascii"))
    n_events = 0
    for chunk in chunks:
        if chunk.n_events:
            out.write(format_rows(chunk).encode("ascii"))
            n_events += chunk.n_events
    return n_events


def format_rows(chunk: EventChunk) -> str:
    """The CSV rows of ``chunk`` (newline-terminated), without the header.

    The values are placed at their cell positions with numpy index arithmetic, a matching
    ``%``-template is assembled from four tokens, and the whole chunk is formatted by one
    ``template % values`` call: no Python loop over events or cells.
    """
    event_constits = np.bincount(chunk.jet_event_index(), weights=chunk.jet_num_constits,
                                 minlength=chunk.n_events).astype(np.int64)
    row_len = 4 + 2 * chunk.num_jets + 4 * event_constits
    row_start = np.cumsum(row_len) - row_len
    total = int(row_len.sum())

    # Position of each jet's npart cell: after the event cells, the earlier jets' two cells and
    # the earlier jets' constituents (four cells each).
    con_before_jet = np.cumsum(chunk.jet_num_constits) - chunk.jet_num_constits
    con_before_event = np.cumsum(event_constits) - event_constits
    con_before_in_event = con_before_jet - np.repeat(con_before_event, chunk.num_jets)
    jet_pos = (np.repeat(row_start, chunk.num_jets) + 4 + 2 * chunk.jet_index_in_event()
               + 4 * con_before_in_event)
    con_pos = (np.repeat(jet_pos, chunk.jet_num_constits) + 2
               + 4 * chunk.constit_index_in_jet())

    values = np.empty(total, dtype=object)
    is_int = np.zeros(total, dtype=bool)
    columns = (
        (row_start, 0, chunk.evt_weight), (row_start, 1, chunk.met),
        (row_start, 2, chunk.met_phi), (row_start, 3, chunk.num_jets),
        (jet_pos, 0, chunk.jet_num_constits), (jet_pos, 1, chunk.jet_btag),
        (con_pos, 0, chunk.con_pid), (con_pos, 1, chunk.con_pt),
        (con_pos, 2, chunk.con_eta), (con_pos, 3, chunk.con_phi),
    )
    for base, offset, column in columns:
        values[base + offset] = column.tolist()
        if np.issubdtype(column.dtype, np.integer):
            is_int[base + offset] = True

    is_row_end = np.zeros(total, dtype=bool)
    is_row_end[row_start + row_len - 1] = True
    tokens = _TOKENS[2 * is_int.astype(np.intp) + is_row_end]
    return "".join(tokens.tolist()) % tuple(values.tolist())


# Template token per cell, indexed by 2 * is_integer + is_last_cell_of_row.
_TOKENS = np.array([f"{FLOAT_FORMAT},", f"{FLOAT_FORMAT}\n", "%d,", "%d\n"], dtype=object)
