"""Mass sculpting on scores with known answers: a function of the mass, independent of it,
weighted events, and the distance correlation against its closed form."""

from __future__ import annotations

import numpy as np
import pytest

from bead.evaluation.metrics import compute_metrics
from bead.evaluation.scores import ScoreTable
from bead.evaluation.sculpting import (
    cut_threshold,
    distance_correlation,
    jsd,
    sculpting_metrics,
)

N = 20000


def disjoint_cut_jsd(eff: float) -> float:
    """JSD (bits) between a distribution and its top fraction ``eff`` (a cut on the variable
    itself): inside the kept region P = p, Q = p / eff; outside Q = 0."""
    m_in = (1 + 1 / eff) / 2
    kl_p = (1 - eff) * np.log2(2) + eff * np.log2(1 / m_in)
    kl_q = np.log2((1 / eff) / m_in)
    return float((kl_p + kl_q) / 2)


@pytest.fixture(scope="module")
def masses() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"j1_mass": rng.exponential(80.0, N), "mjj": 500 + rng.exponential(400.0, N),
            "mt": rng.gamma(4.0, 300.0, N)}


def test_a_score_that_is_the_mass_sculpts_maximally(masses):
    out = sculpting_metrics(2.0 * masses["j1_mass"] + 3.0, masses, np.ones(N))
    mass = out["observables"]["j1_mass"]
    assert mass["distance_correlation"] == pytest.approx(1.0, abs=1e-9)  # a linear relation
    for key, eff in (("1e-01", 0.1), ("1e-02", 0.01)):
        cut = mass["cuts"][key]
        assert cut["eff_b"] == pytest.approx(eff, rel=1e-3)
        # Binning blurs the edge of the kept region a little, so slightly below the continuum.
        assert cut["jsd"] == pytest.approx(disjoint_cut_jsd(eff), abs=0.03)
        assert cut["jsd"] > 20 * cut["jsd_stat"]
    # The other masses are independent of j1_mass here: no sculpting of them.
    assert out["observables"]["mjj"]["distance_correlation"] < 0.05


def test_a_score_independent_of_the_mass_does_not_sculpt(masses):
    score = np.random.default_rng(8).normal(size=N)
    out = sculpting_metrics(score, masses, np.ones(N))
    for entry in out["observables"].values():
        assert entry["distance_correlation"] < 0.05
        for cut in entry["cuts"].values():
            # Statistical fluctuations only: the stated tolerance is the random-cut reference.
            assert cut["jsd"] < 3 * cut["jsd_stat"]
            assert sum(cut["after"]) == pytest.approx(1.0)
    assert out["dcor_events"] == 4000  # subsampled, seeded


def test_a_monotone_function_of_the_mass_sculpts_but_is_not_linear(masses):
    out = sculpting_metrics(np.log(masses["mjj"]), masses, np.ones(N))
    entry = out["observables"]["mjj"]
    assert 0.9 < entry["distance_correlation"] < 1.0
    assert entry["cuts"]["1e-01"]["jsd"] == pytest.approx(disjoint_cut_jsd(0.1), abs=0.03)


def test_distance_correlation_of_a_bivariate_normal_matches_its_closed_form():
    # Székely, Rizzo & Bakirov (2007), eq. for a bivariate normal with correlation rho.
    rho = 0.6
    rng = np.random.default_rng(3)
    x = rng.normal(size=4000)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=4000)
    dcor2 = (rho * np.arcsin(rho) + np.sqrt(1 - rho**2) - rho * np.arcsin(rho / 2)
             - np.sqrt(4 - rho**2) + 1) / (1 + np.pi / 3 - np.sqrt(3))
    assert distance_correlation(x, y) == pytest.approx(np.sqrt(dcor2), abs=0.02)
    assert distance_correlation(x, np.full(4000, 2.0)) == 0.0


