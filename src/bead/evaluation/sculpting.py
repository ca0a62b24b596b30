"""Mass sculpting: does a cut on the anomaly score reshape the background's mass spectra?

A resonance search fits a smooth background under a bump in a mass; a score that prefers some
masses makes a bump of its own. For the background (bkg_test, weights honoured) and each of the
leading-jet mass, the dijet mass and ``mt``:

- **Jensen–Shannon divergence** (base 2, in bits: 0 = same shape, 1 = disjoint) between the
  normalised distribution before and after a cut at background efficiency 1e-1 and 1e-2 on the
  primary score. Binning: ``MASS_BINS`` equal-width bins between the weighted 0.5 % and 99.5 %
  quantiles of the background before the cut, values outside in the edge bins. A finite sample
  gives a JSD above 0 even for a cut that ignores the mass, so each value comes with
  ``jsd_stat``: the mean JSD of ``STAT_DRAWS`` random selections keeping each event with the
  same probability (seeded) — sculpting shows as ``jsd`` well above ``jsd_stat``.
- **Distance correlation** (Székely, Rizzo & Bakirov 2007) between the score and the mass over
  the whole background: 0 exactly when independent, 1 for a linear relation. It sees any
  dependence, not only a linear one. Computed as the weighted V-statistic on at most
  ``DCOR_MAX_EVENTS`` events (a seeded subsample without replacement, each keeping its weight),
  so memory and time stay bounded; with n events an independent pair still gives about
  1/sqrt(n) (≈ 0.016 for 4,000).

The ``dcor`` package on PyPI implements the unweighted statistic; it was not used because it
takes no event weights and its import compiles numba code (13–15 s per process here, longer
than the rest of ``detect``). The weighted form below follows the same definitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from bead.stats import effective_count, nonnegative

SCULPTING_OBSERVABLES = ("j1_mass", "mjj", "mt")
SCULPTING_EFFICIENCIES = (1e-1, 1e-2)
MASS_BINS = 40
RANGE_QUANTILES = (0.005, 0.995)
STAT_DRAWS = 10
DCOR_MAX_EVENTS = 4000
MIN_PASS_EVENTS = 10  # effective background events that must pass a cut for a JSD
_BLOCK = 256  # rows of the pairwise distance matrix held at once


def weighted_quantile(values: np.ndarray, weight: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of the weighted distribution of ``values`` (inverted empirical CDF)."""
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(weight[order])
    cdf /= cdf[-1]
    index = np.minimum(np.searchsorted(cdf, q), len(values) - 1)
    return values[order][index]


def cut_threshold(score: np.ndarray, weight: np.ndarray, eff: float) -> float:
    """The cut value ``t`` such that ``score >= t`` keeps a weighted fraction of at least
    ``eff`` of the events (the smallest such fraction the events allow)."""
    order = np.argsort(-score, kind="stable")
    cum = np.cumsum(weight[order])
    index = min(int(np.searchsorted(cum, eff * cum[-1] * (1 - 1e-12))), len(score) - 1)
    return float(score[order][index])


