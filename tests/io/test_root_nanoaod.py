"""NanoAOD / PFNano trees, on small synthetic NanoAOD-like files that the tests write themselves
(the branch layout of CMS NanoAOD, made-up values: see ``root_files``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from root_files import random_nanoaod, read_root, uproot, write_tree

from bead.errors import DataError
from bead.io.root import SelectionReport
from bead.io.root_base import RootSettings

# Three events: two fat jets whose (jet, candidate) pairs are interleaved, none, and one jet
# without candidates next to one with two.
FATJET = {"pt": [[300.0, 250.0], [], [400.0, 220.0]], "eta": [[0.5, -2.2], [], [1.0, 0.1]],
          "phi": [[0.1, 3.0], [], [-1.0, 2.0]], "btagDDBvLV2": [[0.9, 0.2], [], [0.5, 0.49]]}
PFCANDS = {"pt": [[10.0, 20.0, 30.0, 40.0], [5.0], [1.0, 2.0, 3.0]],
           "eta": [[0.1, 0.2, 0.3, 0.4], [0.0], [1.1, 1.2, 1.3]],
           "phi": [[0.0, 0.5, 1.0, 1.5], [0.0], [-1.0, -1.1, -1.2]],
           "pdgId": [[211, 22, -211, 130], [11], [13, 2212, 22]]}
TABLE = {"jetIdx": [[0, 1, 0], [], [1, 1]], "pFCandsIdx": [[2, 0, 1], [], [2, 0]]}


def write(path: Path, table: dict | None = None, table_name: str = "FatJetPFCands",
          **extra) -> Path:
    branches = {"FatJet": FATJET, "PFCands": PFCANDS, table_name: table or TABLE,
                "MET_pt": np.array([50.0, 60.0, 70.0]), "MET_phi": np.array([0.1, 0.2, 0.3]),
                "PuppiMET_pt": np.array([5.0, 6.0, 7.0]),
                "PuppiMET_phi": np.array([-0.1, -0.2, -0.3]),
                "genWeight": np.array([1.5, -0.5, 2.0], dtype="f4")}
    branches.update(extra)
    return write_tree(path, {k: v for k, v in branches.items() if v is not None})


def test_jets_constituents_met_btag_and_weight(tmp_path: Path, caplog) -> None:
    path = write(tmp_path / "bkg_train_nano.root")
    with caplog.at_level(logging.INFO, logger="bead.io.root"):
        chunk = read_root(path, chunk_size=2)
    np.testing.assert_array_equal(chunk.evt_id, [0, 1, 2])
    np.testing.assert_array_equal(chunk.num_jets, [2, 0, 2])
    np.testing.assert_array_equal(chunk.jet_num_constits, [2, 1, 0, 2])
    # jet 0 of event 0 takes candidates 2 then 1 (table order), jet 1 candidate 0
    np.testing.assert_array_equal(chunk.con_pt, [30.0, 20.0, 10.0, 3.0, 1.0])
    np.testing.assert_array_equal(chunk.con_pid, [-211, 22, 211, 22, 13])
    np.testing.assert_allclose(chunk.con_eta, [0.3, 0.2, 0.1, 1.3, 1.1])
    np.testing.assert_allclose(chunk.con_phi, [1.0, 0.5, 0.0, -1.2, -1.0])
    np.testing.assert_array_equal(chunk.jet_btag, [1, 0, 1, 0])  # >= 0.5
    np.testing.assert_array_equal(chunk.met, [50.0, 60.0, 70.0])
    np.testing.assert_allclose(chunk.met_phi, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(chunk.evt_weight, [1.5, -0.5, 2.0])
    assert "tree 'Events', detected from the branches; NanoAOD: jets from FatJet" in caplog.text
    assert "FatJetPFCands_pFCandsIdx" in caplog.text


def test_branch_choices_puppi_met_working_point_no_weight(tmp_path: Path) -> None:
    path = write(tmp_path / "x.root", genWeight=None)
    chunk = read_root(path, RootSettings(met_branch="PuppiMET", btag_wp=0.3, format="nanoaod"))
    np.testing.assert_array_equal(chunk.met, [5.0, 6.0, 7.0])
    np.testing.assert_array_equal(chunk.jet_btag, [1, 0, 1, 1])
    np.testing.assert_array_equal(chunk.evt_weight, [1.0, 1.0, 1.0])  # data: no genWeight
    assert read_root(path, RootSettings(btag_branch="none")).jet_btag.sum() == 0


def test_ak4_jets_and_the_later_cand_index_name(tmp_path: Path) -> None:
    table = {"jetIdx": TABLE["jetIdx"], "candIdx": TABLE["pFCandsIdx"]}
    path = write(tmp_path / "x.root", table=table, table_name="JetPFCands",
                 Jet={"pt": FATJET["pt"], "eta": FATJET["eta"],
                      "btagDeepFlavB": FATJET["btagDDBvLV2"]})
    chunk = read_root(path, RootSettings(jet_branch="Jet"))
    np.testing.assert_array_equal(chunk.con_pt, [30.0, 20.0, 10.0, 3.0, 1.0])
    np.testing.assert_array_equal(chunk.jet_btag, [1, 0, 1, 0])


def test_selection_on_the_file_jet_pt_and_eta(tmp_path: Path) -> None:
    report = SelectionReport()
    chunk = read_root(write(tmp_path / "x.root"),
                     RootSettings(jet_pt_min=240.0, jet_eta_max=2.0, min_jets=1), report=report)
    np.testing.assert_array_equal(chunk.evt_id, [0, 2])  # event 1 has no jet
    np.testing.assert_array_equal(chunk.num_jets, [1, 1])
    np.testing.assert_array_equal(chunk.con_pt, [30.0, 20.0])
    assert (report.entries, report.events, report.events_failed) == (3, 2, 1)
    assert (report.jets, report.jets_failed) == (4, 2)


def test_out_of_range_index_names_file_and_entry(tmp_path: Path) -> None:
    bad = {"jetIdx": [[0, 1, 0], [], [1, 2]], "pFCandsIdx": [[2, 0, 1], [], [2, 0]]}
    path = write(tmp_path / "bkg_train_x.root", table=bad)
    with pytest.raises(DataError, match=rf"{path}: entry 2: FatJetPFCands_jetIdx / "
                                        r"FatJetPFCands_pFCandsIdx pair \(2, 0\) points outside "
                                        r"the event's 2 FatJet and 3 PFCands"):
        read_root(path)
    bad = {"jetIdx": [[0, 1, 0], [], [1, 1]], "pFCandsIdx": [[2, 0, 4], [], [2, 0]]}
    with pytest.raises(DataError, match=r"entry 0: .* pair \(0, 4\)"):
        read_root(write(tmp_path / "y.root", table=bad))


def test_missing_branch_lists_the_collection_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "x.root")
    with pytest.raises(DataError) as info:
        read_root(path, RootSettings(btag_branch="particleNet_XbbVsQCD"))
    assert str(info.value) == (
        f"{path}: tree 'Events' lacks branch FatJet_particleNet_XbbVsQCD "
        "(FatJet has btagDDBvLV2, eta, phi, pt)")
    with pytest.raises(DataError, match=r"lacks branches Jet_pt, Jet_eta, JetPFCands_jetIdx"):
        read_root(path, RootSettings(jet_branch="Jet"))


def test_unknown_layout_asks_for_root_format(tmp_path: Path) -> None:
    path = write_tree(tmp_path / "x.root", {"Muon": {"pt": [[1.0]]}})
    with pytest.raises(DataError, match=r"neither Delphes .* nor NanoAOD .*; set root_format"):
        read_root(path)


def test_many_chunks_match_one_read(tmp_path: Path) -> None:
    path = random_nanoaod(tmp_path / "x.root", 500, seed=3)
    whole = read_root(path, chunk_size=500)
    parts = read_root(path, chunk_size=37)
    for name in ("evt_id", "num_jets", "jet_num_constits", "con_pid", "con_pt", "met"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name), name)
    direct = uproot.open(path)["Events"].arrays(["nFatJet", "nFatJetPFCands"], library="np")
    np.testing.assert_array_equal(whole.num_jets, direct["nFatJet"])
    assert whole.n_constits == direct["nFatJetPFCands"].sum()
