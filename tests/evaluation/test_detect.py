"""Scoring the test samples with a trained model: scores.h5, metrics.json and failures.

The tensor-folder builder lives beside the training tests (tests/training/tensor_folder.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tensor_folder import make_tensor_folder, shard_folder, small_config

from bead.errors import DataError
from bead.evaluation.detect import detect
from bead.evaluation.scores import read_scores
from bead.prepare.manifest import read_manifest
from bead.training.trainer import train

CONFIG = small_config(model_name="Planar_ConvVAE", loss_function="VAEFlowLoss")
COMPONENTS = {"reco", "log_q0", "neg_ldj", "nll_pk", "kl", "total"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tensors_dir, models_dir) of a flow VAE trained for a few epochs."""
    root = tmp_path_factory.mktemp("trained")
    tensors = make_tensor_folder(root / "tensors", signals=("sig_test_svj_a", "sig_test_svj_b"))
    train(CONFIG, tensors, root / "models", root / "results", progress=False)
    return tensors, root / "models"


def h5_contents(path):
    with h5py.File(path, "r") as h5:
        groups = ("scores", "observables")
        data = {name: h5[name][()] for name in h5 if name not in groups}
        for group in groups:
            data.update({f"{group}/{n}": h5[group][n][()] for n in h5[group]})
        return data, dict(h5.attrs)


def test_detect_writes_scores_and_metrics(tmp_path, trained):
    tensors, models = trained
    metrics = detect(CONFIG, tensors, models, tmp_path, progress=False)
    table = read_scores(tmp_path / "scores.h5")
    assert len(table) == 2 * 200 + 2 * 200
    assert table.sample_names == ["bkg_test_pythia", "bkg_test_herwig", "sig_test_svj_a",
                                  "sig_test_svj_b"]
    assert table.generator_names == ["herwig", "pythia", "svj"]
    assert table.signal_samples == ["sig_test_svj_a", "sig_test_svj_b"]
    assert set(table.scores) == COMPONENTS
    assert table.label.dtype == np.int8 and int(table.label.sum()) == 400
    assert table.sample_index.dtype == np.int16 and table.generator_index.dtype == np.int16
    assert table.latent.shape == (800, 4) and table.latent.dtype == np.float32
    np.testing.assert_array_equal(table.generator_index[:200], 1)  # pythia
    np.testing.assert_array_equal(table.generator_index[400:], 2)  # svj
    np.testing.assert_array_equal(table.weight[400:], 0.5)
    np.testing.assert_array_equal(table.evt_id[:200], np.arange(200))
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["signals"] == ["sig_test_svj_a", "sig_test_svj_b"]
    assert metrics["generators"] == ["herwig", "pythia"]
    # The toy signal is far from the background: the trained model must see it.
    assert metrics["per_signal"]["total"]["all_signals"]["auc"] > 0.8
    assert set(metrics["per_generator"]["reco"]) == {"herwig", "pythia"}
    # Both background generators are drawn from the same distribution.
    assert metrics["generator_separation"]["total"]["herwig_vs_pythia"] == pytest.approx(
        0.5, abs=0.1)


def test_detect_is_deterministic(tmp_path, trained):
    tensors, models = trained
    detect(CONFIG, tensors, models, tmp_path / "a", progress=False)
    detect(CONFIG, tensors, models, tmp_path / "b", progress=False)
    first, attrs_a = h5_contents(tmp_path / "a/scores.h5")
    second, attrs_b = h5_contents(tmp_path / "b/scores.h5")
    assert first.keys() == second.keys() and attrs_a == attrs_b
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert ((tmp_path / "a/metrics.json").read_text()
            == (tmp_path / "b/metrics.json").read_text())