def mass_edges(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``MASS_BINS`` equal-width bins over the weighted central range of ``values``."""
    lo, hi = weighted_quantile(values, weight, np.array(RANGE_QUANTILES))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, MASS_BINS + 1)


def fractions(values: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Weighted fraction per bin, outliers in the edge bins; zeros when nothing has weight."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=weight)
    total = counts.sum()
    return counts / total if total > 0 else counts


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence of two histograms, in bits (scipy returns its square root)."""
    return float(jensenshannon(p, q, base=2) ** 2)


def distance_correlation(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Weighted distance correlation of two 1-D samples (V-statistic; 0 when either is constant).

    With a_ij = |x_i - x_j|, weighted row means ā_i = Σ_j w_j a_ij / W and grand mean ā:
    dCov² = Σ_ij w_i w_j a_ij b_ij / W² - 2 Σ_i w_i ā_i b̄_i / W + ā b̄, and dCor² =
    dCov²(x, y) / sqrt(dCov²(x, x) dCov²(y, y)). Integer weights give exactly the value of the
    sample with each event repeated that often. Only the cross term needs pairs: it is summed
    in row blocks (O(n) memory); the squared terms have closed forms.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.ones_like(x) if weight is None else nonnegative(weight)
    total = w.sum()
    if total <= 0 or np.ptp(x[w > 0]) == 0 or np.ptp(y[w > 0]) == 0:
        return 0.0
    w = w / total
    row_x, row_y = _row_means(x, w), _row_means(y, w)
    mean_x, mean_y = w @ row_x, w @ row_y
    cross = sum(w[part] @ (np.abs((x[part, None] - x) * (y[part, None] - y)) @ w)
                for part in (slice(i, i + _BLOCK) for i in range(0, len(x), _BLOCK)))
    cov = cross - 2 * w @ (row_x * row_y) + mean_x * mean_y
    var_x = _square_sum(x, w) - 2 * w @ (row_x * row_x) + mean_x ** 2
    var_y = _square_sum(y, w) - 2 * w @ (row_y * row_y) + mean_y ** 2
    if var_x <= 0 or var_y <= 0:
        return 0.0
    return float(np.sqrt(max(cov, 0.0) / np.sqrt(var_x * var_y)))


def _square_sum(x: np.ndarray, w: np.ndarray) -> float:
    """Σ_ij w_i w_j (x_i - x_j)² = 2 (Σ w x² - (Σ w x)²) for normalised w, without pairs."""
    return float(2 * (w @ (x * x) - (w @ x) ** 2))


def _row_means(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_j w_j |x_i - x_j| for every i (w normalised), in O(n log n) from sorted prefix sums."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    below_w = np.cumsum(ws) - ws  # weight strictly before each sorted position
    below_wx = np.cumsum(ws * xs) - ws * xs
    above_w = ws.sum() - below_w - ws
    above_wx = (ws * xs).sum() - below_wx - ws * xs
    out = np.empty_like(x)
    out[order] = xs * (below_w - above_w) - below_wx + above_wx
    return out


def _subsample(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= DCOR_MAX_EVENTS:
        return np.arange(n)
    return np.sort(rng.choice(n, DCOR_MAX_EVENTS, replace=False))


def sculpting_metrics(score: np.ndarray, masses: dict[str, np.ndarray], weight: np.ndarray,
                      seed: int = 0) -> dict[str, Any]:
    """The sculpting section of metrics.json for background events with ``score``, their
    ``masses`` (by observable name) and weights."""
    score = np.asarray(score, np.float64)
    weight = nonnegative(weight)
    finite = np.isfinite(score)
    rng = np.random.default_rng(seed)
    keep = _subsample(len(score), rng)
    keep = keep[finite[keep]]
    out: dict[str, Any] = {}
    n_eff = effective_count(weight[finite])
    cuts = {}
    for eff in SCULPTING_EFFICIENCIES:
        ok = n_eff > 0 and eff * n_eff >= MIN_PASS_EVENTS
        t = cut_threshold(score[finite], weight[finite], eff) if ok else None
        cuts[eff] = t
    for name, values in masses.items():
        values = np.asarray(values, np.float64)
        good = finite & np.isfinite(values)
        edges = mass_edges(values[good], weight[good]) if good.any() else np.linspace(0, 1, 2)
        before = fractions(values[good], weight[good], edges)
        entry: dict[str, Any] = {
            "distance_correlation": distance_correlation(
                score[keep], values[keep], weight[keep]) if keep.size > 1 else None,
            "edges": edges.tolist(), "before": before.tolist(), "cuts": {}}
        for eff, t in cuts.items():
            entry["cuts"][f"{eff:.0e}"] = _cut_entry(
                score[good], values[good], weight[good], edges, before, t, rng)
        out[name] = entry
    return {"dcor_events": int(keep.size), "observables": out}


def _cut_entry(score: np.ndarray, values: np.ndarray, weight: np.ndarray, edges: np.ndarray,
               before: np.ndarray, threshold: float | None,
               rng: np.random.Generator) -> dict[str, Any]:
    """JSD before/after the cut ``score >= threshold``, with its statistical reference."""
    if threshold is None or weight.sum() <= 0:
        return {"threshold": None, "eff_b": None, "n_pass_eff": 0.0, "jsd": None,
                "jsd_stat": None, "after": None, "low_stats": True}
    passed = score >= threshold
    eff_b = float(weight[passed].sum() / weight.sum())
    after = fractions(values[passed], weight[passed], edges)
    stat = [jsd(before, fractions(values[keep], weight[keep], edges))
            for keep in (rng.random(len(values)) < eff_b for _ in range(STAT_DRAWS))]
    n_pass = effective_count(weight[passed])
    return {"threshold": threshold, "eff_b": eff_b, "n_pass_eff": n_pass,
            "jsd": jsd(before, after), "jsd_stat": float(np.mean(stat)), "after": after.tolist(),
            "low_stats": bool(n_pass < MIN_PASS_EVENTS)}
