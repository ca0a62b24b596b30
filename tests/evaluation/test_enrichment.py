"""The enrichment test: known answers for shifted and identical held-out backgrounds, weights,
and the holdout_generator key through train and detect."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tensor_folder import make_tensor_folder, small_config

from bead.config import make_config
from bead.errors import UsageError
from bead.evaluation.detect import detect
from bead.evaluation.enrichment import enrichment_metrics
from bead.evaluation.scores import ScoreTable
from bead.prepare.manifest import read_manifest
from bead.training.data import load_training_split
from bead.training.trainer import train


def background_table(seen: np.ndarray, held: np.ndarray, w_seen=None, w_held=None) -> ScoreTable:
    """Background only: generator "a" is seen in training, "b" held out."""
    n_a, n_b = len(seen), len(held)
    n = n_a + n_b
    weight = np.r_[np.ones(n_a) if w_seen is None else w_seen,
                   np.ones(n_b) if w_held is None else w_held]
    return ScoreTable(
        label=np.zeros(n, np.int8), weight=weight.astype(np.float32), evt_id=np.arange(n),
        sample_index=np.r_[np.zeros(n_a), np.ones(n_b)].astype(np.int16),
        generator_index=np.r_[np.zeros(n_a), np.ones(n_b)].astype(np.int16),
        latent=np.zeros((n, 1), np.float32), scores={"s": np.r_[seen, held]},
        sample_names=["bkg_test_a", "bkg_test_b"], generator_names=["a", "b"],
        signal_samples=[])


def measure(table: ScoreTable) -> dict:
    out = enrichment_metrics(table, table.scores, holdout=["b"], seen=["a"])
    assert out["holdout_generators"] == ["b"] and out["seen_generators"] == ["a"]
    return out["per_score"]["s"]["b"]


def test_a_shifted_unseen_background_passes_the_cut_more_often():
    # Seen N(0, 1), held out N(1, 1): at the seen 1 % cut z = 2.326 the held-out generator
    # passes 1 - Phi(z - 1) = 9.3 %; the AUC of held-out vs seen is Phi(1 / sqrt 2) = 0.760.
    rng = np.random.default_rng(0)
    entry = measure(background_table(rng.normal(size=200_000), rng.normal(1.0, 1.0, 50_000)))
    for key, eff in (("1e-02", 1e-2), ("1e-03", 1e-3)):
        expected = 1 - norm.cdf(norm.ppf(1 - eff) - 1.0)
        cut = entry["eff_b"][key]
        assert cut["eff_b_holdout"] == pytest.approx(expected, rel=0.06)
        assert cut["ratio"] == pytest.approx(expected / eff, rel=0.06)
        assert cut["threshold"] == pytest.approx(norm.ppf(1 - eff), abs=0.03)
    assert entry["auc_vs_seen"] == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.005)


def test_an_identical_unseen_background_keeps_the_nominal_efficiency():
    rng = np.random.default_rng(1)
    entry = measure(background_table(rng.normal(size=100_000), rng.normal(size=100_000)))
    cut = entry["eff_b"]["1e-02"]
    # Within three binomial standard deviations of the nominal 1 %.
    assert abs(cut["eff_b_holdout"] - 1e-2) < 3 * cut["eff_b_holdout_err"]
    assert cut["ratio"] == pytest.approx(1.0, abs=0.1) and cut["low_stats"] is False
    assert entry["auc_vs_seen"] == pytest.approx(0.5, abs=0.01)


def test_a_perfectly_separated_unseen_background_passes_every_cut():
    seen, held = np.arange(10_000.0), 1e5 + np.arange(500.0)
    entry = measure(background_table(seen, held))
    assert entry["auc_vs_seen"] == 1.0
    assert entry["eff_b"]["1e-02"]["eff_b_holdout"] == 1.0
    assert entry["eff_b"]["1e-02"]["ratio"] == pytest.approx(100.0)
    # All 500 pass: the uncertainty is that of one event in 500, not zero.
    assert entry["eff_b"]["1e-02"]["eff_b_holdout_err"] == pytest.approx(
        np.sqrt(499 / 500 / 500**2))


def test_weights_count_and_unresolvable_cuts_are_null():
    rng = np.random.default_rng(2)
    seen, held = rng.normal(size=500), rng.normal(0.5, 1.0, 400)
    w_seen, w_held = rng.integers(1, 4, 500).astype(float), rng.integers(1, 4, 400).astype(float)
    weighted = measure(background_table(seen, held, w_seen, w_held))
    repeated = measure(background_table(np.repeat(seen, w_seen.astype(int)),
                                        np.repeat(held, w_held.astype(int))))
    assert weighted["auc_vs_seen"] == pytest.approx(repeated["auc_vs_seen"], abs=1e-9)
    assert weighted["eff_b"]["1e-02"]["eff_b_holdout"] == pytest.approx(
        repeated["eff_b"]["1e-02"]["eff_b_holdout"], abs=1e-9)
    # 500 seen events (N_eff < 1000 with these weights) cannot place a cut at 1e-3.
    assert weighted["eff_b"]["1e-03"] is None


def test_holdout_generator_is_checked_against_the_prepared_generators(tmp_path):
    tensors = make_tensor_folder(tmp_path / "t", n_train=40, n_test=20, n_signal=20)
    manifest = read_manifest(tensors)
    with pytest.raises(UsageError, match=r"'sherpa' is not among the prepared bkg_train "
                                         r"generators \(herwig, pythia\)"):
        load_training_split(manifest, ("event",), torch.device("cpu"), holdout=("sherpa",))
    with pytest.raises(UsageError, match="holds out every bkg_train generator"):
        load_training_split(manifest, ("event",), torch.device("cpu"),
                            holdout=("herwig", "pythia"))
    train_all, _ = load_training_split(manifest, ("event",), torch.device("cpu"))
    train_some, _ = load_training_split(manifest, ("event",), torch.device("cpu"),
                                        holdout=("herwig",))
    herwig = manifest.generators.index("herwig")
    assert (train_all.generator == herwig).any() and not (train_some.generator == herwig).any()
    assert len(train_some) < len(train_all)
    with pytest.raises(UsageError, match="holdout_generator"):
        make_config({"holdout_generator": "a b"})
    assert make_config({"holdout_generator": "a14+vincia"}).holdout_generator == "a14+vincia"


def test_train_and_detect_run_the_enrichment_test(tmp_path):
    tensors = make_tensor_folder(tmp_path / "t", n_train=300, n_test=400, n_signal=100)
    config = small_config(holdout_generator="herwig", epochs=2)
    train(config, tensors, tmp_path / "models", tmp_path / "results", progress=False)
    assert json.loads((tmp_path / "models/model.json").read_text())[
        "holdout_generator"] == "herwig"
    metrics = detect(config, tensors, tmp_path / "models", tmp_path / "results", progress=False)
    section = metrics["enrichment"]
    assert section["holdout_generators"] == ["herwig"] and section["seen_generators"] == ["pythia"]
    assert set(section["per_score"]) == {*metrics["scores"], *metrics["observables"]}
    entry = section["per_score"]["total"]["herwig"]
    # The toy generators are drawn from one distribution: the held-out one looks like the seen.
    assert entry["auc_vs_seen"] == pytest.approx(0.5, abs=0.1)
    assert entry["eff_b"]["1e-02"]["ratio"] < 5 and entry["eff_b"]["1e-03"] is None
    assert json.loads((tmp_path / "results/metrics.json").read_text())["enrichment"] == section
    # Without a holdout the section is null.
    plain = small_config(epochs=1)
    train(plain, tensors, tmp_path / "m2", tmp_path / "r2", progress=False)
    assert detect(plain, tensors, tmp_path / "m2", tmp_path / "r2",
                  progress=False)["enrichment"] is None
