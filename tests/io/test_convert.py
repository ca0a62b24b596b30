"""Converting a folder of sample CSVs to the store (the ``convert_csv`` step)."""

from __future__ import annotations

import gzip
import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from bead.errors import DataError
from bead.io.convert import convert_csv_dir
from bead.io.csv_read import iter_csv_chunks
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


def test_progress_bar_runs(csv_dir: Path, tmp_path: Path) -> None:
    results = convert_csv_dir(csv_dir, tmp_path / "store", progress=True)
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
