"""The whole chain on a tiny generated sample: every mode's files exist and are well formed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from bead.cli import main
from bead.config import Config, save_config
from bead.losses.catalog import loss_entry
from bead.prepare.manifest import prepared_dir

pytest.importorskip("pythia8mc", reason="event generation needs the 'generate' extra")

TINY = {
    "gen_bkg_train_events": 60,
    "gen_bkg_test_events": 40,
    "gen_sig_events": 40,
    "gen_generators": ["pythia", "a14"],
    "parallel_workers": 1,
    "epochs": 3,
    "batch_size": 32,
}


@pytest.fixture(scope="module")
def chained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("workspaces")
    base = ["-p", "ws", "p1", "--workspaces", str(root), "--no-progress"]
    assert main(["-m", "new_project", *base]) == 0
    config_file = root / "ws" / "p1" / "config" / "p1_config.toml"
    save_config(Config(**TINY), config_file)
    code = main(["-m", "chain", *base, "-o",
                 "generate_convertcsv_prepareinputs_train_detect_plot"])
    assert code == 0
    return root / "ws"


def test_chain_writes_every_stage(chained: Path) -> None:
    csvs = sorted(p.name for p in (chained / "data" / "csv").glob("*.csv"))
    assert (chained / "data" / "csv" / "generated.json").is_file()
    assert "bkg_train_pythia.csv" in csvs and "bkg_test_a14.csv" in csvs
    assert any(name.startswith("sig_test_svj") for name in csvs)
    stores = sorted((chained / "data" / "h5").glob("*.h5"))
    assert len(stores) == len(csvs)
    with h5py.File(stores[0]) as f:
        assert {"events", "jets", "constituents"} <= set(f)
        assert f["events"].dtype["evt_id"].kind == "i"

    (tensors,) = (chained / "data" / "h5" / "tensors" / "processed").iterdir()
    assert tensors.name.startswith("prep_")
    manifest = json.loads((tensors / "manifest.json").read_text())
    assert manifest["generators"] == ["a14", "pythia"]
    assert (tensors / "scalers.json").is_file()
    assert {s["flag"] for s in manifest["samples"]} == {"bkg_train", "bkg_test", "sig_test"}

    out = chained / "p1" / "output"
    model_info = json.loads((out / "models" / "model.json").read_text())
    assert model_info["model_name"] == Config().model_name
    state = torch.load(out / "models" / "best.pt", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())

    history = json.loads((out / "results" / "history.json").read_text())
    assert len(history["epoch"]) == TINY["epochs"]
    assert set(history["train"]) == set(history["val"]) and "total" in history["train"]

    metrics = json.loads((out / "results" / "metrics.json").read_text())
    primary = loss_entry(Config().loss_function).primary_score
    assert primary in metrics["scores"] and metrics["primary_score"] == primary
    assert "obs_met" in metrics["observables"] and "obs_met" in metrics["per_signal"]
    for score in metrics["scores"]:
        auc = metrics["per_signal"][score][metrics["signals"][0]]["auc"]
        assert 0.0 <= auc <= 1.0
    assert set(metrics["per_generator"][primary]) == {"a14", "pythia"}

    with h5py.File(out / "results" / "scores.h5") as f:
        n = len(f["label"])
        assert n == 2 * TINY["gen_bkg_test_events"] + TINY["gen_sig_events"]
        assert set(np.unique(f["label"][:])) == {0, 1}
        assert f["latent"].shape[0] == n
        for name in metrics["scores"]:
            assert np.isfinite(f["scores"][name][:]).all()

    plots = out / "plots"
    pngs = list(plots.rglob("*.png"))
    assert pngs and len(list(plots.rglob("*.pdf"))) >= len(pngs) - 1
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert (plots / "report.html").is_file()


def test_detect_is_deterministic(chained: Path) -> None:
    results = chained / "p1" / "output" / "results"
    with h5py.File(results / "scores.h5") as f:
        first = {k: f["scores"][k][:] for k in f["scores"]}
    base = ["-p", "ws", "p1", "--workspaces", str(chained.parent), "--no-progress"]
    assert main(["-m", "detect", *base]) == 0
    with h5py.File(results / "scores.h5") as f:
        for key, values in first.items():
            np.testing.assert_array_equal(f["scores"][key][:], values)


def test_parquet_store_feeds_the_same_pipeline(chained: Path) -> None:
    base = ["-p", "ws", "p1", "--workspaces", str(chained.parent), "--no-progress"]
    assert main(["-m", "convert_csv", *base, "-o", "parquet"]) == 0
    assert len(list((chained / "data" / "parquet").glob("*.parquet"))) == len(
        list((chained / "data" / "csv").glob("*.csv")))
    assert main(["-m", "prepare_inputs", *base, "-o", "parquet"]) == 0


def test_train_resume_continues_the_epoch_count(chained: Path) -> None:
    config_file = chained / "p1" / "config" / "p1_config.toml"
    save_config(Config(**{**TINY, "epochs": TINY["epochs"] + 2, "early_stopping": False}),
                config_file)
    base = ["-p", "ws", "p1", "--workspaces", str(chained.parent), "--no-progress"]
    assert main(["-m", "train", *base, "-o", "resume"]) == 0
    history = json.loads((chained / "p1" / "output" / "results" / "history.json").read_text())
    assert history["epoch"] == list(range(1, TINY["epochs"] + 3))


def test_stores_without_their_csv_are_set_aside(chained: Path, tmp_path: Path,
                                                 capsys) -> None:
    shutil.copytree(chained, tmp_path / "ws")
    (signal_csv,) = (tmp_path / "ws" / "data" / "csv").glob("sig_test_*.csv")
    signal_csv.rename(signal_csv.with_name("sig_test_svj_renamed.csv"))
    (tmp_path / "ws" / "data" / "csv" / "bkg_train_a14.csv").unlink()
    capsys.readouterr()
    base = ["-p", "ws", "p1", "--workspaces", str(tmp_path), "--no-progress"]
    assert main(["-m", "chain", *base, "-o", "convertcsv_prepareinputs"]) == 0
    out = " ".join("".join(capsys.readouterr()).split())
    assert "set aside 2 store file(s)" in out and f"{signal_csv.stem}.h5" in out
    prepared = prepared_dir(tmp_path / "ws" / "data" / "h5" / "tensors" / "processed",
                            Config(**TINY))
    samples = json.loads((prepared / "manifest.json").read_text())["samples"]
    stems = {s["stem"] for s in samples}
    assert "sig_test_svj_renamed" in stems and signal_csv.stem not in stems  # scored once
    assert "bkg_train_a14" not in stems  # a deleted bkg_train file is not trained on


def test_projects_with_other_preparations_coexist(chained: Path, tmp_path: Path) -> None:
    """Each project keeps its own prepared tensors: another project's prepare_inputs does not
    change this one's inputs, and rerunning a project's chain reproduces its results."""
    shutil.copytree(chained, tmp_path / "ws")
    root = str(tmp_path)
    results = tmp_path / "ws" / "p1" / "output" / "results"
    mine = ["-p", "ws", "p1", "--workspaces", root, "--no-progress"]
    assert main(["-m", "detect", *mine]) == 0
    before = json.loads((results / "metrics.json").read_text())
    other = ["-p", "ws", "p2", "--workspaces", root, "--no-progress"]
    assert main(["-m", "new_project", *other]) == 0
    save_config(Config(**{**TINY, "num_jets": 3, "seed": 5}),
                tmp_path / "ws" / "p2" / "config" / "p2_config.toml")
    assert main(["-m", "chain", *other, "-o", "prepareinputs_train_detect"]) == 0
    processed = tmp_path / "ws" / "data" / "h5" / "tensors" / "processed"
    assert prepared_dir(processed, Config(**TINY)) != prepared_dir(
        processed, Config(**{**TINY, "num_jets": 3, "seed": 5}))
    assert main(["-m", "detect", *mine]) == 0
    after = json.loads((results / "metrics.json").read_text())
    assert after["per_signal"] == before["per_signal"]
    runs = []
    for _ in range(2):
        assert main(["-m", "chain", *mine, "-o", "prepareinputs_train_detect"]) == 0
        runs.append(json.loads((results / "metrics.json").read_text())["per_signal"])
    assert runs[0] == runs[1]
