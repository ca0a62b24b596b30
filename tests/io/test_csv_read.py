"""Reading original BEAD CSVs: values, chunking, gzip, skipped lines and every kind of bad row."""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from bead.errors import DataError, UsageError
from bead.io.csv_read import BadRowReport, iter_csv_chunks
from bead.io.events import EventChunk

FIXTURE = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
    / "bead_sample_bkg_train_pythia.csv"
)
HEADER = "evtwt,met,metphi,njets,npart,isbtagged,pid,pt,eta,phi"
# one jet (b-tagged) with two constituents: 4 + 2 + 2 * 4 = 14 cells
GOOD = "1.5e-08,100.0,0.5,1,2,1,22,10.0,0.1,0.2,-211,5.0,-0.3,1.0"
GOOD2 = "2.0,50.0,-1.0,2,1,0,11,3.0,0.0,0.0,0,0"  # second jet has no constituents
LATIN1_E = "\udce9"  # written as the lone byte 0xE9 (latin-1 'é'), which is not UTF-8


def read_all(path: Path, **kwargs) -> EventChunk:
    return EventChunk.concatenate(list(iter_csv_chunks(path, **kwargs)))


def write(tmp_path: Path, text: str, name: str = "bkg_train_test.csv") -> Path:
    """Write ``text`` as UTF-8; surrogate escapes such as ``LATIN1_E`` become raw bytes."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


def assert_same(a: EventChunk, b: EventChunk) -> None:
    for f in fields(EventChunk):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)


def naive_read(path: Path) -> EventChunk:
    """An independent, plain-Python reading of a well-formed file, cell by cell."""
    cols: dict[str, list] = {f.name: [] for f in fields(EventChunk)}
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    for evt_id, cells in enumerate(rows):
        v = [float(c) for c in cells if c.strip()]
        cols["evt_id"].append(evt_id)
        for name, x in zip(("evt_weight", "met", "met_phi", "num_jets"), v[:4], strict=True):
            cols[name].append(x)
        p = 4
        for _ in range(int(v[3])):
            npart = int(v[p])
            cols["jet_num_constits"].append(npart)
            cols["jet_btag"].append(int(v[p + 1]))
            for k in range(npart):
                pid, pt, eta, phi = v[p + 2 + 4 * k: p + 6 + 4 * k]
                for name, x in zip(("con_pid", "con_pt", "con_eta", "con_phi"),
                                   (pid, pt, eta, phi), strict=True):
                    cols[name].append(x)
            p += 2 + 4 * npart
    ints = {"evt_id", "num_jets", "jet_num_constits", "jet_btag", "con_pid"}
    return EventChunk(**{k: np.array(v, dtype=np.int64 if k in ints else np.float64)
                         for k, v in cols.items()})


@pytest.fixture
def fixture_csv() -> Path:
    if not FIXTURE.is_file():
        pytest.skip(f"shared fixture {FIXTURE} is not present")
    return FIXTURE


def test_fixture_values(fixture_csv: Path) -> None:
    chunk = read_all(fixture_csv)
    assert chunk.n_events == 10
    np.testing.assert_array_equal(chunk.evt_id, np.arange(10))
    assert chunk.evt_weight[0] == pytest.approx(1.23e-08)
    assert chunk.met[0] == pytest.approx(147.61)
    assert chunk.met_phi[0] == pytest.approx(1.7074)
    assert chunk.num_jets[0] == 4
    assert chunk.jet_num_constits[0] == 68
    assert chunk.con_pid[0] == 22
    assert chunk.con_pt[0] == pytest.approx(4.385956)
    assert chunk.con_eta[0] == pytest.approx(-0.4542047)
    assert chunk.con_phi[0] == pytest.approx(4.616815)
    assert chunk.con_pid[1] == -211
    assert chunk.evt_weight[-1] == pytest.approx(3.16e-08)
    assert chunk.num_jets[-1] == 4
    assert_same(chunk, naive_read(fixture_csv))


def test_fixture_gzip_and_small_chunks(fixture_csv: Path, tmp_path: Path) -> None:
    whole = read_all(fixture_csv)
    gz = tmp_path / "bkg_train_pythia.csv.gz"
    with fixture_csv.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert_same(read_all(gz), whole)
    chunks = list(iter_csv_chunks(fixture_csv, chunk_size=3))
    assert [c.n_events for c in chunks] == [3, 3, 3, 1]
    assert_same(EventChunk.concatenate(chunks), whole)


def test_padding_zero_jets_and_empty_jets(tmp_path: Path) -> None:
    rows = [HEADER, GOOD, GOOD2, "3.0,7.0,0.1,0"]
    path = write(tmp_path, "".join(row + "," * 20 + "\r\n" for row in rows))
    chunk = read_all(path)
    np.testing.assert_array_equal(chunk.num_jets, [1, 2, 0])
    np.testing.assert_array_equal(chunk.jet_num_constits, [2, 1, 0])
    np.testing.assert_array_equal(chunk.jet_btag, [1, 0, 0])
    np.testing.assert_array_equal(chunk.con_pid, [22, -211, 11])
    np.testing.assert_array_equal(chunk.con_pt, [10.0, 5.0, 3.0])
    np.testing.assert_array_equal(chunk.met, [100.0, 50.0, 7.0])


def test_blank_lines_and_repeated_headers_are_skipped(tmp_path: Path) -> None:
    text = f"\n{HEADER}\n{GOOD}\n\n  \n{HEADER},,,\n{GOOD2}\n{HEADER}\n\n{GOOD}\n"
    path = write(tmp_path, text)
    for chunk_size in (1, 2, 100):
        chunk = read_all(path, chunk_size=chunk_size)
        np.testing.assert_array_equal(chunk.evt_id, [0, 1, 2])
        np.testing.assert_array_equal(chunk.num_jets, [1, 2, 1])


def test_line_numbers_count_blank_and_header_lines_also_in_gzip(tmp_path: Path) -> None:
    text = f"{HEADER}\n{GOOD}\n\n{HEADER}\n\n{GOOD.replace('10.0', '-10.0')}\n"
    gz = tmp_path / "bkg_train_x.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    for path in (write(tmp_path, text), gz):
        for chunk_size in (1, 2, 10):
            with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:6: negative pt$"):
                read_all(path, chunk_size=chunk_size)


BAD_ROWS = [
    (GOOD.replace("10.0", "abc"), "non-numeric cell"),
    (GOOD.replace("10.0", ""), "empty cell inside the row"),
    (GOOD.replace("10.0", " "), "empty cell inside the row"),
    (GOOD.replace("10.0", "nan"), "NaN value"),
    (GOOD.replace("0.1,0.2", "inf,0.2"), "infinite value"),
    (GOOD.replace("10.0", "-10.0"), "negative pt"),
    ("1.0,100.0,0.5,-1", "negative njets"),
    ("1.0,100.0,0.5,1.5,0,0", "non-integer njets"),
    (GOOD.replace(",100.0,", ",-100.0,"), "negative met"),
    ("1.0,100.0,0.5,1,-2,0,22,1.0,0.0,0.0", "negative npart"),
    (GOOD.replace(",1,2,1,", ",1,1.5,1,"), "non-integer npart"),
    (GOOD.replace(",1,2,1,", ",1,2,0.5,"), "non-integer b-tag"),
    (GOOD.replace(",1,2,1,", ",1,2,7,"), "b-tag not 0 or 1"),
    (GOOD.replace(",1,2,1,", ",1,2,-1,"), "b-tag not 0 or 1"),
    (GOOD2[:-1] + "2", "b-tag not 0 or 1"),  # in the second jet
    (GOOD.replace("10.0", "1.2" + LATIN1_E), "non-UTF-8 bytes"),
    (GOOD.replace("10.0", "\udcff\udcfe"), "non-UTF-8 bytes"),
    (GOOD.replace(",22,", ",22" + "\udcc3,"), "non-UTF-8 bytes"),  # cut multi-byte character
    (GOOD + "," + LATIN1_E, "non-UTF-8 bytes"),  # after the last jet
    (GOOD.replace("22,", "22.5,"), "non-integer particle id"),
    (GOOD.replace(",1,2,1,", ",1,3,1,"), "count overruns the row"),
    (GOOD.replace(",1,2,1,", ",2,2,1,"), "count overruns the row"),
    ("1.0,100.0,0.5,5", "count overruns the row"),
    (GOOD + ",7.0", "leftover cells after the last jet"),
    ("1.0,100.0", "fewer than 4 event cells"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_bad_row_stops_with_file_line_and_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n{row},,,,\n{GOOD2}\n")
    with pytest.raises(DataError) as info:
        read_all(path)
    assert str(info.value) == f"{path}:3: {reason}"


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_bad_row_is_skipped_and_counted(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n{row},,,,\n{GOOD2}\n")
    report = BadRowReport()
    chunk = read_all(path, on_bad_row="skip", report=report)
    assert report.counts == {reason: 1}
    assert [str(e) for e in report.examples] == [f"{path}:3: {reason}"]
    np.testing.assert_array_equal(chunk.evt_id, [0, 2])  # ids keep their row number
    np.testing.assert_array_equal(chunk.num_jets, [1, 2])
    np.testing.assert_array_equal(chunk.con_pt, [10.0, 5.0, 3.0])
    np.testing.assert_array_equal(chunk.con_pid, [22, -211, 11])


def test_non_utf8_bytes_among_other_bad_cells_are_told_apart(tmp_path: Path) -> None:
    rows = [GOOD, GOOD.replace("10.0", "x"), GOOD.replace("0.2", LATIN1_E), "é" + GOOD, GOOD,
            GOOD.replace("5.0", "5" + LATIN1_E + LATIN1_E), GOOD2]
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    for chunk_size in (1, 3, 100):
        report = BadRowReport(max_examples=10)
        chunk = read_all(path, chunk_size=chunk_size, on_bad_row="skip", report=report)
        np.testing.assert_array_equal(chunk.evt_id, [0, 4, 6])
        np.testing.assert_array_equal(chunk.con_pt, [10.0, 5.0, 10.0, 5.0, 3.0])
        assert report.counts == {"non-UTF-8 bytes": 2, "non-numeric cell": 2}
        assert [(e.line, e.reason) for e in report.examples] == [
            (3, "non-numeric cell"), (4, "non-UTF-8 bytes"), (5, "non-numeric cell"),
            (7, "non-UTF-8 bytes"),
        ]
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: non-numeric cell$"):
        read_all(path)


def test_carriage_return_inside_a_row_does_not_shift_later_rows(tmp_path: Path) -> None:
    rows = [GOOD, GOOD.replace("0.1,0.2", "0.1,0.\r2"), GOOD2, GOOD.replace(",0.2,", ",0.2\r,")]
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    report = BadRowReport()
    chunk = read_all(path, on_bad_row="skip", report=report)
    assert report.counts == {"non-numeric cell": 1}
    assert report.examples[0].line == 3
    np.testing.assert_array_equal(chunk.evt_id, [0, 2, 3])
    np.testing.assert_array_equal(chunk.con_pt, [10.0, 5.0, 3.0, 10.0, 5.0])
    np.testing.assert_array_equal(chunk.con_phi, [0.2, 1.0, 0.0, 0.2, 1.0])


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 4,  # random-looking binary
        b"\x7fELF\x02\x01\x01\x00\x00\x00\n\x00\x01",  # an executable
        f"{HEADER}{LATIN1_E}\n{GOOD}\n".encode("utf-8", "surrogateescape"),  # latin-1 header
        f"\n\n{HEADER}".encode("utf-16"),
    ],
)
def test_binary_file_is_not_a_text_csv(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bkg_train_x.csv"
    path.write_bytes(data)
    for on_bad_row in ("error", "skip"):
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:\d+: not a text CSV"):
            read_all(path, on_bad_row=on_bad_row)


def test_skip_summary_counts_reasons(tmp_path: Path) -> None:
    rows = [GOOD, GOOD.replace("10.0", "-1"), GOOD.replace("10.0", "x"), GOOD,
            GOOD.replace("5.0", "-2")]
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    report = BadRowReport(max_examples=2)
    chunk = read_all(path, chunk_size=2, on_bad_row="skip", report=report)
    np.testing.assert_array_equal(chunk.evt_id, [0, 3])
    assert report.counts == {"negative pt": 2, "non-numeric cell": 1}
    assert report.total == 3
    assert [e.line for e in report.examples] == [3, 4]
    assert report.summary() == "3 bad rows (2 negative pt, 1 non-numeric cell)"


def test_all_rows_bad_is_an_error_in_skip_mode(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD.replace('10.0', 'nan')}\n")
    with pytest.raises(DataError, match="no valid events"):
        read_all(path, on_bad_row="skip")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "file is empty"),
        ("\n\n,,,\n", "file is empty"),
        (f"{HEADER}\n", "no events after the header"),
        (f"{HEADER}\n\n{HEADER}\n\n", "no events after the header"),
        (f"{GOOD}\n{GOOD}\n", "1: expected the header line"),
    ],
)
def test_files_without_events(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:? ?{message}"):
        read_all(path)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot open"):
        read_all(tmp_path / "nope.csv")
    broken = tmp_path / "bkg_train_x.csv.gz"
    broken.write_bytes(gzip.compress(f"{HEADER}\n{GOOD}\n".encode())[:-12])
    with pytest.raises(DataError, match="cannot read"):
        read_all(broken)


def test_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n")
    with pytest.raises(UsageError, match="on_bad_row"):
        read_all(path, on_bad_row="ignore")
    with pytest.raises(UsageError, match="chunk_size"):
        read_all(path, chunk_size=0)


def test_byte_progress_reaches_file_size(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\n" + f"{GOOD}\n" * 10)
    seen: list[int] = []
    read_all(path, chunk_size=3, on_bytes=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == path.stat().st_size
