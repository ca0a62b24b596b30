"""The ``convert_root`` step: a folder of ROOT files to the store, and the mode on the CLI."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from root_files import copy_delphes, random_nanoaod

from bead.cli import main
from bead.config import Config, save_config
from bead.errors import DataError, MissingExtraError
from bead.io.root_base import RootSettings
from bead.io.root_convert import convert_root_dir
from bead.io.store import read_store
from bead.pipeline import parse_chain


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    random_nanoaod(folder / "bkg_train_nano.root", 40, seed=1)
    random_nanoaod(folder / "sig_test_nano_heavy.root", 10, seed=2, pt_scale=2.0)
    return folder


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_converts_every_root_file(root_dir: Path, tmp_path: Path, fmt: str, caplog) -> None:
    out = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="bead.io"):
        results = convert_root_dir(root_dir, out, RootSettings(), fmt=fmt, chunk_size=7,
                                   progress=False)
    assert [(r.source.name, r.output.name, r.n_events) for r in results] == [
        ("bkg_train_nano.root", f"bkg_train_nano.{fmt}", 40),
        ("sig_test_nano_heavy.root", f"sig_test_nano_heavy.{fmt}", 10),
    ]
    assert sorted(p.name for p in out.iterdir()) == [r.output.name for r in results]
    np.testing.assert_array_equal(read_store(results[0].output).evt_id, np.arange(40))
    assert "bkg_train_nano.root: 40 events (of 40 entries) in" in caplog.text
    assert "dropped" not in caplog.text  # the default selection keeps everything


def test_dropped_events_are_reported(root_dir: Path, tmp_path: Path, caplog) -> None:
    settings = RootSettings(jet_pt_min=400.0, min_jets=2)
    with caplog.at_level(logging.WARNING, logger="bead.io"):
        results = convert_root_dir(root_dir, tmp_path / "h5", settings, progress=False)
    report = results[0].report
    assert 0 < report.events < 40 and report.events + report.events_failed == 40
    assert (f"bkg_train_nano.root: 40 entries read; {report.jets_failed} of {report.jets} jets "
            f"with pt < 400 GeV dropped; {report.events_failed} events with fewer than 2 jets "
            "after that dropped") in caplog.text


def test_no_event_left_is_an_error_and_writes_nothing(root_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bkg_train_nano\.root: no events to store"):
        convert_root_dir(root_dir, tmp_path / "h5", RootSettings(min_jets=50), progress=False)
    assert not list((tmp_path / "h5").iterdir())


def test_a_bad_file_leaves_the_earlier_store(root_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "h5"
    convert_root_dir(root_dir, out, RootSettings(), progress=False)
    before = (out / "sig_test_nano_heavy.h5").read_bytes()
    path = root_dir / "sig_test_nano_heavy.root"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match=str(path)):
        convert_root_dir(root_dir, out, RootSettings(), progress=False)
    assert (out / "sig_test_nano_heavy.h5").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["bkg_train_nano.h5", "sig_test_nano_heavy.h5"]


def test_folder_and_name_errors(tmp_path: Path, root_dir: Path, caplog) -> None:
    with pytest.raises(DataError, match="ROOT folder does not exist"):
        convert_root_dir(tmp_path / "nope", tmp_path / "h5", RootSettings(), progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no ROOT files \(\*\.root\) found"):
        convert_root_dir(empty, tmp_path / "h5", RootSettings(), progress=False)
    assert "ignoring files that are not ROOT files: notes.txt" in caplog.text
    (root_dir / "signal.root").write_bytes(b"")
    with pytest.raises(DataError, match=r"not of the form <bkg_train\|bkg_test\|sig_test>_"
                                        r"<generator>\[_<tag>\]\.root: signal\.root"):
        convert_root_dir(root_dir, tmp_path / "h5", RootSettings(), progress=False)


def test_a_stem_both_csv_and_root_is_an_error_naming_both(root_dir: Path, tmp_path: Path) -> None:
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "bkg_train_nano.csv.gz").write_bytes(b"")
    with pytest.raises(DataError) as info:
        convert_root_dir(root_dir, tmp_path / "h5", RootSettings(), csv_dir=csv_dir,
                         progress=False)
    assert str(info.value) == (
        f"{csv_dir / 'bkg_train_nano.csv.gz'} and {root_dir / 'bkg_train_nano.root'} would both "
        "be stored as 'bkg_train_nano': rename or remove one of each pair")
    assert not (tmp_path / "h5").exists()


def test_without_uproot_the_extra_is_named(root_dir: Path, tmp_path: Path,
                                            monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uproot", None)  # import uproot now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'bead-hep\[root\]'"):
        convert_root_dir(root_dir, tmp_path / "h5", RootSettings(), progress=False)


def test_chain_token() -> None:
    assert parse_chain("convertroot_prepareinputs") == ["convert_root", "prepare_inputs"]


TINY = {"epochs": 2, "batch_size": 16, "num_jets": 2, "num_constits": 8}


def test_delphes_and_nanoaod_through_convert_prepare_train_detect(
        shared_fixture, tmp_path: Path, capsys) -> None:
    base = ["-p", "ws", "p1", "--workspaces", str(tmp_path), "--no-progress"]
    assert main(["-m", "new_project", *base]) == 0
    save_config(Config(**TINY), tmp_path / "ws" / "p1" / "config" / "p1_config.toml")
    data = tmp_path / "ws" / "data"
    random_nanoaod(data / "root" / "bkg_train_nano.root", 120, seed=5)
    copy_delphes(shared_fixture, data / "root" / "bkg_test_delphes.root")
    random_nanoaod(data / "root" / "sig_test_nano.root", 30, seed=6, pt_scale=3.0)
    (data / "csv" / "bkg_test_delphes.csv").write_text("")
    for mode in ("convert_root", "convert_csv"):
        assert main(["-m", mode, *base]) == 1
        assert "would both be stored as 'bkg_test_delphes'" in capsys.readouterr().err
    (data / "csv" / "bkg_test_delphes.csv").unlink()

    assert main(["-m", "chain", *base, "-o", "convertroot_prepareinputs_train_detect"]) == 0
    out = " ".join("".join(capsys.readouterr()).split())
    assert "bkg_test_delphes.root: tree 'Delphes', detected from the branches; Delphes:" in out
    assert "sig_test_nano.root: tree 'Events', detected from the branches; NanoAOD:" in out
    assert "set aside" not in out  # ROOT-converted stores are not orphans
    with h5py.File(data / "h5" / "bkg_test_delphes.h5") as f:
        assert f.attrs["source"] == "bkg_test_delphes.root"
        assert len(f["events"]) == 10
    (prepared,) = (data / "h5" / "tensors" / "processed").iterdir()
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert {s["source"]: s["n_events"] for s in manifest["samples"]} == {
        "bkg_train_nano.h5": 120, "bkg_test_delphes.h5": 10, "sig_test_nano.h5": 30}
    metrics = json.loads((tmp_path / "ws" / "p1" / "output" / "results" / "metrics.json")
                         .read_text())
    assert "sig_test_nano" in json.dumps(metrics["per_signal"])

    # -o parquet writes the Parquet store instead
    assert main(["-m", "convert_root", *base, "-o", "parquet"]) == 0
    assert sorted(p.name for p in (data / "parquet").iterdir()) == [
        "bkg_test_delphes.parquet", "bkg_train_nano.parquet", "sig_test_nano.parquet"]
