"""Streaming reader for the original BEAD CSV format (SPEC §4.1), validating every row (§4.4).

A row is ``evtwt, met, metphi, njets, {npart, isbtagged, {pid, pt, eta, phi} x npart} x njets``,
right-padded with empty cells. Each block of lines is parsed in one go (pyarrow turns all its
cells into one float column) and the jagged layout is then walked with numpy across all rows at
once, one jet slot at a time, so no Python runs per cell or per constituent. Memory is bounded by
``chunk_size`` lines.

A plain (not gzipped) file can also be cut into :class:`Segment`s, the same blocks of lines the
streaming reader takes, that other processes parse (:func:`parse_segment`); a
:class:`ChunkAssembler` then turns the parsed blocks, in file order, into exactly the chunks and
errors that :func:`iter_csv_chunks` gives.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bead.errors import DataError, UsageError
from bead.io.events import EventChunk

ON_BAD_ROW = ("error", "skip")

# Reasons a row is rejected; index 0 means "good row" in the per-row code arrays.
REASONS = (
    "",
    "non-numeric cell",
    "empty cell inside the row",
    "NaN value",
    "infinite value",
    "fewer than 4 event cells",
    "negative njets",
    "non-integer njets",
    "negative met",
    "negative npart",
    "non-integer npart",
    "non-integer b-tag",
    "b-tag not 0 or 1",
    "count overruns the row",
    "leftover cells after the last jet",
    "negative pt",
    "non-integer particle id",
    "non-UTF-8 bytes",
)
(_OK, _NON_NUMERIC, _EMPTY, _NAN, _INF, _SHORT, _NEG_NJETS, _NONINT_NJETS, _NEG_MET,
 _NEG_NPART, _NONINT_NPART, _NONINT_BTAG, _BTAG_RANGE, _OVERRUN, _LEFTOVER, _NEG_PT, _NONINT_PID,
 _NON_UTF8) = range(len(REASONS))

_PAD = b", \t\r\n"  # trailing padding: empty cells and line endings
_WHITESPACE = b" \t\r"
_EVENT_CELLS = 4  # evtwt, met, metphi, njets
_MAX_EXACT_INT = 2.0**53
_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|(?i:nan|inf|infinity))$"
_READ_ERRORS = (OSError, EOFError, zlib.error)
_SCAN_BYTES = 1 << 23  # read size when looking for line ends
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class BadRow:
    """One rejected row, for the log."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class BadRowReport:
    """Counts of skipped rows by reason, plus the first few examples."""

    max_examples: int = 5
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[BadRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, row: BadRow) -> None:
        self.counts[row.reason] = self.counts.get(row.reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(row)

    def summary(self) -> str:
        """E.g. ``3 bad rows (2 negative pt, 1 NaN value)``."""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        return f"{self.total} bad rows ({parts})" if self.total else "no bad rows"


@dataclass(frozen=True)
class Block:
    """What one block of lines gave: good events (``evt_id`` counted from the block's first
    event row), the number of event rows, and the rejected rows by line."""

    chunk: EventChunk | None
    n_rows: int
    bad_lines: np.ndarray
    bad_codes: np.ndarray


@dataclass(frozen=True)
class Segment:
    """Whole lines ``[start, end)`` (bytes) of a plain CSV, the first being line ``first_line``:
    one block of :func:`iter_csv_chunks`, to be parsed elsewhere."""

    path: Path
    start: int
    end: int
    first_line: int
    header: bytes


class ChunkAssembler:
    """Turns the blocks of one file, in file order, into its chunks: ``evt_id`` becomes the
    position among the file's event rows, and bad rows raise (``on_bad_row="error"``) or are
    counted in ``report``."""

    def __init__(self, path: Path, on_bad_row: str, report: BadRowReport) -> None:
        self.path = path
        self.on_bad_row = on_bad_row
        self.report = report
        self.n_rows = 0
        self.n_events = 0

    def add(self, block: Block) -> EventChunk | None:
        """The block's good events (None when it has none); raises on a bad row in error mode."""
        base = self.n_rows
        self.n_rows += block.n_rows
        for line, code in zip(block.bad_lines.tolist(), block.bad_codes.tolist(), strict=True):
            bad = BadRow(str(self.path), line, REASONS[code])
            if self.on_bad_row == "error":
                raise DataError(str(bad))
            self.report.add(bad)
        if block.chunk is None or not block.chunk.n_events:
            return None
        self.n_events += block.chunk.n_events
        return replace(block.chunk, evt_id=block.chunk.evt_id + base) if base else block.chunk

    def finish(self) -> None:
        """Raise if the file had no event rows, or only bad ones."""
        if self.n_rows == 0:
            raise DataError(f"{self.path}: no events after the header")
        if self.n_events == 0:
            raise DataError(
                f"{self.path}: no valid events, all rows were bad: {self.report.summary()}"
            )


def check_options(chunk_size: int, on_bad_row: str) -> None:
    """Usage errors for reader options, before any file is opened."""
    if on_bad_row not in ON_BAD_ROW:
        raise UsageError(f"on_bad_row must be one of {', '.join(ON_BAD_ROW)}, not {on_bad_row!r}")
    if chunk_size < 1:
        raise UsageError(f"chunk_size must be at least 1, not {chunk_size}")


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def is_gzip(path: Path) -> bool:
    """Whether ``path`` is gzip-compressed (by its magic bytes, not its name)."""
    with _open(Path(path)) as raw:
        return raw.read(2) == _GZIP_MAGIC


def iter_csv_chunks(
    path: Path,
    chunk_size: int = 10000,
    on_bad_row: str = "error",
    report: BadRowReport | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[EventChunk]:
    """Yield the events of a BEAD CSV (``.csv`` or ``.csv.gz``) in chunks of at most
    ``chunk_size`` events.

    ``evt_id`` is the 0-based position of the row among the file's event rows (skipped bad rows
    keep their number, so ids point back into the file). With ``on_bad_row="error"`` the first
    bad row raises ``DataError("<file>:<line>: <reason>")``; with ``"skip"`` bad rows are dropped
    and counted in ``report``. ``on_bytes`` is called with the bytes of the file consumed so far
    (compressed bytes for ``.gz``), for progress bars.
    """
    check_options(chunk_size, on_bad_row)
    path = Path(path)
    assembler = ChunkAssembler(path, on_bad_row, report if report is not None else BadRowReport())
    with _open(path) as raw:
        is_gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if is_gz else raw
        header, line_no = _read_header(path, stream)
        while lines := _read_lines(path, stream, chunk_size):
            block = _parse_block(lines, header, line_no + 1)
            line_no += len(lines)
            chunk = assembler.add(block)
            if on_bytes is not None:
                on_bytes(raw.tell())
            if chunk is not None:
                yield chunk
    assembler.finish()


def plan_segments(path: Path, chunk_size: int) -> list[Segment]:
    """Cut a plain CSV into the blocks of ``chunk_size`` lines that :func:`iter_csv_chunks`
    would read, by finding every ``chunk_size``-th line end (no parsing)."""
    path = Path(path)
    segments = []
    with _open(path) as raw:
        header, line_no = _read_header(path, raw)
        start = raw.tell()
        size = os.fstat(raw.fileno()).st_size
        ends = _line_ends(path, raw, start, chunk_size)
    for k, end in enumerate([*ends, size] if not ends or ends[-1] < size else ends):
        if end > start:
            segments.append(Segment(path, start, end, line_no + 1 + k * chunk_size, header))
        start = end
    return segments


def _line_ends(path: Path, raw: BinaryIO, start: int, every: int) -> list[int]:
    """Byte offsets just after every ``every``-th newline from ``start`` on."""
    ends: list[int] = []
    need = every  # newlines until the next end
    pos = start
    while True:
        try:
            piece = raw.read(_SCAN_BYTES)
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc}") from exc
        if not piece:
            return ends
        n = piece.count(b"\n")
        if n >= need:
            newlines = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == ord("\n"))
            picked = newlines[need - 1::every]
            ends += (pos + picked + 1).tolist()
            need = every - (n - need) % every
        else:
            need -= n
        pos += len(piece)


