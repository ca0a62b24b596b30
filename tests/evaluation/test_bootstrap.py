"""Bootstrap uncertainties against known answers: the resampled ROC equals sklearn's on the
same resample, a perfect score has no spread, a random score's AUC spread is Hanley–McNeil's,
and weights count."""

from __future__ import annotations

import numpy as np
import pytest

from bead.evaluation.bootstrap import (
    auc_rows,
    bootstrap_errors,
    resample_counts,
    roc_rows,
    tpr_at_rows,
)
from bead.evaluation.metrics import BKG_EFFICIENCIES, compute_metrics, roc_summary
from bead.evaluation.scores import ScoreTable


def two_class(n_bkg: int, n_sig: int, shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    label = np.r_[np.zeros(n_bkg), np.ones(n_sig)].astype(np.int8)
    score = np.r_[rng.normal(size=n_bkg), rng.normal(shift, 1.0, n_sig)]
    return label, score


def test_each_resample_is_the_roc_of_the_resampled_events():
    label, score = two_class(3000, 800, 1.0)
    score = score.round(1)  # many ties, as integer-valued observables have
    weight = np.random.default_rng(1).uniform(0.2, 3.0, len(label))
    counts = resample_counts(label, 4, np.random.default_rng(2))
    assert (counts[:, label == 0].sum(1) == 3000).all()  # stratified: each class keeps its size
    assert (counts[:, label == 1].sum(1) == 800).all()
    fpr, tpr = roc_rows(label, score, counts * weight)
    for row in range(4):
        ref = roc_summary(label, score, weight * counts[row])
        assert auc_rows(fpr, tpr)[row] == pytest.approx(ref["auc"], abs=1e-12)
        for i, eff in enumerate((1e-1, 1e-2)):
            assert tpr_at_rows(fpr, tpr, (1e-1, 1e-2))[row, i] == pytest.approx(
                ref["eff_s"][f"{eff:.0e}"], abs=1e-12)


def test_a_perfect_score_has_no_spread():
    label, _ = two_class(2000, 500, 0.0)
    score = label + np.random.default_rng(3).uniform(0, 0.5, len(label))
    err = bootstrap_errors(label, {"s": score}, np.ones(len(label)), BKG_EFFICIENCIES, 50, 0)
    assert err["s"]["auc_err"] == 0.0
    assert all(v == 0.0 for v in err["s"]["eff_s_err"].values())


def test_a_random_score_has_the_hanley_mcneil_auc_spread():
    # For an AUC of 0.5: var = (1/n1 + 1/n2 + 1/(n1 n2)) / 12 (Hanley & McNeil 1982).
    n1 = n2 = 1000
    label, score = two_class(n1, n2, 0.0, seed=4)
    err = bootstrap_errors(label, {"s": score}, np.ones(n1 + n2), BKG_EFFICIENCIES, 400, 1)
    expected = np.sqrt((1 / n1 + 1 / n2 + 1 / (n1 * n2)) / 12)
    assert err["s"]["auc_err"] == pytest.approx(expected, rel=0.15)
    # At eps_b = 0.1 (where eps_s is 0.1 too and the ROC's slope is 1): the signal's binomial
    # spread plus the background's, which moves the cut: var = 0.09 / n2 + 1² * 0.09 / n1.
    assert err["s"]["eff_s_err"]["1e-01"] == pytest.approx(np.sqrt(0.09 / n2 + 0.09 / n1),
                                                           rel=0.15)


def test_weights_set_the_spread():
    n1 = n2 = 1000
    label, score = two_class(n1, n2, 0.0, seed=5)
    unit = bootstrap_errors(label, {"s": score}, np.ones(n1 + n2), BKG_EFFICIENCIES, 400, 2)
    scaled = bootstrap_errors(label, {"s": score}, np.full(n1 + n2, 7.0), BKG_EFFICIENCIES,
                              400, 2)
    assert scaled["s"]["auc_err"] == pytest.approx(unit["s"]["auc_err"], rel=1e-9)
    # Half of the background almost weightless: as if it had n1 / 2 events, so the variance
    # grows from (1/n1 + 1/n2) / 12 to (2/n1 + 1/n2) / 12, by sqrt(3/2) in the spread.
    weight = np.ones(n1 + n2)
    weight[: n1 // 2] = 1e-9
    thin = bootstrap_errors(label, {"s": score}, weight, BKG_EFFICIENCIES, 400, 2)
    assert thin["s"]["auc_err"] / unit["s"]["auc_err"] == pytest.approx(np.sqrt(1.5), rel=0.15)


def test_bootstrap_is_seeded_and_shared_across_scores():
    label, score = two_class(1000, 300, 1.0)
    scores = {"a": score, "b": score.copy()}
    first = bootstrap_errors(label, scores, np.ones(len(label)), BKG_EFFICIENCIES, 30, 9)
    again = bootstrap_errors(label, scores, np.ones(len(label)), BKG_EFFICIENCIES, 30, 9)
    other = bootstrap_errors(label, scores, np.ones(len(label)), BKG_EFFICIENCIES, 30, 10)
    assert first == again and first["a"] == first["b"] and first["a"] != other["a"]


def test_compute_metrics_adds_errors_to_every_defined_entry():
    label, score = two_class(2000, 400, 1.5)
    n = len(label)
    table = ScoreTable(
        label=label, weight=np.ones(n, np.float32), evt_id=np.arange(n),
        sample_index=label.astype(np.int16), generator_index=label.astype(np.int16),
        latent=np.zeros((n, 1), np.float32), scores={"total": score},
        sample_names=["bkg_test_a", "sig_test_x"], generator_names=["a", "x"],
        signal_samples=["sig_test_x"])
    metrics = compute_metrics(table, bootstrap_resamples=50, seed=3)
    assert metrics["bootstrap"]["resamples"] == 50 and metrics["bootstrap"]["seed"] == 3
    entry = metrics["per_signal"]["total"]["sig_test_x"]
    assert 0 < entry["auc_err"] < 0.05
    assert entry["eff_s"]["1e-04"] is None and entry["eff_s_err"]["1e-04"] is None
    assert entry["eff_s_err"]["1e-02"] > 0
    assert metrics["per_signal"]["total"]["all_signals"]["auc_err"] == entry["auc_err"]
    off = compute_metrics(table)
    assert off["bootstrap"]["resamples"] == 0
    assert "auc_err" not in off["per_signal"]["total"]["sig_test_x"]