def test_without_signal_only_separation_is_measured(tmp_path, trained, caplog):
    tensors, models = trained
    folder = tmp_path / "tensors"
    shutil.copytree(tensors, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["samples"] = [s for s in manifest["samples"] if s["flag"] != "sig_test"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        metrics = detect(CONFIG, folder, models, tmp_path / "results", progress=False)
    assert "no sig_test sample" in caplog.text
    assert metrics["signals"] == [] and metrics["per_signal"]["total"] == {}
    assert "herwig_vs_pythia" in metrics["generator_separation"]["total"]
    assert int(read_scores(tmp_path / "results/scores.h5").label.sum()) == 0


def test_missing_model_is_a_data_error(tmp_path, trained):
    tensors, models = trained
    with pytest.raises(DataError, match="no trained model"):
        detect(CONFIG, tensors, tmp_path / "models", tmp_path / "results", progress=False)
    (tmp_path / "models").mkdir()
    shutil.copy(models / "model.json", tmp_path / "models/model.json")
    with pytest.raises(DataError, match=r"best\.pt: checkpoint not found"):
        detect(CONFIG, tensors, tmp_path / "models", tmp_path / "results", progress=False)


def test_missing_background_test_is_a_data_error(tmp_path, trained):
    _, models = trained
    folder = make_tensor_folder(tmp_path / "t", n_train=10)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["samples"] = [s for s in manifest["samples"] if s["flag"] != "bkg_test"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="no bkg_test sample"):
        detect(CONFIG, folder, models, tmp_path / "results", progress=False)


def test_inputs_of_another_shape_are_a_data_error(tmp_path, trained):
    _, models = trained
    folder = make_tensor_folder(tmp_path / "t", n_train=10)
    config = small_config(model_name="Planar_ConvVAE", loss_function="VAEFlowLoss",
                          input_level="jet")
    spec = json.loads((models / "model.json").read_text())
    spec["levels"] = ["jet"]  # as if trained on jets of the constituents' shape
    spec["layout"] = {"jet": spec["layout"]["constituent"]}
    models_copy = tmp_path / "models"
    shutil.copytree(models, models_copy)
    (models_copy / "model.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"jet inputs of shape \[2, 4\] but the model was "
                                        r"trained on \[6, 3\]"):
        detect(config, folder, models_copy, tmp_path / "results", progress=False)


def test_inputs_of_another_preparation_are_a_data_error(tmp_path, trained):
    # Same shapes, other scalers (as after prepare_inputs with other normalizations): the
    # scores would silently change, so detect refuses and nothing is written.
    _, models = trained
    folder = make_tensor_folder(tmp_path / "t", n_train=10, seed=1)
    with pytest.raises(DataError, match="prepared with other scalers than the model was trained"):
        detect(CONFIG, folder, models, tmp_path / "results", progress=False)
    assert not (tmp_path / "results").exists()


def test_sharded_samples_score_as_whole_ones(tmp_path, trained):
    """detect reads a sample shard by shard and appends to scores.h5: the file holds the same
    data as for one tensor file per sample (to float rounding: the batches are cut at other
    events); a damaged shard is one error, the old file kept."""
    tensors, models = trained
    sharded = shard_folder(Path(shutil.copytree(tensors, tmp_path / "tensors")), 3)
    assert len(read_manifest(sharded).samples[-1].shards) == 3
    whole_metrics = detect(CONFIG, tensors, models, tmp_path / "a", progress=False)
    metrics = detect(CONFIG, sharded, models, tmp_path / "b", progress=False)
    (whole, attrs_a), (parts, attrs_b) = (h5_contents(tmp_path / f"{d}/scores.h5")
                                          for d in "ab")
    assert whole.keys() == parts.keys() and attrs_a.keys() == attrs_b.keys()
    for name in whole:  # batches cut elsewhere round a little differently
        np.testing.assert_allclose(parts[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert metrics.keys() == whole_metrics.keys()
    for score in ("total", "reco"):
        assert metrics["per_signal"][score]["all_signals"]["auc"] == pytest.approx(
            whole_metrics["per_signal"][score]["all_signals"]["auc"], abs=1e-4)
    before = (tmp_path / "b/scores.h5").read_bytes()
    shard = sharded / read_manifest(sharded).samples[-1].shards[1]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DataError, match=r"part1\.safetensors: not a readable tensor file .*"
                                        r"damaged or truncated"):
        detect(CONFIG, sharded, models, tmp_path / "b", progress=False)
    assert (tmp_path / "b/scores.h5").read_bytes() == before
    assert not list((tmp_path / "b").glob(".*"))