def parse_segment(segment: Segment) -> Block:
    """Parse one segment (in any process): the same block :func:`iter_csv_chunks` parses."""
    try:
        with _open(segment.path) as raw:
            raw.seek(segment.start)
            data = raw.read(segment.end - segment.start)
    except OSError as exc:
        raise DataError(f"{segment.path}: cannot read: {exc}") from exc
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return _parse_block([line.rstrip(_PAD) for line in lines], segment.header,
                        segment.first_line)


def _read_lines(path: Path, stream: BinaryIO, n: int) -> list[bytes]:
    """The next ``n`` lines with their trailing padding removed."""
    try:
        return [line.rstrip(_PAD) for line in islice(stream, n)]
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc


def _read_header(path: Path, stream: BinaryIO) -> tuple[bytes, int]:
    """The header (first non-blank line, whitespace removed) and its line number."""
    line_no = 0
    while lines := _read_lines(path, stream, 1):
        line_no += 1
        if lines[0]:
            if b"\0" in lines[0] or not _is_utf8(lines[0]):
                raise DataError(
                    f"{path}:{line_no}: not a text CSV (binary or non-UTF-8 bytes in the header "
                    "line)"
                )
            first_cell = lines[0].split(b",", 1)[0].strip()
            try:
                float(first_cell)
            except ValueError:
                return lines[0].translate(None, _WHITESPACE), line_no
            raise DataError(
                f"{path}:{line_no}: expected the header line (evtwt,met,metphi,njets,...), "
                "found numbers"
            )
    raise DataError(f"{path}: file is empty")


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


