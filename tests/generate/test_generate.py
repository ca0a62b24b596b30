"""Event generation with Pythia 8 + FastJet (SPEC §5): reproducibility, format, physics."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bead.errors import DataError, MissingExtraError, UsageError
from bead.generate.cards import pythia_commands
from bead.generate.executor import generate_samples
from bead.generate.pythia import generate_events
from bead.generate.settings import GENERATORS, GenerationSettings, SignalPoint

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

HEADER = "evtwt,met,metphi,njets,npart,isbtagged,pid,pt,eta,phi"
INVISIBLE = {12, 14, 16, 51, 52, 53}

TINY = GenerationSettings(bkg_train_events=20, bkg_test_events=0, sig_events=20,
                          generators=("pythia",), block_size=10, seed=7)


def _read_csv(path: Path) -> list[dict]:
    """Parse a BEAD CSV by hand (independent of the package's reader)."""
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    events = []
    for line in lines[1:]:
        cells = line.split(",")
        event = {"weight": float(cells[0]), "met": float(cells[1]), "met_phi": float(cells[2]),
                 "jets": []}
        pos = 4
        for _ in range(int(cells[3])):
            npart, btag = int(cells[pos]), int(cells[pos + 1])
            pos += 2
            constits = [(int(cells[i]), float(cells[i + 1]), float(cells[i + 2]),
                         float(cells[i + 3])) for i in range(pos, pos + 4 * npart, 4)]
            pos += 4 * npart
            event["jets"].append({"btag": btag, "constits": constits})
        assert pos == len(cells), "row length disagrees with its counts"
        events.append(event)
    return events


def _jet_pt_eta(constits: list[tuple]) -> tuple[float, float]:
    px = sum(pt * math.cos(phi) for _, pt, _, phi in constits)
    py = sum(pt * math.sin(phi) for _, pt, _, phi in constits)
    pz = sum(pt * math.sinh(eta) for _, pt, eta, _ in constits)
    pt = math.hypot(px, py)
    return pt, math.asinh(pz / pt)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """The same tiny settings run with one and with two worker processes."""
    serial = generate_samples(TINY, tmp_path_factory.mktemp("serial"), workers=1,
                              progress=False)
    parallel = generate_samples(TINY, tmp_path_factory.mktemp("parallel"), workers=2,
                                progress=False)
    return {"serial": serial, "parallel": parallel}


def test_samples_are_named_and_counted(tiny_runs: dict[str, list]) -> None:
    names = [s.path.name for s in tiny_runs["serial"]]
    # bkg_test_events = 0: that sample is skipped
    assert names == ["bkg_train_pythia.csv",
                     "sig_test_svj_mz1500_mdark20_rinv0p3_alpha0p2.csv"]
    for sample in tiny_runs["serial"]:
        assert sample.n_events == 20
        assert sample.events_per_second > 0
        assert len(_read_csv(sample.path)) == 20


def test_output_does_not_depend_on_worker_count(tiny_runs: dict[str, list]) -> None:
    for one, two in zip(tiny_runs["serial"], tiny_runs["parallel"], strict=True):
        assert one.path.read_bytes() == two.path.read_bytes()


def test_different_seed_gives_different_events(tiny_runs: dict[str, list],
                                               tmp_path: Path) -> None:
    other = replace(TINY, seed=8, sig_events=0)
    (sample,) = generate_samples(other, tmp_path, progress=False)
    assert sample.path.read_bytes() != tiny_runs["serial"][0].path.read_bytes()


def test_rows_are_well_formed_and_selected(tiny_runs: dict[str, list]) -> None:
    for sample in tiny_runs["serial"]:
        for event in _read_csv(sample.path):
            assert len(event["jets"]) >= TINY.min_jets
            assert event["met"] >= 0 and 0 <= event["met_phi"] < 2 * math.pi
            pts = [_jet_pt_eta(jet["constits"])[0] for jet in event["jets"]]
            assert pts == sorted(pts, reverse=True)
            for jet in event["jets"]:
                pt, eta = _jet_pt_eta(jet["constits"])
                assert pt > TINY.jet_pt_min * (1 - 1e-5)
                assert abs(eta) < TINY.jet_eta_max + 1e-5
                assert jet["btag"] in (0, 1)
                for pid, c_pt, c_eta, c_phi in jet["constits"]:
                    assert abs(pid) not in INVISIBLE and abs(pid) < 4_900_000
                    assert c_pt > 0 and abs(c_eta) < TINY.jet_eta_max
                    assert 0 <= c_phi < 2 * math.pi


def test_generate_events_gives_exactly_n_numbered_events() -> None:
    chunk = generate_events("qcd", "a14", 7, TINY, "direct/0")
    assert chunk.n_events == 7
    assert chunk.evt_id.tolist() == list(range(7))
    assert np.all(chunk.num_jets >= 2)


def test_svj_looks_unlike_qcd() -> None:
    """SVJ events carry real MET and busier jets than QCD of at least the same hardness.

    The Z' (1500 GeV) decays to two dark showers, so its jets have pt up to ~750 GeV minus the
    invisible share (r_inv = 0.3). QCD is generated with pTHatMin = 750, half the Z' mass, so
    its jets are at least as hard as the signal's: multiplicity and neutrino MET both grow with
    jet energy, so any excess seen in the signal comes from the dark shower (many dark mesons,
    30% of them invisible) and not from harder jets. 200 events each put the statistical error
    on the means far below the margins asserted.
    """
    settings = GenerationSettings(pthat_min=750.0, zprime_mass=1500.0, rinv=0.3)
    qcd = generate_events("qcd", "pythia", 200, settings, "physics/qcd")
    svj = generate_events("svj", "pythia", 200, settings, "physics/svj")
    assert svj.met.mean() > 4 * qcd.met.mean()
    assert svj.jet_num_constits.mean() > 1.1 * qcd.jet_num_constits.mean()
    qcd_per_event = np.bincount(qcd.jet_event_index(), weights=qcd.jet_num_constits)
    svj_per_event = np.bincount(svj.jet_event_index(), weights=svj.jet_num_constits)
    assert svj_per_event.mean() > qcd_per_event.mean()
    # QCD jets: mostly light, some g -> bb/cc; the dark mesons decay mostly to b quarks.
    assert 0.02 < qcd.jet_btag.mean() < 0.2
    assert svj.jet_btag.mean() > qcd.jet_btag.mean()


def test_rinv_sets_the_dark_meson_branching_ratios() -> None:
    settings = GenerationSettings(rinv=0.3)
    commands = pythia_commands("svj", "pythia", settings, seed=1)
    for meson in (4900111, 4900211, 4900113, 4900213):
        channels = [c.split("=", 1)[1].split() for c in commands
                    if c.startswith((f"{meson}:oneChannel", f"{meson}:addChannel"))]
        invisible = sum(float(c[1]) for c in channels if int(c[3]) in (51, 53))
        assert invisible == pytest.approx(0.3)
        assert sum(float(c[1]) for c in channels) == pytest.approx(1.0)
    assert "HiddenValley:setLambda = on" in commands
    assert settings.points()[0].tag == "mz1500_mdark20_rinv0p3_alpha0p2"


def test_unknown_generator_is_a_usage_error_listing_known_ones() -> None:
    with pytest.raises(UsageError, match="herwig") as info:
        GenerationSettings(generators=("pythia", "herwig"))
    for name in GENERATORS:
        assert name in str(info.value)
    with pytest.raises(UsageError, match="vincia"):
        generate_events("svj", "vincia", 1, TINY, "x")


def test_out_of_range_setting_names_its_config_key() -> None:
    with pytest.raises(UsageError, match="gen_rinv"):
        GenerationSettings(rinv=1.5)


def test_missing_extra_is_reported_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pythia8mc", None)  # makes `import pythia8mc` fail
    with pytest.raises(MissingExtraError, match=r"pip install 'bead-hep\[generate\]'"):
        generate_samples(TINY, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_democratic_decay_shares_pseudoscalar_decays_equally() -> None:
    point = SignalPoint(zprime_mass=3000.0, rinv=0.7, decay="democratic")
    commands = pythia_commands("svj", "pythia", GenerationSettings(), seed=1, point=point)
    for meson in (4900111, 4900113):
        shares = [float(c.split("=", 1)[1].split()[1]) for c in commands
                  if c.startswith((f"{meson}:oneChannel", f"{meson}:addChannel"))
                  and "91" in c.split("=", 1)[1].split()[2:3]]
        assert len(shares) == 5 and max(shares) == pytest.approx(min(shares))
        assert sum(shares) == pytest.approx(0.3)
    mass_insertion = pythia_commands("svj", "pythia", GenerationSettings(), seed=1,
                                     point=SignalPoint(zprime_mass=3000.0, rinv=0.7))
    assert any("4900111:oneChannel" in c for c in mass_insertion)
    assert mass_insertion != commands
    assert point.tag == "mz3000_mdark20_rinv0p7_alpha0p2_democratic"


def test_a_signal_grid_writes_one_file_per_point(tmp_path: Path) -> None:
    grid = replace(TINY, bkg_train_events=0, sig_events=10, signal_points=(
        SignalPoint(zprime_mass=2000.0, rinv=0.3),
        SignalPoint(zprime_mass=1500.0, rinv=0.5, decay="democratic")))
    names = [s.path.name for s in generate_samples(grid, tmp_path, progress=False)]
    assert names == ["sig_test_svj_mz2000_mdark20_rinv0p3_alpha0p2.csv",
                     "sig_test_svj_mz1500_mdark20_rinv0p5_alpha0p2_democratic.csv"]
    assert all(len(_read_csv(tmp_path / n)) == 10 for n in names)


def test_a_signal_grid_rejects_impossible_points() -> None:
    with pytest.raises(UsageError, match=r"gen_signal_points\[1\]\.rinv"):
        GenerationSettings(signal_points=(SignalPoint(), SignalPoint(rinv=1.5)))
    with pytest.raises(UsageError, match=r"gen_signal_points\[0\]\.zprime_mass"):
        GenerationSettings(signal_points=(SignalPoint(zprime_mass=30.0),))
    with pytest.raises(UsageError, match=r"gen_signal_points\[0\]\.decay"):
        GenerationSettings(signal_points=(SignalPoint(decay="isotropic"),))
    with pytest.raises(UsageError, match="listed twice"):
        GenerationSettings(signal_points=(SignalPoint(), SignalPoint()))


SMALL = replace(TINY, bkg_train_events=10, sig_events=10, block_size=10)


def test_generate_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "bkg_train_pythia.csv"
    mine.write_text("evtwt,met,metphi,njets\n1,2,3,0\n")
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv.*-o overwrite"):
        generate_samples(SMALL, tmp_path, progress=False)
    assert mine.read_text() == "evtwt,met,metphi,njets\n1,2,3,0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bkg_train_pythia.csv"]
    written = generate_samples(SMALL, tmp_path, progress=False, overwrite=True)
    assert written[0].path.name == "bkg_train_pythia.csv"
    assert len(_read_csv(mine)) == 10


def test_generate_recognises_its_own_output(tmp_path: Path) -> None:
    first = generate_samples(SMALL, tmp_path, progress=False)
    before = {s.path.name: (s.path.read_bytes(), s.path.stat().st_mtime_ns) for s in first}
    assert generate_samples(SMALL, tmp_path, progress=False) == []  # nothing to do
    assert {n: (p.read_bytes(), p.stat().st_mtime_ns) for n, p in
            ((n, tmp_path / n) for n in before)} == before
    # Another signal point: the background is kept, the new signal is generated.
    moved = replace(SMALL, zprime_mass=2000.0)
    (again,) = generate_samples(moved, tmp_path, progress=False)
    assert again.path.name == "sig_test_svj_mz2000_mdark20_rinv0p3_alpha0p2.csv"
    # A file generate wrote but the user changed since is not its own any more.
    (tmp_path / "bkg_train_pythia.csv").write_bytes(b"changed")
    with pytest.raises(DataError, match=r"bkg_train_pythia\.csv"):
        generate_samples(replace(SMALL, seed=99), tmp_path, progress=False)


def test_an_interrupted_run_is_completed_by_the_next(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import bead.generate.executor as executor

    real = executor._run_block

    def interrupted(block):  # the signal's block is interrupted, after bkg_train is written
        if block.kind == "svj":
            raise KeyboardInterrupt
        return real(block)

    monkeypatch.setattr(executor, "_run_block", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_samples(SMALL, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bkg_train_pythia.csv",
                                                         "generated.json"]
    done = (tmp_path / "bkg_train_pythia.csv").stat().st_mtime_ns
    monkeypatch.setattr(executor, "_run_block", real)
    (rest,) = generate_samples(SMALL, tmp_path, progress=False)
    assert rest.path.name.startswith("sig_test_svj")
    assert (tmp_path / "bkg_train_pythia.csv").stat().st_mtime_ns == done


def test_every_setting_is_part_of_some_sample_key() -> None:
    """A setting that shapes the files but not the record's keys would make generate keep
    stale files; every field of GenerationSettings must move at least one sample's key."""
    import dataclasses

    from bead.generate.executor import sample_plan
    from bead.generate.record import settings_key

    base = GenerationSettings(generators=("pythia",))

    def keys(settings: GenerationSettings) -> dict[str, str]:
        return {s.name: settings_key(s.key_settings(settings)) for s in sample_plan(settings)}

    changed = {"generators": ("a14",), "signal_points": (SignalPoint(zprime_mass=2500.0),),
               "rinv": 0.5}
    for field in dataclasses.fields(GenerationSettings):
        value = changed.get(field.name)
        if value is None:
            old = getattr(base, field.name)
            value = old + 1 if isinstance(old, int) else old * 1.1
        other = replace(base, **{field.name: value})
        assert keys(other) != keys(base), f"{field.name} does not change any sample key"