def test_integer_weights_equal_repeated_events():
    rng = np.random.default_rng(4)
    n = 600
    mass, score = rng.exponential(50.0, n), rng.normal(size=n)
    score = score + 0.01 * mass  # some dependence, so the values are not trivial
    weight = rng.integers(1, 4, n).astype(float)
    repeat = weight.astype(int)
    assert distance_correlation(score, mass, weight) == pytest.approx(
        distance_correlation(np.repeat(score, repeat), np.repeat(mass, repeat)), rel=1e-9)
    weighted = sculpting_metrics(score, {"j1_mass": mass}, weight)["observables"]["j1_mass"]
    repeated = sculpting_metrics(np.repeat(score, repeat), {"j1_mass": np.repeat(mass, repeat)},
                                 np.ones(repeat.sum()))["observables"]["j1_mass"]
    assert weighted["edges"] == repeated["edges"] and weighted["before"] == pytest.approx(
        repeated["before"])
    for key in ("1e-01",):
        assert weighted["cuts"][key]["jsd"] == pytest.approx(repeated["cuts"][key]["jsd"])
        assert weighted["cuts"][key]["eff_b"] == pytest.approx(repeated["cuts"][key]["eff_b"])
    # Weights matter: the same events with other weights give another distribution.
    unit = sculpting_metrics(score, {"j1_mass": mass}, np.ones(n))["observables"]["j1_mass"]
    assert unit["before"] != pytest.approx(weighted["before"])


def test_cut_threshold_keeps_the_asked_weighted_fraction():
    score = np.arange(100.0)
    assert cut_threshold(score, np.ones(100), 0.1) == 90.0
    heavy = np.r_[np.ones(99), 99.0]  # the top event carries half the weight
    assert cut_threshold(score, heavy, 0.1) == 99.0
    assert jsd(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_cuts_the_sample_cannot_resolve_are_null():
    rng = np.random.default_rng(5)
    out = sculpting_metrics(rng.normal(size=500), {"mt": rng.normal(size=500)}, np.ones(500))
    cuts = out["observables"]["mt"]["cuts"]
    assert cuts["1e-01"]["jsd"] is not None and cuts["1e-01"]["low_stats"] is False
    assert cuts["1e-02"] == {"threshold": None, "eff_b": None, "n_pass_eff": 0.0, "jsd": None,
                             "jsd_stat": None, "after": None, "low_stats": True}


def test_compute_metrics_checks_the_primary_score_on_background_only(masses):
    rng = np.random.default_rng(6)
    n_sig = 1000
    obs = {name: np.r_[values, rng.exponential(1000.0, n_sig)] for name, values in masses.items()}
    table = ScoreTable(
        label=np.r_[np.zeros(N), np.ones(n_sig)].astype(np.int8),
        weight=np.ones(N + n_sig, np.float32), evt_id=np.arange(N + n_sig),
        sample_index=np.r_[np.zeros(N), np.ones(n_sig)].astype(np.int16),
        generator_index=np.r_[np.zeros(N), np.ones(n_sig)].astype(np.int16),
        latent=np.zeros((N + n_sig, 1), np.float32),
        scores={"total": obs["mt"].copy(), "reco": rng.normal(size=N + n_sig)},
        sample_names=["bkg_test_a", "sig_test_x"], generator_names=["a", "x"],
        signal_samples=["sig_test_x"], observables=obs)
    section = compute_metrics(table, primary_score="total")["sculpting"]
    assert section["score"] == "total" and set(section["observables"]) == {"j1_mass", "mjj", "mt"}
    assert section["observables"]["mt"]["distance_correlation"] == pytest.approx(1.0, abs=1e-6)
    other = compute_metrics(table, primary_score="reco")["sculpting"]
    assert other["observables"]["mt"]["distance_correlation"] < 0.05
    # Without the masses (an older scores.h5), the section says which score and stays empty.
    table.observables = {}
    assert compute_metrics(table)["sculpting"] == {"score": "total", "observables": {}}