def _parse_block(lines: list[bytes], header: bytes, first_line: int) -> Block:
    """Parse stripped lines: skip blank and repeated header lines, validate and decode events."""
    lens = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    data = _data_lines(lines, lens, header)
    n = len(data)
    line_numbers = first_line + data
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Block(None, 0, empty, empty.astype(np.int8))
    rows = lines if n == len(lines) else [lines[i] for i in data]
    text = b"\n".join([*rows, b""])  # every row newline-terminated
    ncells = _cells_per_line(rows)
    values, cell_codes = _parse_cells(_one_cell_per_line(text))
    offsets = np.cumsum(ncells) - ncells

    codes = np.zeros(n, dtype=np.int8)
    bad_cells = np.flatnonzero(cell_codes)
    if bad_cells.size:
        rows = np.searchsorted(offsets, bad_cells, side="right") - 1
        first_rows, first = np.unique(rows, return_index=True)
        codes[first_rows] = cell_codes[bad_cells[first]]
    jets, cons = _walk(values, offsets, ncells, codes)

    keep = codes == _OK
    ev = np.flatnonzero(keep)
    jet_keep = keep[jets.row]
    con_keep = keep[cons.row]
    chunk = EventChunk(
        evt_id=ev,
        evt_weight=values[offsets[ev]],
        met=values[offsets[ev] + 1],
        met_phi=values[offsets[ev] + 2],
        num_jets=values[offsets[ev] + 3].astype(np.int64),
        jet_num_constits=jets.npart[jet_keep],
        jet_btag=jets.btag[jet_keep],
        con_pid=cons.pid[con_keep].astype(np.int64),
        con_pt=cons.pt[con_keep],
        con_eta=cons.eta[con_keep],
        con_phi=cons.phi[con_keep],
    )
    bad = np.flatnonzero(~keep)
    return Block(chunk, n, line_numbers[bad], codes[bad])


