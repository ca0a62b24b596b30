"""Converting a folder of sample CSVs to the store (the ``convert_csv`` step), in one process or
several: the same stores, log order and errors either way."""

from __future__ import annotations

import gzip
import itertools
import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from bead.errors import DataError
from bead.io.convert import FileJob, convert_csv_dir, split_large_files
from bead.io.csv_read import (
    BadRowReport,
    ChunkAssembler,
    iter_csv_chunks,
    parse_segment,
    plan_segments,
)
from bead.io.events import EventChunk
from bead.io.store import read_store

HEADER = "evtwt,met,metphi,njets,npart,isbtagged,pid,pt,eta,phi,,,,,,,,,,,,,\n"
ROW = "1.0e-08,{met},0.5,1,2,0,22,10.0,0.1,0.2,-211,5.0,-0.3,1.0,,,,,,,,,\n"


def csv_text(mets: list[str]) -> str:
    return HEADER + "".join(ROW.format(met=m) for m in mets)


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "bkg_train_pythia.csv").write_text(csv_text(["100", "110", "120"]))
    (folder / "sig_test_svj_r03.csv.gz").write_bytes(gzip.compress(csv_text(["90"]).encode()))
    return folder


def assert_same(a: EventChunk, b: EventChunk) -> None:
    for f in fields(EventChunk):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_converts_every_csv(csv_dir: Path, tmp_path: Path, fmt: str,
                            caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="bead.io.convert"):
        results = convert_csv_dir(csv_dir, out, fmt=fmt, chunk_size=2, progress=False)
    assert [(r.source.name, r.output.name, r.n_events, r.n_skipped) for r in results] == [
        ("bkg_train_pythia.csv", f"bkg_train_pythia.{fmt}", 3, {}),
        ("sig_test_svj_r03.csv.gz", f"sig_test_svj_r03.{fmt}", 1, {}),
    ]
    assert sorted(p.name for p in out.iterdir()) == [r.output.name for r in results]
    for r in results:
        assert r.seconds > 0
        want = EventChunk.concatenate(list(iter_csv_chunks(r.source)))
        assert_same(want, read_store(r.output))
    assert "bkg_train_pythia.csv: bkg_train, generator 'pythia': 3 events in" in caplog.text
    assert "generator 'svj', tag 'r03'" in caplog.text  # the generator/tag split is said
    assert "events/s" in caplog.text


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_bar_runs(csv_dir: Path, tmp_path: Path, workers: int) -> None:
    results = convert_csv_dir(csv_dir, tmp_path / "store", progress=True, workers=workers,
                              parallel_min_bytes=0)
    assert sum(r.n_events for r in results) == 4


