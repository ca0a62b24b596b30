"""Separation metrics on hand-made scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from bead.evaluation.metrics import compute_metrics, roc_summary, separation_auc, tpr_at
from bead.evaluation.scores import ScoreTable


def two_class(bkg, sig, w_bkg=None, w_sig=None):
    bkg, sig = np.asarray(bkg, float), np.asarray(sig, float)
    label = np.r_[np.zeros(len(bkg), np.int8), np.ones(len(sig), np.int8)]
    weight = np.r_[np.ones(len(bkg)) if w_bkg is None else w_bkg,
                   np.ones(len(sig)) if w_sig is None else w_sig]
    return label, np.r_[bkg, sig], weight


def test_perfect_separation():
    summary = roc_summary(*two_class(np.arange(1000), np.arange(1000) + 1000))
    assert summary["auc"] == 1.0
    assert summary["eff_s"] == {"1e-01": 1.0, "1e-02": 1.0, "1e-03": 1.0, "1e-04": None}


def test_identical_distributions_give_half():
    rng = np.random.default_rng(1)
    summary = roc_summary(*two_class(rng.normal(size=5000), rng.normal(size=5000)))
    assert summary["auc"] == pytest.approx(0.5, abs=0.02)
    assert summary["eff_s"]["1e-01"] == pytest.approx(0.1, abs=0.02)


def test_known_efficiencies_and_sic():
    # Background 0..99, signal 50..149: above 89.5 lie 10 % of the background and 60 % of
    # the signal; above 98.5, 1 % and 51 %.
    summary = roc_summary(*two_class(np.arange(100), np.arange(100) + 50))
    assert summary["eff_s"]["1e-01"] == pytest.approx(0.60)
    assert summary["eff_s"]["1e-02"] == pytest.approx(0.51)
    # 1e-3 and 1e-4 are below one background event in 100: not measurable.
    assert summary["eff_s"]["1e-03"] is None and summary["eff_s"]["1e-04"] is None
    # The SIC needs 10 background events to pass: it is largest at eps_b = 0.1, 0.6 / sqrt(0.1).
    assert summary["max_sic"] == pytest.approx(0.6 / np.sqrt(0.1))
    # 1225 of the 10000 pairs are misordered and 50 tied (tied pairs count half).
    assert summary["auc"] == pytest.approx(1 - (1225 + 50 / 2) / 10000)


def test_efficiency_is_interpolated_between_roc_points():
    fpr, tpr = np.array([0.0, 0.1, 0.3, 1.0]), np.array([0.0, 0.4, 0.8, 1.0])
    assert tpr_at(fpr, tpr, 0.2) == pytest.approx(0.6)
    # On a vertical stretch the best threshold wins.
    assert tpr_at(np.array([0.0, 0.1, 0.1, 1.0]), np.array([0.0, 0.3, 0.5, 1.0]), 0.1) == 0.5


def test_weights_change_the_auc():
    # Signal at 1 lies above the background event at 0 and below the one at 2.
    assert roc_summary(*two_class([0, 2], [1]))["auc"] == pytest.approx(0.5)
    assert roc_summary(*two_class([0, 2], [1], w_bkg=[3.0, 1.0]))["auc"] == pytest.approx(0.75)
    # Negative weights count as zero.
    assert roc_summary(*two_class([0, 2], [1], w_bkg=[1.0, -1.0]))["auc"] == pytest.approx(1.0)


def test_weights_set_the_statistical_floor():
    # One heavy background event among 100 light ones: N_eff is about 1, so no background
    # efficiency of 1e-1 or below can be resolved, although there are 100 events.
    weights = np.r_[np.full(99, 1e-3), 10.0]
    summary = roc_summary(*two_class(np.arange(100), np.arange(100) + 50, w_bkg=weights))
    assert all(v is None for v in summary["eff_s"].values())


def test_undefined_summaries_are_null():
    assert roc_summary(*two_class([0, 1], []))["auc"] is None
    assert roc_summary(*two_class([0, np.nan], [1]))["max_sic"] is None
    assert separation_auc(np.array([1.0]), np.array([0.0]), np.array([0.0]),
                          np.array([1.0])) is None


def test_compute_metrics_per_signal_generator_and_separation():
    rng = np.random.default_rng(0)
    n = 2000
    # Generator a and b backgrounds; score "s" shifted for b, "flat" identical for both.
    s = np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n), rng.normal(5, 1, n), rng.normal(0, 1, n)]
    flat = np.r_[rng.normal(size=3 * n), rng.normal(size=n)]
    table = ScoreTable(
        label=np.r_[np.zeros(2 * n), np.ones(2 * n)].astype(np.int8),
        weight=np.ones(4 * n, np.float32), evt_id=np.arange(4 * n),
        sample_index=np.repeat([0, 1, 2, 3], n).astype(np.int16),
        generator_index=np.repeat([0, 1, 2, 2], n).astype(np.int16),
        latent=np.zeros((4 * n, 2), np.float32), scores={"s": s, "flat": flat},
        sample_names=["bkg_test_a", "bkg_test_b", "sig_test_x_far", "sig_test_x_near"],
        generator_names=["a", "b", "x"], signal_samples=["sig_test_x_far", "sig_test_x_near"])
    metrics = compute_metrics(table)
    assert metrics["generators"] == ["a", "b"] and metrics["scores"] == ["s", "flat"]
    far = metrics["per_signal"]["s"]["sig_test_x_far"]["auc"]
    near = metrics["per_signal"]["s"]["sig_test_x_near"]["auc"]
    both = metrics["per_signal"]["s"]["all_signals"]["auc"]
    assert far > 0.99 and near < 0.5 and near < both < far
    # Against generator a alone the near signal is indistinguishable; against b it is below.
    per_gen = metrics["per_generator"]["s"]
    assert per_gen["a"]["sig_test_x_near"]["auc"] == pytest.approx(0.5, abs=0.03)
    assert per_gen["b"]["sig_test_x_near"]["auc"] < 0.3
    # P(s_a > s_b) for unit-variance Gaussians one sigma apart: Phi(-1/sqrt 2) = 0.2398.
    assert metrics["generator_separation"]["s"]["a_vs_b"] == pytest.approx(0.2398, abs=0.02)
    assert metrics["generator_separation"]["flat"]["a_vs_b"] == pytest.approx(0.5, abs=0.03)
    assert set(metrics["per_signal"]["flat"]["all_signals"]["eff_s"]) == {
        "1e-01", "1e-02", "1e-03", "1e-04"}


def _table(n_bkg: int, n_sig: int, observables: dict | None = None) -> ScoreTable:
    rng = np.random.default_rng(3)
    n = n_bkg + n_sig
    return ScoreTable(
        label=np.r_[np.zeros(n_bkg), np.ones(n_sig)].astype(np.int8),
        weight=np.ones(n, np.float32), evt_id=np.arange(n),
        sample_index=np.r_[np.zeros(n_bkg), np.ones(n_sig)].astype(np.int16),
        generator_index=np.r_[np.zeros(n_bkg), np.ones(n_sig)].astype(np.int16),
        latent=np.zeros((n, 1), np.float32),
        scores={"total": np.r_[rng.normal(0, 1, n_bkg), rng.normal(1, 1, n_sig)]},
        sample_names=["bkg_test_a", "sig_test_x"], generator_names=["a", "x"],
        signal_samples=["sig_test_x"], observables=observables or {})


def test_observables_are_scored_as_cuts_in_their_best_direction():
    n_bkg, n_sig = 1000, 500
    high = np.r_[np.zeros(n_bkg), np.ones(n_sig)]  # signal above: a perfect upper cut
    low = -high  # signal below: a perfect lower cut, flipped
    metrics = compute_metrics(_table(n_bkg, n_sig, {"met": high, "mass": low}),
                              primary_score="total")
    assert metrics["primary_score"] == "total" and metrics["scores"] == ["total"]
    assert metrics["observables"] == ["obs_met", "obs_mass"]
    assert metrics["observable_directions"] == {"obs_met": "higher", "obs_mass": "lower"}
    for name in metrics["observables"]:
        assert metrics["per_signal"][name]["sig_test_x"]["auc"] == 1.0


def test_small_samples_are_flagged_low_stats():
    metrics = compute_metrics(_table(1000, 20))
    entry = metrics["per_signal"]["total"]["sig_test_x"]
    assert entry["low_stats"] is True and entry["n_signal_eff"] == pytest.approx(20)
    assert any("signal sample sig_test_x has only 20 effective events" in w
               for w in metrics["warnings"])
    big = compute_metrics(_table(1000, 500))
    assert big["per_signal"]["total"]["sig_test_x"]["low_stats"] is False
    assert big["warnings"] == []
