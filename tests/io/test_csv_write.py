"""Writing the original BEAD CSV format: layout, exact formatting, determinism, atomicity."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from bead.io.csv_write import HEADER, write_bead_csv
from bead.io.events import EventChunk


def _chunk(first_id: int = 0) -> EventChunk:
    """Three events: two jets (3 + 1 constituents), no jets, one jet with no constituents."""
    return EventChunk(
        evt_id=np.arange(first_id, first_id + 3),
        evt_weight=np.array([1.25e-08, 1.0, 0.5]),
        met=np.array([147.61, 0.0, 1234.56789]),
        met_phi=np.array([1.7074, 3.0, 6.2]),
        num_jets=np.array([2, 0, 1]),
        jet_num_constits=np.array([3, 1, 0]),
        jet_btag=np.array([0, 1, 0]),
        con_pid=np.array([22, -211, 2112, 11]),
        con_pt=np.array([4.385956, 12.397134567, 0.5, 250.0]),
        con_eta=np.array([-0.4542047, -0.43, 2.4999999, 0.0]),
        con_phi=np.array([4.616815, 4.621002, 0.1, 3.14159265]),
    )


def _parse(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines[0] + "\n" == HEADER
    return [line.split(",") for line in lines[1:]]


def test_rows_follow_the_bead_layout(tmp_path: Path) -> None:
    path = tmp_path / "bkg_train_x.csv"
    assert write_bead_csv(path, [_chunk()]) == 3
    rows = _parse(path.read_text())
    assert rows == [
        ["1.25e-08", "147.61", "1.7074", "2",
         "3", "0", "22", "4.385956", "-0.4542047", "4.616815",
         "-211", "12.39713", "-0.43", "4.621002", "2112", "0.5", "2.5", "0.1",
         "1", "1", "11", "250", "0", "3.141593"],
        ["1", "0", "3", "0"],
        ["0.5", "1234.568", "6.2", "1", "0", "0"],
    ]


def test_chunks_are_written_in_order_and_counted(tmp_path: Path) -> None:
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    write_bead_csv(one, [EventChunk.concatenate([_chunk(), _chunk(3)])])
    assert write_bead_csv(two, iter([_chunk(), _chunk(3)])) == 6
    assert one.read_bytes() == two.read_bytes()
    assert len(_parse(two.read_text())) == 6


def test_empty_input_gives_header_only(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    assert write_bead_csv(path, []) == 0
    assert path.read_text() == HEADER


def test_gzip_output_is_byte_identical_and_matches_plain(tmp_path: Path) -> None:
    plain, zipped = tmp_path / "s.csv", tmp_path / "s.csv.gz"
    write_bead_csv(plain, [_chunk()])
    write_bead_csv(zipped, [_chunk()])
    first = zipped.read_bytes()
    write_bead_csv(zipped, [_chunk()])  # rewritten later: no timestamp may leak in
    assert zipped.read_bytes() == first
    assert gzip.decompress(first) == plain.read_bytes()


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    write_bead_csv(path, [_chunk()])
    before = path.read_bytes()

    def broken():
        yield _chunk()
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError, match="generator died"):
        write_bead_csv(path, broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]
