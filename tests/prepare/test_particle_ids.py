"""Particle classes from the PDG table of scikit-hep's ``particle`` package (SPEC §6), checked on
every id that appears in generated samples and in the fixtures."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from particle import Particle

from bead.io.csv_read import iter_csv_chunks
from bead.io.events import EventChunk
from bead.io.store import read_store
from bead.prepare.features import PID_CLASSES, particle_class

NAMED = {22: "is_photon", 11: "is_electron", 13: "is_muon"}


def pdg_class(pid: int) -> str:
    """The class a PDG id should get, from the ``particle`` table's charge."""
    if abs(pid) in NAMED:
        return NAMED[abs(pid)]
    return "is_charged_hadron" if Particle.from_pdgid(pid).charge != 0 else "is_neutral_hadron"


def assert_pdg_classes(pids: np.ndarray) -> None:
    unique = np.unique(pids)
    got = [PID_CLASSES[k] for k in particle_class(unique)]
    assert got == [pdg_class(int(p)) for p in unique]
    # one call over many repeats gives each id its class
    repeated = np.tile(unique, 3)
    np.testing.assert_array_equal(particle_class(repeated), np.tile(particle_class(unique), 3))


def test_hand_checked_ids() -> None:
    cases = {211: "is_charged_hadron", -211: "is_charged_hadron", 321: "is_charged_hadron",
             130: "is_neutral_hadron", 310: "is_neutral_hadron", 2112: "is_neutral_hadron",
             -2112: "is_neutral_hadron", 2212: "is_charged_hadron", -2212: "is_charged_hadron",
             3122: "is_neutral_hadron", 3222: "is_charged_hadron", 3112: "is_charged_hadron",
             22: "is_photon", 11: "is_electron", -11: "is_electron", 13: "is_muon",
             -13: "is_muon", 12: "is_neutral_hadron", 15: "is_charged_hadron"}
    pids = np.array(list(cases))
    assert [PID_CLASSES[k] for k in particle_class(pids)] == list(cases.values())
    assert particle_class(pids.reshape(1, -1)).shape == (1, len(pids))


def test_ids_outside_the_table(caplog) -> None:
    # 1000021 (gluino) is a valid PDG number the table lacks: neutral by the numbering scheme;
    # 0 and 99999999 are no particle: no class (all flags 0), and a warning names them.
    with caplog.at_level(logging.WARNING, logger="bead.prepare.features"):
        classes = particle_class(np.array([1000021, 0, 99999999, 0]))
    assert list(classes) == [PID_CLASSES.index("is_neutral_hadron"), -1, -1, -1]
    assert "PDG ids that are no particle (all particle-class flags 0): 0, 99999999" in caplog.text


def test_every_id_of_generated_samples() -> None:
    pytest.importorskip("pythia8mc", reason="event generation needs the 'generate' extra")
    pytest.importorskip("fastjet", reason="event generation needs the 'generate' extra")
    from bead.generate.pythia import generate_events
    from bead.generate.settings import GenerationSettings

    settings = GenerationSettings(seed=11)
    pids = np.concatenate([generate_events(kind, "pythia", 8, settings, f"ids/{kind}").con_pid
                           for kind in ("qcd", "svj")])
    assert len(np.unique(pids)) >= 10
    assert_pdg_classes(pids)


def test_every_id_of_the_fixtures(shared_fixture) -> None:
    csv = EventChunk.concatenate(list(iter_csv_chunks(
        shared_fixture("bead_sample_bkg_train_pythia.csv"))))
    stores = [read_store(shared_fixture(f"bead_original_h5/{name}.h5"))
              for name in ("bkg_train_herwig", "bkg_train_sherpa", "sig_test_svj")]
    assert_pdg_classes(np.concatenate([csv.con_pid] + [s.con_pid for s in stores]))


def test_every_id_of_the_delphes_fixture(shared_fixture) -> None:
    pytest.importorskip("uproot", reason="ROOT input needs the 'root' extra (uproot)")
    from bead.io.root import iter_root_chunks
    from bead.io.root_base import RootSettings

    chunks = iter_root_chunks(shared_fixture("delphes_10events.root"), RootSettings())
    pids = np.concatenate([c.con_pid for c in chunks])
    assert {22, 130} <= set(pids.tolist())  # photons and neutral hadrons get their codes
    assert_pdg_classes(pids)
