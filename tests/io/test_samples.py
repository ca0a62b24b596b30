"""Sample file names (SPEC §4.2) and finding the CSVs of a workspace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bead.errors import DataError
from bead.io.samples import SampleName, discover_csvs, parse_sample_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bkg_train_pythia.csv", SampleName("bkg_train", "pythia", None, "bkg_train_pythia")),
        ("bkg_test_a14.csv.gz", SampleName("bkg_test", "a14", None, "bkg_test_a14")),
        ("sig_test_svj_rinv0.3_mZ2000.csv",
         SampleName("sig_test", "svj", "rinv0.3_mZ2000", "sig_test_svj_rinv0.3_mZ2000")),
        ("bkg_train_Herwig7_v2.csv.gz",
         SampleName("bkg_train", "Herwig7", "v2", "bkg_train_Herwig7_v2")),
        # '-' and '.' belong to the generator; the first '_' after it starts the tag
        ("bkg_train_my-gen.csv", SampleName("bkg_train", "my-gen", None, "bkg_train_my-gen")),
        ("bkg_train_my_gen.csv", SampleName("bkg_train", "my", "gen", "bkg_train_my_gen")),
        ("bkg_test_herwig7.2_ue-up.csv.gz",
         SampleName("bkg_test", "herwig7.2", "ue-up", "bkg_test_herwig7.2_ue-up")),
    ],
)
def test_parse_sample_name(name: str, expected: SampleName) -> None:
    assert parse_sample_name(Path("/some/dir") / name) == expected


@pytest.mark.parametrize(
    "name",
    ["train_pythia.csv", "bkg_train.csv", "bkg_train_.csv", "bkg_train_pythia_.csv",
     "bkg_train_-pythia.csv", "bkg_train_py+thia.csv", "bkg_train_pythia.txt",
     "bkg_train_pythia.csv.bz2", "sig_train_svj.csv"],
)
def test_bad_sample_names(name: str) -> None:
    expected = rf"^{re.escape(name)}: sample file name must look like <bkg_train"
    with pytest.raises(DataError, match=expected) as info:
        parse_sample_name(name)
    assert "letters, digits, '-' and '.'" in str(info.value)  # the rule, not just a pattern


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text("x")


def test_discover_sorted_csvs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    touch(tmp_path, "sig_test_svj.csv", "bkg_train_pythia.csv.gz", "bkg_test_pythia.csv",
          ".DS_Store", "notes.txt")
    (tmp_path / "plots").mkdir()
    (tmp_path / "bkg_test_herwig.csv").symlink_to(tmp_path / "bkg_test_pythia.csv")
    found = discover_csvs(tmp_path)
    assert [p.name for p in found] == [
        "bkg_test_herwig.csv", "bkg_test_pythia.csv", "bkg_train_pythia.csv.gz",
        "sig_test_svj.csv",
    ]
    assert "notes.txt" in caplog.text  # non-CSV files are ignored, but not silently


def test_discover_rejects_badly_named_csvs(tmp_path: Path) -> None:
    touch(tmp_path, "bkg_train_pythia.csv", "events.csv", "Signal.CSV")
    with pytest.raises(DataError, match=r"Signal\.CSV, events\.csv$"):
        discover_csvs(tmp_path)


def test_discover_rejects_two_files_with_one_stem(tmp_path: Path) -> None:
    touch(tmp_path, "bkg_train_pythia.csv", "bkg_train_pythia.csv.gz")
    with pytest.raises(DataError, match="both be stored as 'bkg_train_pythia'"):
        discover_csvs(tmp_path)


def test_discover_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        discover_csvs(tmp_path / "csv")
    touch(tmp_path / "csv", "readme.txt")
    with pytest.raises(DataError, match="no CSV files"):
        discover_csvs(tmp_path / "csv")


def test_discover_names_every_unreadable_csv_entry(tmp_path: Path) -> None:
    touch(tmp_path, "bkg_train_pythia.csv", "notes.txt")
    (tmp_path / "bkg_train_herwig.csv").symlink_to(tmp_path / "gone" / "x.csv")
    (tmp_path / "sig_test_other.csv").mkdir()
    (tmp_path / "bkg_test_a.csv.gz").symlink_to("nowhere.csv.gz")
    (tmp_path / "readme.txt").symlink_to("nowhere.txt")  # not a CSV: not our business
    with pytest.raises(DataError) as info:
        discover_csvs(tmp_path)
    assert str(info.value) == "; ".join([
        f"{tmp_path / 'bkg_test_a.csv.gz'}: not a readable file (broken link?)",
        f"{tmp_path / 'bkg_train_herwig.csv'}: not a readable file (broken link?)",
        f"{tmp_path / 'sig_test_other.csv'}: not a readable file (a folder)",
    ])


def test_discover_only_a_broken_link_is_not_no_csvs(tmp_path: Path) -> None:
    (tmp_path / "bkg_train_pythia.csv").symlink_to("/nonexistent/x.csv")
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv: not a readable file \(broken"):
        discover_csvs(tmp_path)