def _data_lines(lines: list[bytes], lens: np.ndarray, header: bytes) -> np.ndarray:
    """Indices of event rows: not blank and not a repeat of the header."""
    candidates = np.flatnonzero(lens > 0)
    if candidates.size == 0:
        return candidates
    first = np.frombuffer(b"".join([lines[i][:1] for i in candidates]), dtype=np.uint8) | 0x20
    letters = candidates[(first >= ord("a")) & (first <= ord("z"))]
    headers = [i for i in letters.tolist() if lines[i].translate(None, _WHITESPACE) == header]
    return np.setdiff1d(candidates, headers) if headers else candidates


def _cells_per_line(rows: list[bytes]) -> np.ndarray:
    """Number of cells in each row (commas + 1); ``bytes.count`` beats a numpy pass over the
    whole block."""
    return np.fromiter((row.count(b",") for row in rows), dtype=np.int64, count=len(rows)) + 1


def _one_cell_per_line(text: bytes) -> bytes:
    """Commas become newlines; a stray carriage return inside a row becomes a space, since
    pyarrow would end a line there and shift every later cell of the block by one."""
    cells = text.replace(b",", b"\n")
    return cells.replace(b"\r", b" ") if b"\r" in cells else cells


def _parse_cells(cells: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse one cell per line into float64, with a per-cell reason code (0 when fine)."""
    try:
        column = _read_column(cells, pa.float64())
    except pa.ArrowInvalid:
        return _parse_cells_slow(cells)
    values = column.to_numpy()
    codes = np.zeros(len(values), dtype=np.int8)
    if not np.isfinite(values).all():
        codes[np.isinf(values)] = _INF
        codes[np.isnan(values)] = _NAN
    if column.null_count:
        codes[column.is_null().to_numpy(zero_copy_only=False)] = _EMPTY
    return values, codes


def _parse_cells_slow(cells: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Like ``_parse_cells`` for blocks holding text cells: find them instead of failing."""
    cells, non_utf8 = _as_utf8(cells)
    column = pc.utf8_trim_whitespace(_read_column(cells, pa.string()))
    numeric = pc.match_substring_regex(column, _NUMBER)
    values = pc.cast(pc.if_else(numeric, column, "nan"), pa.float64()).to_numpy()
    codes = np.zeros(len(values), dtype=np.int8)
    codes[np.isinf(values)] = _INF
    codes[np.isnan(values)] = _NAN
    codes[~numeric.to_numpy(zero_copy_only=False)] = _NON_NUMERIC
    codes[pc.equal(column, "").to_numpy(zero_copy_only=False)] = _EMPTY
    if non_utf8 is not None:
        codes[non_utf8] = _NON_UTF8
    return values, codes


def _as_utf8(cells: bytes) -> tuple[bytes, np.ndarray | None]:
    """``cells`` with invalid UTF-8 replaced by U+FFFD, and a mask of the cells that had any
    (None when all were valid), so a stray byte is a bad row rather than a failed block.

    Decoding with ``errors="replace"`` never swallows an ASCII byte, so the newlines between
    cells stay put and a cell is bad exactly when its bytes changed.
    """
    if cells.isascii():
        return cells, None
    fixed = cells.decode("utf-8", "replace").encode()
    if fixed == cells:
        return cells, None
    changed = pc.not_equal(_read_column(cells, pa.binary()), _read_column(fixed, pa.binary()))
    return fixed, pc.fill_null(changed, True).to_numpy(zero_copy_only=False)


def _read_column(cells: bytes, dtype: pa.DataType) -> pa.ChunkedArray:
    table = pacsv.read_csv(
        pa.py_buffer(cells),
        read_options=pacsv.ReadOptions(column_names=["v"], block_size=1 << 24),
        parse_options=pacsv.ParseOptions(
            quote_char=False, double_quote=False, escape_char=False, ignore_empty_lines=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"v": dtype},
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.column(0)


@dataclass(frozen=True)
class _Jets:
    row: np.ndarray  # owning row in the block
    start: np.ndarray  # cell index of the first constituent
    npart: np.ndarray
    btag: np.ndarray


@dataclass(frozen=True)
class _Constituents:
    row: np.ndarray
    pid: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray


def _flag(codes: np.ndarray, rows: np.ndarray, code: int) -> None:
    """Give ``rows`` the reason ``code`` unless they already have one."""
    rows = rows[codes[rows] == _OK]
    codes[rows] = code


def _is_integer(x: np.ndarray) -> np.ndarray:
    return (np.floor(x) == x) & (np.abs(x) < _MAX_EXACT_INT)


def _walk(
    values: np.ndarray, offsets: np.ndarray, ncells: np.ndarray, codes: np.ndarray
) -> tuple[_Jets, _Constituents]:
    """Decode the jagged jet/constituent layout of every row, flagging rows that break it.

    Loops over jet slots only; each step handles that slot of all rows that still have jets.
    """
    last = max(len(values) - 1, 0)
    end = offsets + ncells

    _flag(codes, np.flatnonzero(ncells < _EVENT_CELLS), _SHORT)
    head = np.minimum(offsets[:, None] + np.arange(_EVENT_CELLS), last)
    met, njets = values[head[:, 1]], values[head[:, 3]]
    ok = codes == _OK
    _flag(codes, np.flatnonzero(ok & (njets < 0)), _NEG_NJETS)
    _flag(codes, np.flatnonzero(ok & ~_is_integer(njets)), _NONINT_NJETS)
    _flag(codes, np.flatnonzero(ok & (met < 0)), _NEG_MET)
    _flag(codes, np.flatnonzero(ok & (offsets + _EVENT_CELLS + 2 * njets > end)), _OVERRUN)

    ok = codes == _OK
    num_jets = np.where(ok, njets, 0).astype(np.int64)
    ptr = offsets + _EVENT_CELLS
    active = np.flatnonzero(num_jets > 0)
    found: list[tuple[np.ndarray, ...]] = []
    slot = 0
    while active.size:
        p = ptr[active]
        npart = values[np.minimum(p, last)]
        btag = values[np.minimum(p + 1, last)]
        checks = (
            (p + 2 > end[active], _OVERRUN),
            (npart < 0, _NEG_NPART),
            (~_is_integer(npart), _NONINT_NPART),
            (~_is_integer(btag), _NONINT_BTAG),
            ((btag != 0) & (btag != 1), _BTAG_RANGE),
            (p + 2 + 4 * npart > end[active], _OVERRUN),
        )
        good = np.ones(active.size, dtype=bool)
        for failed, code in checks:
            _flag(codes, active[good & failed], code)
            good &= ~failed
        rows, p, n = active[good], p[good], npart[good].astype(np.int64)
        found.append((rows, p + 2, n, btag[good].astype(np.int64)))
        ptr[rows] = p + 2 + 4 * n
        slot += 1
        active = rows[num_jets[rows] > slot]
    _flag(codes, np.flatnonzero((codes == _OK) & (ptr != end)), _LEFTOVER)

    jets = _collect_jets(found)
    cons = _collect_constituents(values, jets)
    _flag(codes, np.unique(cons.row[cons.pt < 0]), _NEG_PT)
    _flag(codes, np.unique(cons.row[~_is_integer(cons.pid)]), _NONINT_PID)
    return jets, cons


def _collect_jets(found: list[tuple[np.ndarray, ...]]) -> _Jets:
    """Jets of all slots, ordered by row and then by slot (file order)."""
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return _Jets(empty, empty, empty, empty)
    row, start, npart, btag = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.argsort(row, kind="stable")  # slots were appended in order, so stay in order
    return _Jets(row[order], start[order], npart[order], btag[order])


def _collect_constituents(values: np.ndarray, jets: _Jets) -> _Constituents:
    total = int(jets.npart.sum())
    first = np.cumsum(jets.npart) - jets.npart
    position = np.arange(total) - np.repeat(first, jets.npart)
    cell = np.repeat(jets.start, jets.npart) + 4 * position
    return _Constituents(
        row=np.repeat(jets.row, jets.npart),
        pid=values[cell],
        pt=values[cell + 1],
        eta=values[cell + 2],
        phi=values[cell + 3],
    )
