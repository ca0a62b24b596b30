"""Delphes trees: the real 10-event fixture, checked event by event against uproot directly."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from root_files import DELPHES, copy_delphes, read_root, uproot

from bead.errors import DataError
from bead.io import delphes
from bead.io.root import SelectionReport
from bead.io.root_base import RootSettings, TreeInfo


@pytest.fixture
def fixture_file(shared_fixture) -> Path:
    return shared_fixture(DELPHES)


@functools.cache
def naive_events(path: Path) -> tuple[dict, ...]:
    """Each event read straight with uproot and resolved in plain Python, by unique id."""
    tree = uproot.open(path)["Delphes"]
    flows = (("EFlowTrack", "PT", None), ("EFlowPhoton", "ET", 22),
             ("EFlowNeutralHadron", "ET", 130))
    names = ["Jet.PT", "Jet.Eta", "Jet.BTag", "Jet.Constituents", "Event.Weight",
             "EFlowTrack.PID"]
    names += [f"{c}.{f}" for c, pt, _ in flows for f in ("fUniqueID", pt, "Eta", "Phi")]
    events = []
    for a in tree.arrays(names).to_list():
        objects = {}
        for coll, pt_name, pid in flows:
            for k, uid in enumerate(a[f"{coll}.fUniqueID"]):
                objects[uid] = (a["EFlowTrack.PID"][k] if pid is None else pid,
                                a[f"{coll}.{pt_name}"][k], a[f"{coll}.Eta"][k],
                                a[f"{coll}.Phi"][k])
        jets = [[objects[r] for r in c["refs"]] for c in a["Jet.Constituents"]]
        mx = -sum(pt * np.cos(phi) for _, pt, _, phi in objects.values())
        my = -sum(pt * np.sin(phi) for _, pt, _, phi in objects.values())
        events.append({"jets": jets, "btag": [b & 1 for b in a["Jet.BTag"]],
                       "met": np.hypot(mx, my), "met_phi": np.arctan2(my, mx),
                       "weight": a["Event.Weight"][0], "jet_pt": a["Jet.PT"],
                       "jet_eta": a["Jet.Eta"]})
    return tuple(events)


def test_every_event_jet_and_constituent_matches_uproot(fixture_file: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="bead.io.root"):
        chunk = read_root(fixture_file)
    want = naive_events(fixture_file)
    assert chunk.n_events == len(want) == 10
    np.testing.assert_array_equal(chunk.evt_id, np.arange(10))
    direct = uproot.open(fixture_file)["Delphes"].arrays(["Jet.PT", "Jet.Constituents"])
    np.testing.assert_array_equal(chunk.num_jets, ak.num(direct["Jet.PT"]).to_numpy())
    np.testing.assert_array_equal(chunk.jet_num_constits,
                                  ak.flatten(direct["Jet.Constituents"].fSize).to_numpy())
    assert chunk.num_jets.min() >= 4 and chunk.num_jets.max() <= 9
    jet, con = 0, 0
    for e, event in enumerate(want):
        for j, constituents in enumerate(event["jets"]):
            n = chunk.jet_num_constits[jet]
            got = list(zip(chunk.con_pid[con:con + n], chunk.con_pt[con:con + n],
                           chunk.con_eta[con:con + n], chunk.con_phi[con:con + n], strict=True))
            assert len(got) == len(constituents), (e, j)
            np.testing.assert_allclose(np.array(got, dtype=float),
                                       np.array(constituents, dtype=float), rtol=1e-6)
            assert chunk.jet_btag[jet] == event["btag"][j]
            jet, con = jet + 1, con + n
        # No MissingET branch: minus the vector sum of every EFlow object.
        assert chunk.met[e] == pytest.approx(event["met"], rel=1e-6)
        assert chunk.met_phi[e] == pytest.approx(event["met_phi"], abs=1e-6)
        assert chunk.evt_weight[e] == event["weight"]
    assert (jet, con) == (chunk.n_jets, chunk.n_constits)
    assert set(np.unique(chunk.con_pid)) >= {22, 130, 211, -211}
    assert "detected from the branches" in caplog.text
    assert "no MissingET branch: MET = minus the vector sum of the EFlow objects" in caplog.text


def test_chunking_does_not_change_the_result(fixture_file: Path) -> None:
    whole = read_root(fixture_file, chunk_size=100)
    for size in (1, 4):
        parts = read_root(fixture_file, chunk_size=size)
        for name in ("evt_id", "num_jets", "jet_num_constits", "con_pid", "con_pt", "met"):
            np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name), name)


def test_jet_cuts_and_minimum_jets_are_applied_and_counted(fixture_file: Path) -> None:
    settings = RootSettings(jet_pt_min=30.0, jet_eta_max=1.5, min_jets=3)
    report = SelectionReport()
    chunk = read_root(fixture_file, settings, report=report)
    want = naive_events(fixture_file)
    passing = [[pt >= 30.0 and abs(eta) <= 1.5 for pt, eta in zip(e["jet_pt"], e["jet_eta"],
                                                                    strict=True)] for e in want]
    kept = [i for i, p in enumerate(passing) if sum(p) >= 3]
    assert 0 < len(kept) < 10  # the cuts do something on this file
    np.testing.assert_array_equal(chunk.evt_id, kept)
    np.testing.assert_array_equal(chunk.num_jets, [sum(passing[i]) for i in kept])
    want_constits = [len(c) for i in kept
                     for c, p in zip(want[i]["jets"], passing[i], strict=True) if p]
    np.testing.assert_array_equal(chunk.jet_num_constits, want_constits)
    assert report.entries == 10 and report.events == len(kept)
    assert report.events_failed == 10 - len(kept)
    assert report.jets_failed == sum(len(p) - sum(p) for p in passing)


def test_btag_bit_is_configurable(fixture_file: Path) -> None:
    raw = ak.flatten(uproot.open(fixture_file)["Delphes"]["Jet.BTag"].array()).to_numpy()
    for bit in (0, 1):
        chunk = read_root(fixture_file, RootSettings(btag_bit=bit))
        np.testing.assert_array_equal(chunk.jet_btag, (raw >> bit) & 1)
    assert read_root(fixture_file, RootSettings(btag_branch="none")).jet_btag.sum() == 0


def reader_and_arrays(path: Path, extra: frozenset[str] = frozenset()) -> tuple:
    tree = uproot.open(path)["Delphes"]
    names = frozenset(k.rsplit("/", 1)[-1] for k in tree.keys(recursive=True)) | extra
    reader = delphes.Reader(TreeInfo(path, "Delphes", names, "."), RootSettings())
    return reader, tree.arrays([b for b in reader.branches if b.split(".")[0] != "MissingET"])


def test_missing_et_branch_is_used_where_present(fixture_file: Path) -> None:
    reader, arrays = reader_and_arrays(fixture_file, frozenset({"MissingET.MET",
                                                                "MissingET.Phi"}))
    assert reader.met == "MissingET" and "MET from MissingET" in reader.summary
    met = np.linspace(10, 100, len(arrays))
    arrays = ak.with_field(arrays, ak.Array([[m] for m in met]), "MissingET.MET")
    arrays = ak.with_field(arrays, ak.Array([[0.5]] * len(arrays)), "MissingET.Phi")
    chunk = reader.read(arrays, entry_start=100).events
    np.testing.assert_allclose(chunk.met, met)
    np.testing.assert_allclose(chunk.met_phi, 0.5)
    np.testing.assert_array_equal(chunk.evt_id, 100 + np.arange(len(arrays)))


def test_reference_to_a_missing_constituent_names_file_and_entry(fixture_file: Path) -> None:
    reader, arrays = reader_and_arrays(fixture_file)
    events = arrays.to_list()
    events[7]["Jet.Constituents"][2]["refs"][0] = 999_999  # no EFlow object has this id
    with pytest.raises(DataError, match=rf"{DELPHES}: entry 12: Jet 2 references constituent "
                                        r"id 999999, which is in none of EFlowTrack"):
        reader.read(ak.Array(events), entry_start=5)


def test_duplicate_unique_ids_are_an_error(fixture_file: Path) -> None:
    reader, arrays = reader_and_arrays(fixture_file)
    events = arrays.to_list()
    events[3]["EFlowPhoton.fUniqueID"][0] = events[3]["EFlowTrack.fUniqueID"][0]
    with pytest.raises(DataError, match="entry 3: two EFlow objects share the unique id"):
        reader.read(ak.Array(events), entry_start=0)


def test_missing_branches_are_named_with_what_the_tree_has(fixture_file: Path) -> None:
    with pytest.raises(DataError) as info:
        read_root(fixture_file, RootSettings(jet_branch="FatJet"))
    message = str(info.value)
    assert message.startswith(f"{fixture_file}: tree 'Delphes' lacks branches FatJet.PT, "
                              "FatJet.Eta, FatJet.Constituents")
    assert "collections: " in message and "EFlowTrack" in message and "GenJet" in message
    with pytest.raises(DataError, match=r"lacks branch Jet\.Tag \(Jet has .*BTag"):
        read_root(fixture_file, RootSettings(btag_branch="Tag"))
    with pytest.raises(DataError, match=r"lacks branches MET\.MET, MET\.Phi"):
        read_root(fixture_file, RootSettings(met_branch="MET"))


def test_wrong_tree_or_format_is_named(fixture_file: Path) -> None:
    with pytest.raises(DataError, match=r"no tree 'Events' \(trees: Delphes\); set root_tree"):
        read_root(fixture_file, RootSettings(format="nanoaod"))
    with pytest.raises(DataError, match="no tree 'Other'"):
        read_root(fixture_file, RootSettings(tree="Other"))


def test_truncated_corrupt_and_foreign_files_are_data_errors(fixture_file: Path,
                                                             tmp_path: Path) -> None:
    data = fixture_file.read_bytes()
    truncated = tmp_path / "bkg_train_cut.root"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{truncated}: "):
        read_root(truncated)

    branch = uproot.open(fixture_file)["Delphes"]["Jet.PT"]
    seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    damaged = bytearray(data)
    for i in range(seek + size // 2, seek + size - 4):
        damaged[i] ^= 0x5A
    corrupt = tmp_path / "bkg_train_bad.root"
    corrupt.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=rf"{corrupt}: cannot read entries 0-2 \(truncated or "
                                        r"corrupt file\?\)"):
        read_root(corrupt)

    text = tmp_path / "bkg_train_text.root"
    text.write_text("not a ROOT file\n")
    with pytest.raises(DataError, match=rf"{text}: not a readable ROOT file"):
        read_root(text)


def test_the_fixture_converts_to_a_store(shared_fixture, tmp_path: Path) -> None:
    from bead.io.root_convert import convert_root_dir
    from bead.io.store import read_store

    source = copy_delphes(shared_fixture, tmp_path / "root" / "bkg_test_delphes.root")
    (result,) = convert_root_dir(source.parent, tmp_path / "h5", RootSettings(), progress=False)
    assert result.output == tmp_path / "h5" / "bkg_test_delphes.h5"
    stored = read_store(result.output)
    direct = read_root(source)
    for name in ("evt_id", "num_jets", "jet_num_constits", "jet_btag", "con_pid", "con_pt"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(direct, name), name)
