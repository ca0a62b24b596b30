"""The numerical helpers behind the plots: weighted ROC, binning, subsampling, file names."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bead.config import Config
from bead.errors import DataError
from bead.evaluation.metrics import roc_summary, sic_points
from bead.evaluation.scores import Group
from bead.plotting.latent import subsample
from bead.plotting.roc import best_score, roc_curve
from bead.plotting.scores import common_bins
from bead.plotting.style import safe_name


def test_weighted_roc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400).astype(bool)
    score = np.round(rng.normal(size=400) + y, 1)  # rounding makes many ties
    weight = rng.uniform(0.1, 2.0, 400)
    curve = roc_curve(score, y, weight)
    assert curve.auc == pytest.approx(roc_auc_score(y, score, sample_weight=weight), abs=1e-12)
    assert curve.eps_b[0] == 0 and curve.eps_s[-1] == 1 and curve.eps_b[-1] == 1
    assert np.all(np.diff(curve.eps_b) >= 0)


def test_roc_of_a_perfect_score() -> None:
    curve = roc_curve(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool), np.ones(4))
    assert curve.auc == 1.0
    np.testing.assert_allclose(curve.eps_s, [0, 0.5, 1, 1, 1])


def test_plotted_roc_uses_the_metrics_weight_policy() -> None:
    # Negative weights (NLO samples) count as zero in the curve as in metrics.json, so the
    # drawn curve stays monotonic and its AUC is the recorded one.
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500).astype(bool)
    score = rng.normal(size=500) + y
    weight = rng.uniform(-0.5, 1.0, 500)
    curve = roc_curve(score, y, weight)
    assert np.all(np.diff(curve.eps_b) >= 0) and np.all(np.diff(curve.eps_s) >= 0)
    assert curve.auc == pytest.approx(roc_summary(y.astype(np.int8), score, weight)["auc"])


def test_sic_points_need_ten_effective_background_events() -> None:
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(200, bool), np.ones(200, bool)]
    score = rng.normal(size=400) + 2 * y
    curve = roc_curve(score, y, np.ones(400))
    eps_s, sic = sic_points(curve.eps_b, curve.eps_s, curve.bkg_weight)
    eps_b = (eps_s[sic > 0] / sic[sic > 0]) ** 2
    assert eps_b.min() == pytest.approx(10 / 200)
    recorded = roc_summary(y.astype(np.int8), score, np.ones(400))["max_sic"]
    assert sic.max() == pytest.approx(recorded)


def test_roc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both signal and background"):
        roc_curve(np.arange(3.0), np.zeros(3, bool), np.ones(3))


def test_common_bins_switch_to_log_when_scores_span_decades() -> None:
    edges, log_x = common_bins(np.geomspace(1e-3, 1e3, 1000))
    assert log_x and edges[0] > 0
    assert np.allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))
    edges, log_x = common_bins(np.linspace(-1.0, 1.0, 1000))
    assert not log_x and edges[0] == pytest.approx(-0.998, abs=1e-3)


def test_subsample_gives_each_group_an_equal_share() -> None:
    mask_big = np.zeros(1000, bool)
    mask_big[:900] = True
    groups = [Group("bkg", mask_big, False), Group("sig", ~mask_big, True)]
    chosen = subsample(groups, Config(subsample_size=100, seed=1))
    assert [len(c) for c in chosen] == [50, 50]
    assert set(chosen[1]) <= set(np.flatnonzero(~mask_big))
    full = subsample(groups, Config(subsample_plot=False))
    assert [len(c) for c in full] == [900, 100]


def test_best_score_picks_highest_all_signals_auc() -> None:
    metrics = {"scores": ["a", "b"], "per_signal": {"a": {"all_signals": {"auc": 0.7}},
                                                    "b": {"all_signals": {"auc": 0.9}}}}
    assert best_score(metrics, "m.json") == "b"
    with pytest.raises(DataError, match=r"m\.json"):
        best_score({"scores": ["a"], "per_signal": {}}, "m.json")


def test_safe_name() -> None:
    assert safe_name("kl/flow term") == "kl_flow_term"
    assert safe_name("...") == "unnamed"
