"""prepare_inputs end to end on a tiny store written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from bead.config import Config
from bead.errors import DataError
from bead.io.events import EventChunk
from bead.io.store import StoreWriter
from bead.prepare import stage
from bead.prepare.features import feature_names
from bead.prepare.manifest import preparation_key
from bead.prepare.observables import OBSERVABLES
from bead.prepare.scalers import load_scalers
from bead.prepare.stage import prepare_inputs, split_validation

PIDS = np.array([211, -211, 130, 22, 11, 13, 2212, 2112])


def random_chunk(n: int, seed: int, first_id: int = 0, pt_scale: float = 20.0) -> EventChunk:
    """Random events whose ids are written into their contents, to check alignment:
    every constituent has eta = marker(evt_id), met = 100 + evt_id, weight = evt_id / 1000."""
    rng = np.random.default_rng(seed)
    evt_id = np.arange(first_id, first_id + n, dtype=np.int64)
    num_jets = rng.integers(0, 5, n)
    num_jets[:2] = [0, 1]
    n_jets = int(num_jets.sum())
    jet_num_constits = rng.integers(1, 9, n_jets)
    n_con = int(jet_num_constits.sum())
    event_of_con = np.repeat(np.repeat(np.arange(n), num_jets), jet_num_constits)
    return EventChunk(
        evt_id=evt_id, evt_weight=evt_id / 1000.0, met=100.0 + evt_id,
        met_phi=rng.uniform(-np.pi, np.pi, n), num_jets=num_jets,
        jet_num_constits=jet_num_constits, jet_btag=rng.integers(0, 2, n_jets),
        con_pid=rng.choice(PIDS, n_con), con_pt=rng.exponential(pt_scale, n_con) + 0.5,
        con_eta=marker(evt_id)[event_of_con], con_phi=rng.uniform(-np.pi, np.pi, n_con),
    )


def marker(evt_id: np.ndarray) -> np.ndarray:
    return (evt_id % 97) / 40.0 - 1.2


def write_store(folder: Path, stem: str, chunk: EventChunk, fmt: str = "h5") -> None:
    with StoreWriter(folder / f"{stem}.{fmt}", fmt, source=f"{stem}.csv") as writer:
        writer.append(chunk)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    folder = tmp_path / "h5"
    write_store(folder, "bkg_train_pythia", random_chunk(300, 1, 0))
    write_store(folder, "bkg_train_herwig", random_chunk(200, 2, 1000))
    write_store(folder, "bkg_test_pythia", random_chunk(100, 3, 2000))
    write_store(folder, "sig_test_svj_m1500", random_chunk(100, 4, 3000, pt_scale=60.0))
    return folder


CONFIG = Config(num_jets=3, num_constits=5, train_size=0.75, seed=7)


def test_writes_consistent_tensors_and_manifest(store, tmp_path):
    out = tmp_path / "tensors"
    result = prepare_inputs(CONFIG, store, out, progress=False)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == 2
    assert manifest["settings"] == {"file_type": "h5", "num_jets": 3, "num_constits": 5,
                                    "normalizations": "pj_custom", "input_features": "all",
                                    "train_size": 0.75, "seed": 7}
    assert manifest["key"] == preparation_key(CONFIG)
    assert manifest["observables"] == list(OBSERVABLES)
    assert manifest["generators"] == ["herwig", "pythia"] == result.generators
    assert [s["stem"] for s in manifest["samples"]] == [
        "bkg_train_herwig", "bkg_train_pythia", "bkg_test_pythia", "sig_test_svj_m1500"]
    sig = manifest["samples"][-1]
    assert sig == {"stem": "sig_test_svj_m1500", "flag": "sig_test", "generator": "svj",
                   "tag": "m1500", "file": "sig_test_svj_m1500.safetensors", "n_events": 100,
                   "source": "sig_test_svj_m1500.h5", "files": ["sig_test_svj_m1500.safetensors"]}
    feats = manifest["features"]
    assert feats == result.features
    # pj_custom turns every angle into a sin/cos pair
    assert feats["constituent"][:4] == ["pt", "eta", "phi_sin", "phi_cos"]
    assert len(feats["constituent"]) == len(feature_names("all", "constituent")) + 1
    assert len(feats["event"]) == len(feature_names("all", "event")) + 2

    for entry in manifest["samples"]:
        t = load_file(out / entry["file"])
        n = entry["n_events"]
        assert t["constituents"].shape == (n, 15, len(feats["constituent"]))
        assert t["constituents"].dtype == np.float32
        assert t["constituent_mask"].shape == (n, 15) and t["constituent_mask"].dtype == bool
        assert t["jets"].shape == (n, 3, len(feats["jet"]))
        assert t["jet_mask"].shape == (n, 3)
        assert t["events"].shape == (n, len(feats["event"]))
        assert t["weight"].dtype == np.float32 and t["evt_id"].dtype == np.int64
        assert t["observables"].shape == (n, len(OBSERVABLES))
        assert ("is_val" in t) == (entry["flag"] == "bkg_train")
        assert (t["constituents"][~t["constituent_mask"]] == 0).all()
        assert (t["jets"][~t["jet_mask"]] == 0).all()
        # a jet slot is real exactly when its constituent slots are (every jet has one)
        per_jet = t["constituent_mask"].reshape(n, 3, 5).any(-1)
        np.testing.assert_array_equal(per_jet, t["jet_mask"])
        assert not t["jet_mask"][0].any() and t["jet_mask"][1].tolist() == [True, False, False]
        assert np.isfinite(t["constituents"]).all() and np.isfinite(t["events"]).all()
    assert (out / "scalers.json").is_file()
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_events_jets_constituents_stay_aligned(store, tmp_path):
    out = tmp_path / "tensors"
    prepare_inputs(CONFIG, store, out, progress=False)
    scalers = load_scalers(out / "scalers.json")
    t = load_file(out / "bkg_train_pythia.safetensors")
    evt_id = t["evt_id"]
    np.testing.assert_array_equal(evt_id, np.arange(300))
    np.testing.assert_allclose(t["weight"], evt_id / 1000.0, rtol=1e-6)
    mask = t["constituent_mask"]
    cons = scalers["constituent"].inverse_transform(t["constituents"], mask)
    eta = scalers["constituent"].input_names.index("eta")
    expected = np.broadcast_to(marker(evt_id)[:, None], mask.shape)
    np.testing.assert_allclose(cons[..., eta][mask], expected[mask], atol=1e-5)
    events = scalers["event"].inverse_transform(t["events"])
    met = scalers["event"].input_names.index("met")
    np.testing.assert_allclose(events[:, met], 100.0 + evt_id, rtol=1e-5)
    # the split selects whole events: validation rows carry their own ids and contents
    val = t["is_val"]
    np.testing.assert_allclose(events[val, met], 100.0 + evt_id[val], rtol=1e-5)


def test_scalers_fitted_on_training_split_only(store, tmp_path):
    out = tmp_path / "tensors"
    config = CONFIG.model_copy(update={"normalizations": "standard"})
    prepare_inputs(config, store, out, progress=False)
    train_rows, val_rows = [], []
    for stem in ("bkg_train_pythia", "bkg_train_herwig"):
        t = load_file(out / f"{stem}.safetensors")
        train_rows.append(t["events"][~t["is_val"]])
        val_rows.append(t["events"][t["is_val"]])
    names = json.loads((out / "manifest.json").read_text())["features"]["event"]
    continuous = [i for i, n in enumerate(names) if n not in ("j1_btag",)]
    train = np.concatenate(train_rows)[:, continuous]
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-5)
    assert np.abs(np.concatenate(val_rows)[:, continuous].mean(0)).max() > 1e-3

    # the harder signal keeps its higher pt after scaling (scalers are not refitted on it)
    pt = names.index("j1_pt")
    sig = load_file(out / "sig_test_svj_m1500.safetensors")["events"][:, pt]
    bkg = load_file(out / "bkg_test_pythia.safetensors")["events"][:, pt]
    assert sig.mean() - bkg.mean() > 1.0


def test_chunked_preparation_writes_shards_equal_to_one_file(store, tmp_path, monkeypatch):
    """A sample larger than CHUNK_EVENTS is read, prepared and written chunk by chunk: its
    shards, joined, are the tensors of a preparation in one piece, with the same scalers."""
    prepare_inputs(CONFIG, store, tmp_path / "whole", progress=False)
    monkeypatch.setattr(stage, "CHUNK_EVENTS", 64)
    result = prepare_inputs(CONFIG, store, tmp_path / "shards", progress=False)
    manifest = json.loads((tmp_path / "shards/manifest.json").read_text())
    pythia = manifest["samples"][1]
    assert pythia["files"] == ["bkg_train_pythia.safetensors"] + [
        f"bkg_train_pythia.part{i}.safetensors" for i in range(1, 5)]  # 300 events
    assert (tmp_path / "whole/scalers.json").read_bytes() == \
        (tmp_path / "shards/scalers.json").read_bytes()
    for entry in manifest["samples"]:
        whole = load_file(tmp_path / "whole" / f"{entry['stem']}.safetensors")
        parts = [load_file(tmp_path / "shards" / f) for f in entry["files"]]
        assert [len(p["weight"]) for p in parts[:-1]] == [64] * (len(parts) - 1)
        for key, values in whole.items():
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), values,
                                          err_msg=f"{entry['stem']} {key}")
    summary = {s.name.stem: s for s in result.samples}["bkg_train_pythia"]
    assert summary.n_events == 300 and summary.files == tuple(pythia["files"])
    assert summary.n_val == 75


def test_scalers_are_fitted_on_a_seeded_subsample_of_training_events(store, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(stage, "FIT_EVENTS", 120)
    texts = []
    for name in ("a", "b"):
        prepare_inputs(CONFIG, store, tmp_path / name, progress=False)
        texts.append((tmp_path / name / "scalers.json").read_text())
    monkeypatch.setattr(stage, "FIT_EVENTS", 10_000)
    prepare_inputs(CONFIG, store, tmp_path / "all", progress=False)
    assert texts[0] == texts[1] != (tmp_path / "all/scalers.json").read_text()
    # the subsample: `limit` training events of all bkg_train files together, never validation
    plans = [stage._Plan(Path(f"{g}.h5"), None, n,
                         split_validation(n, 0.75, 7, f"bkg_train_{g}"))
             for g, n in (("pythia", 300), ("herwig", 200))]
    stage.choose_fit_events(plans, seed=7, limit=120)
    assert sum(int(p.fit.sum()) for p in plans) == 120
    assert all(not (p.fit & p.is_val).any() and p.fit.any() for p in plans)
    again = [stage._Plan(p.path, None, p.n_events, p.is_val) for p in plans]
    stage.choose_fit_events(again, seed=8, limit=120)
    assert any((p.fit != q.fit).any() for p, q in zip(plans, again, strict=True))


def test_a_shard_name_taken_by_another_sample_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "h5"
    write_store(folder, "bkg_train_pythia", random_chunk(100, 1, 0))
    write_store(folder, "bkg_train_pythia.part1", random_chunk(100, 2, 1000))
    monkeypatch.setattr(stage, "CHUNK_EVENTS", 64)
    with pytest.raises(DataError, match=r"bkg_train_pythia\.part1\.h5: its tensor file "
                                        r"bkg_train_pythia\.part1\.safetensors would replace one "
                                        r"of sample 'bkg_train_pythia'; rename one of the two"):
        prepare_inputs(CONFIG, folder, tmp_path / "t", progress=False)
    assert list((tmp_path / "t").iterdir()) == []  # nothing half-written


def test_split_is_seeded():
    a = split_validation(1000, 0.8, seed=1, stem="bkg_train_pythia")
    b = split_validation(1000, 0.8, seed=1, stem="bkg_train_pythia")
    c = split_validation(1000, 0.8, seed=2, stem="bkg_train_pythia")
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert a.sum() == 200 and c.sum() == 200
    assert split_validation(2, 0.99, seed=0, stem="x").sum() == 1


def test_prepare_split_is_reproducible(store, tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        config = CONFIG.model_copy(update={"seed": seed})
        prepare_inputs(config, store, tmp_path / name, progress=False)
        runs[name] = load_file(tmp_path / name / "bkg_train_herwig.safetensors")
    np.testing.assert_array_equal(runs["a"]["is_val"], runs["b"]["is_val"])
    np.testing.assert_array_equal(runs["a"]["constituents"], runs["b"]["constituents"])
    assert (runs["a"]["is_val"] != runs["c"]["is_val"]).any()


def test_parquet_store_and_summary(tmp_path):
    folder = tmp_path / "parquet"
    chunk = random_chunk(50, 5)
    write_store(folder, "bkg_train_pythia", chunk, fmt="parquet")
    config = Config(file_type="parquet", num_jets=2, num_constits=3, input_features="4momentum",
                    normalizations="log+minmax+sincos")
    result = prepare_inputs(config, folder, tmp_path / "tensors", progress=False)
    (summary,) = result.samples
    kept_jets = int(np.minimum(chunk.num_jets, 2).sum())
    assert summary.n_jets_dropped == chunk.n_jets - kept_jets
    assert summary.n_events_padded == int((chunk.num_jets < 2).sum())
    t = load_file(tmp_path / "tensors" / "bkg_train_pythia.safetensors")
    assert int(t["jet_mask"].sum()) == kept_jets
    kept_cons = int(t["constituent_mask"].sum())
    assert kept_cons + summary.n_constits_truncated + summary.n_constits_in_dropped_jets \
        == chunk.n_constits
    assert result.features["jet"] == ["pt", "eta", "phi_sin", "phi_cos", "mass"]


def test_store_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_inputs(CONFIG, tmp_path / "missing", tmp_path / "t", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no \.h5 store files"):
        prepare_inputs(CONFIG, tmp_path / "empty", tmp_path / "t", progress=False)
    only_test = tmp_path / "only_test"
    write_store(only_test, "bkg_test_pythia", random_chunk(10, 1))
    with pytest.raises(DataError, match="no bkg_train"):
        prepare_inputs(CONFIG, only_test, tmp_path / "t", progress=False)
    bad = tmp_path / "bad"
    write_store(bad, "pythia_events", random_chunk(10, 1))
    with pytest.raises(DataError, match=r"pythia_events\.h5: store file name"):
        prepare_inputs(CONFIG, bad, tmp_path / "t", progress=False)
    assert not (tmp_path / "t").exists()


def test_unphysical_input_names_event_and_feature_and_keeps_previous_tensors(store, tmp_path):
    tensors = tmp_path / "tensors"
    prepare_inputs(CONFIG, store, tensors, progress=False)
    before = {p.name: p.read_bytes() for p in tensors.iterdir()}
    # |eta| = 800 overflows the energy (cosh). The first constituent belongs to the second
    # event (the first has no jet). The signal sample is processed after the backgrounds.
    chunk = random_chunk(100, 4, 3000)
    chunk.con_eta[0] = 800.0
    write_store(store, "sig_test_svj_m1500", chunk)
    with pytest.raises(DataError, match=r"sig_test_svj_m1500\.h5: event 3001: \w+ feature "
                                        r"'\w+' is not finite \(1 event"):
        prepare_inputs(CONFIG, store, tensors, progress=False)
    assert {p.name: p.read_bytes() for p in tensors.iterdir()} == before


def test_events_without_jets_are_kept_and_reported(store, tmp_path, caplog):
    jets_only = CONFIG.model_copy(update={"input_level": "jet"})
    result = prepare_inputs(jets_only, store, tmp_path / "tensors", progress=False)
    assert sum(s.n_events for s in result.samples) == 700
    assert "bkg_train_pythia: " in caplog.text and "events have no jet" in caplog.text
    caplog.clear()  # with the event level they still carry their MET: nothing to warn about
    prepare_inputs(CONFIG.model_copy(update={"input_level": "event+jet"}), store,
                   tmp_path / "with_events", progress=False)
    assert "events have no jet" not in caplog.text


# Config keys prepare_inputs reads that do not change what it writes (they only shape logs or
# how the work is done); each is checked empirically below.
NOT_SHAPING = {"input_level": "event"}


class _Recording:
    """A config stand-in that records every key read from it."""

    def __init__(self, config: Config) -> None:
        self._config, self.read = config, set()

    def __getattr__(self, name: str) -> object:
        self.read.add(name)
        return getattr(self._config, name)


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_every_setting_prepare_reads_is_part_of_the_preparation_key(store, tmp_path):
    """A key that changes the tensors but not the folder name would let two projects with
    different settings share one folder; so every key prepare reads is in PREPARATION_KEYS,
    unless it is listed (and shown) not to change the output."""
    from bead.prepare.manifest import PREPARATION_KEYS

    recording = _Recording(CONFIG)
    prepare_inputs(recording, store, tmp_path / "a", progress=False)  # type: ignore[arg-type]
    unexplained = recording.read - set(PREPARATION_KEYS) - set(NOT_SHAPING)
    assert not unexplained, f"prepare reads {unexplained}: add them to PREPARATION_KEYS"
    for key, other in NOT_SHAPING.items():
        changed = CONFIG.model_copy(update={key: other})
        assert getattr(changed, key) != getattr(CONFIG, key)
        prepare_inputs(changed, store, tmp_path / key, progress=False)
        assert _outputs(tmp_path / key) == _outputs(tmp_path / "a"), key


def test_each_preparation_key_setting_names_its_own_folder():
    base = preparation_key(CONFIG)
    for key, other in {"file_type": "parquet", "num_jets": 4, "num_constits": 6,
                       "normalizations": "standard", "input_features": "4momentum",
                       "train_size": 0.5, "seed": 8}.items():
        assert preparation_key(CONFIG.model_copy(update={key: other})) != base, key
    assert preparation_key(CONFIG.model_copy(update={"epochs": 3})) == base


def test_raw_observables_are_the_physics_values(store, tmp_path):
    prepare_inputs(CONFIG, store, tmp_path / "t", progress=False)
    t = load_file(tmp_path / "t" / "bkg_train_pythia.safetensors")
    obs = dict(zip(OBSERVABLES, t["observables"].T, strict=True))
    np.testing.assert_allclose(obs["met"], 100.0 + t["evt_id"], rtol=1e-6)  # see random_chunk
    assert (obs["n_btag"] >= 0).all() and (obs["j1_num_constits"] >= 0).all()
    no_jet = obs["j1_num_constits"] == 0
    np.testing.assert_allclose(obs["met_over_j1pt"][no_jet], obs["met"][no_jet], rtol=1e-6)
    assert (obs["mt"] >= 0).all() and np.isfinite(t["observables"]).all()