def test_bad_row_stops_and_keeps_the_earlier_output(csv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    convert_csv_dir(csv_dir, out, progress=False)
    before = read_store(out / "bkg_train_pythia.h5")
    (csv_dir / "bkg_train_pythia.csv").write_text(csv_text(["100", "-5", "120"]))
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv:3: negative met$"):
        convert_csv_dir(csv_dir, out, progress=False)
    assert_same(before, read_store(out / "bkg_train_pythia.h5"))
    assert sorted(p.name for p in out.iterdir()) == ["bkg_train_pythia.h5",
                                                      "sig_test_svj_r03.h5"]


def test_failure_leaves_no_partial_file(csv_dir: Path, tmp_path: Path) -> None:
    (csv_dir / "bkg_train_pythia.csv").write_text(csv_text(["100", "110", "x"]))
    out = tmp_path / "store"
    with pytest.raises(DataError, match=":4: non-numeric cell"):
        convert_csv_dir(csv_dir, out, chunk_size=1, progress=False)
    assert list(out.iterdir()) == []


def test_skip_mode_reports_skipped_rows(csv_dir: Path, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    (csv_dir / "bkg_train_pythia.csv").write_text(csv_text(["100", "nan", "-1", "130"]))
    results = convert_csv_dir(csv_dir, tmp_path / "store", on_bad_row="skip", progress=False)
    assert results[0].n_events == 2
    assert results[0].n_skipped == {"NaN value": 1, "negative met": 1}
    np.testing.assert_array_equal(read_store(results[0].output).met, [100.0, 130.0])
    assert "skipped 2 bad rows (1 NaN value, 1 negative met)" in caplog.text
    assert "bkg_train_pythia.csv:3: NaN value" in caplog.text


def test_unreadable_csv_entries_stop_before_any_conversion(csv_dir: Path, tmp_path: Path) -> None:
    (csv_dir / "bkg_train_herwig.csv").symlink_to("/nonexistent/x.csv")
    (csv_dir / "sig_test_other.csv").mkdir()
    out = tmp_path / "store"
    with pytest.raises(DataError, match=r"bkg_train_herwig\.csv: not a readable file \(broken "
                       r"link\?\); .*sig_test_other\.csv: not a readable file \(a folder\)$"):
        convert_csv_dir(csv_dir, out, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_non_utf8_byte_names_file_and_line_or_is_skipped(csv_dir: Path, tmp_path: Path) -> None:
    text = csv_text(["100", "1.2\udce9", "120"]).encode("utf-8", "surrogateescape")
    (csv_dir / "bkg_train_pythia.csv").write_bytes(text)
    out = tmp_path / "store"
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv:3: non-UTF-8 bytes$"):
        convert_csv_dir(csv_dir, out, progress=False)
    results = convert_csv_dir(csv_dir, out, on_bad_row="skip", progress=False)
    assert results[0].n_skipped == {"non-UTF-8 bytes": 1}
    np.testing.assert_array_equal(read_store(results[0].output).met, [100.0, 120.0])


def test_binary_file_is_not_a_text_csv(csv_dir: Path, tmp_path: Path) -> None:
    (csv_dir / "bkg_train_pythia.csv").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv:1: not a text CSV"):
        convert_csv_dir(csv_dir, tmp_path / "store", on_bad_row="skip", progress=False)


def test_btag_other_than_0_or_1_is_a_bad_row(csv_dir: Path, tmp_path: Path) -> None:
    text = csv_text(["100", "110"]) + ROW.format(met="120").replace(",2,0,22,", ",2,7,22,")
    (csv_dir / "bkg_train_pythia.csv").write_text(text)
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv:4: b-tag not 0 or 1$"):
        convert_csv_dir(csv_dir, tmp_path / "store", progress=False)
    results = convert_csv_dir(csv_dir, tmp_path / "store", on_bad_row="skip", progress=False)
    assert results[0].n_skipped == {"b-tag not 0 or 1": 1}
    stored = read_store(results[0].output)
    np.testing.assert_array_equal(stored.met, [100.0, 110.0])
    np.testing.assert_array_equal(stored.jet_btag, [0, 0])


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        convert_csv_dir(tmp_path / "csv", tmp_path / "store", progress=False)
    (tmp_path / "csv").mkdir()
    with pytest.raises(DataError, match="no CSV files"):
        convert_csv_dir(tmp_path / "csv", tmp_path / "store", progress=False)
    (tmp_path / "csv" / "bkg_train_pythia.csv").write_text("")
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv: file is empty"):
        convert_csv_dir(tmp_path / "csv", tmp_path / "store", progress=False)
    assert list((tmp_path / "store").iterdir()) == []


# --- several processes ------------------------------------------------------------------------


def varied_text(n: int, bad: dict[int, str] | None = None) -> str:
    """``n`` events with a blank line and a repeated header among them (line numbers and event
    ids must still come out right); ``bad`` puts a met value on the n-th event row."""
    bad = bad or {}
    rows = [ROW.format(met=bad.get(i, str(100 + i))) for i in range(n)]
    rows.insert(n // 3, "\n")
    rows.insert(2 * n // 3, HEADER)
    return HEADER + "".join(rows)


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """A large plain file (more than half of the bytes: cut into blocks with 2 or 3 processes),
    a small one and a gzipped one (never cut)."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "bkg_train_big.csv").write_text(varied_text(40))
    (folder / "bkg_test_pythia.csv").write_text(varied_text(6))
    (folder / "sig_test_svj.csv.gz").write_bytes(gzip.compress(varied_text(5).encode()))
    return folder


def line_of(text: str, met: str) -> int:
    """The line number of the row whose met is ``met``."""
    return 1 + text.splitlines().index(ROW.format(met=met).rstrip("\n"))


def store_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 1000])
def test_segments_are_the_blocks_of_the_streaming_reader(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "bkg_train_x.csv"
    text = varied_text(20, bad={5: "nan"})
    path.write_bytes(text.replace("\n", "\r\n").encode())
    segments = plan_segments(path, chunk_size)
    assert segments[0].start > 0 and segments[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    report = BadRowReport()
    assembler = ChunkAssembler(path, "skip", report)
    chunks = [c for s in segments if (c := assembler.add(parse_segment(s))) is not None]
    assembler.finish()
    streamed_report = BadRowReport()
    streamed = list(iter_csv_chunks(path, chunk_size, "skip", streamed_report))
    assert len(chunks) == len(streamed)
    for got, want in zip(chunks, streamed, strict=True):
        assert_same(want, got)
    assert report == streamed_report and report.examples[0].line == line_of(text, "nan")


@pytest.mark.parametrize(("fmt", "workers_tried"), [("h5", (2, 3)), ("parquet", (2,))])
def test_parallel_conversion_writes_what_one_process_writes(
        mixed_dir: Path, tmp_path: Path, fmt: str, workers_tried: tuple[int, ...],
        caplog: pytest.LogCaptureFixture) -> None:
    # Which files are cut into blocks: only the big plain one.
    jobs = [FileJob(i, p, tmp_path / p.name, p.stat().st_size)
            for i, p in enumerate(sorted(mixed_dir.iterdir()))]
    assert [j.segments is not None for j in split_large_files(jobs, 2, 4)] == [False, True, False]
    serial = convert_csv_dir(mixed_dir, tmp_path / "one", fmt=fmt, chunk_size=4, progress=False)
    for workers in workers_tried:
        out = tmp_path / f"w{workers}"
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bead.io.convert"):
            results = convert_csv_dir(mixed_dir, out, fmt=fmt, chunk_size=4, progress=False,
                                      workers=workers, parallel_min_bytes=0)
        assert store_bytes(out) == store_bytes(tmp_path / "one"), workers
        assert [(r.source, r.output.name, r.n_events) for r in results] == [
            (r.source, r.output.name, r.n_events) for r in serial]
        per_file = [m.split(":")[0] for m in caplog.messages if " events in " in m]
        assert per_file == ["bkg_test_pythia.csv", "bkg_train_big.csv", "sig_test_svj.csv.gz"]
        assert "converted 51 events from 3 files in" in caplog.text
        assert f"{workers} processes" in caplog.text


def test_parallel_skip_mode_reports_what_one_process_reports(mixed_dir: Path,
                                                             tmp_path: Path) -> None:
    (mixed_dir / "bkg_train_big.csv").write_text(varied_text(40, bad={3: "-1", 33: "nan"}))
    serial = convert_csv_dir(mixed_dir, tmp_path / "one", chunk_size=4, on_bad_row="skip",
                             progress=False)
    parallel = convert_csv_dir(mixed_dir, tmp_path / "two", chunk_size=4, on_bad_row="skip",
                               progress=False, workers=2, parallel_min_bytes=0)
    assert [(r.n_events, r.n_skipped, r.skipped_examples) for r in parallel] == [
        (r.n_events, r.n_skipped, r.skipped_examples) for r in serial]
    assert parallel[1].n_skipped == {"NaN value": 1, "negative met": 1}
    assert store_bytes(tmp_path / "two") == store_bytes(tmp_path / "one")


@pytest.mark.parametrize("bad_file", ["bkg_test_pythia.csv", "bkg_train_big.csv"])
def test_parallel_failure_names_the_first_bad_row_and_keeps_old_stores(
        mixed_dir: Path, tmp_path: Path, bad_file: str) -> None:
    out = tmp_path / "store"
    convert_csv_dir(mixed_dir, out, chunk_size=4, progress=False)
    before = store_bytes(out)
    # Bad rows in two files: the error is the first in file order, as with one process. In the
    # big file the row lies in a late block, parsed by a worker, written by this process.
    big = varied_text(40, bad={30: "-5"})
    (mixed_dir / "bkg_train_big.csv").write_text(big)
    line = line_of(big, "-5")
    if bad_file == "bkg_test_pythia.csv":
        small = varied_text(6, bad={1: "x"})
        (mixed_dir / bad_file).write_text(small)
        line = line_of(small, "x")
    with pytest.raises(DataError, match=rf"{bad_file}:{line}: "):
        convert_csv_dir(mixed_dir, out, chunk_size=4, progress=False, workers=2,
                        parallel_min_bytes=0)
    assert store_bytes(out) == before  # no temporary left, nothing replaced by a half
