"""Bootstrap uncertainties of the ROC metrics: the AUC and ε_s at each ε_b.

Each resample draws, with replacement, as many background events as there are from the
background and as many signal events as there are from the signal (stratified, so both classes
keep their size), and every drawn event carries its weight: a resample is the original events
with weights ``w_i * c_i``, ``c_i`` the times event i was drawn. The uncertainty is the
standard deviation of the metric over the resamples. Seeded: the same seed gives the same
numbers, and every score of one selection sees the same resamples, so differences between
scores are not blurred by different draws.

Vectorised: the counts of a block of resamples form one ``[resamples, events]`` array; each
score is sorted once, and every resample's weighted ROC is a cumulative sum along that order,
taken at the ends of runs of tied scores (as ``roc_curve`` with ``drop_intermediate=False``).
Blocks of resamples keep memory at about ``_BLOCK_ELEMENTS`` numbers whatever the sample size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bead.stats import nonnegative

_BLOCK_ELEMENTS = 1 << 22  # resample x event entries held at once (~32 MB of float64)


def resample_counts(label: np.ndarray, n_resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``[n_resamples, n]`` draw counts, drawn within each class of ``label``."""
    counts = np.zeros((n_resamples, len(label)), np.int32)
    rows = np.arange(n_resamples)[:, None]
    for cls in (0, 1):
        idx = np.flatnonzero(label == cls)
        if idx.size == 0:
            continue
        draws = rng.integers(0, idx.size, size=(n_resamples, idx.size)) + rows * idx.size
        counts[:, idx] = np.bincount(draws.ravel(), minlength=n_resamples * idx.size).reshape(
            n_resamples, idx.size)
    return counts


def roc_rows(label: np.ndarray, score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """(fpr, tpr), each ``[rows, thresholds]``, of ``score >= t`` at every distinct t (highest
    first; the curve starts at the origin, which is implied) for every row of event
    ``weights`` ``[rows, n]``; nan in a row where a class has no weight. Arrays are reused in
    place: this is the inner loop of the bootstrap."""
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    ends = np.r_[np.flatnonzero(ordered[1:] != ordered[:-1]), len(score) - 1]
    every = np.take(weights, order, axis=1)
    signal = every * (label[order] == 1)
    np.cumsum(every, axis=1, out=every)
    np.cumsum(signal, axis=1, out=signal)
    tp, fp = signal[:, ends], every[:, ends]
    fp -= tp
    with np.errstate(invalid="ignore", divide="ignore"):
        tp /= tp[:, -1:]
        fp /= fp[:, -1:]
    return fp, tp


def auc_rows(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Trapezoidal area under each row's ROC, from the origin."""
    inner = np.sum((fpr[:, 1:] - fpr[:, :-1]) * (tpr[:, 1:] + tpr[:, :-1]), axis=1)
    return (fpr[:, 0] * tpr[:, 0] + inner) / 2


def tpr_at_rows(fpr: np.ndarray, tpr: np.ndarray, targets: Sequence[float]) -> np.ndarray:
    """``[rows, targets]``: each row's signal efficiency at each background efficiency of
    ``targets``, with the convention of ``bead.evaluation.metrics.tpr_at`` (linear between
    points, the highest on a vertical stretch). One binary search for every row and target:
    the sorted rows are shifted apart and searched as one array."""
    rows, size = fpr.shape
    shift = 2.0 * np.arange(rows)
    flat = np.nan_to_num(fpr, nan=0.0)
    flat += shift[:, None]
    want = np.asarray(targets, float)[None, :]
    k = (np.searchsorted(flat.ravel(), (want + shift[:, None]).ravel(), side="right")
         .reshape(rows, -1) - size * np.arange(rows)[:, None])  # points at or below target
    r = np.arange(rows)[:, None]
    prev, nxt = np.maximum(k - 1, 0), np.minimum(k, size - 1)
    f0 = np.where(k > 0, fpr[r, prev], 0.0)  # the origin when no point is at or below
    t0 = np.where(k > 0, tpr[r, prev], 0.0)
    f1, t1 = fpr[r, nxt], tpr[r, nxt]
    exact = (f0 == want) | (k == size) | (f1 <= f0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(exact, t0, t0 + (want - f0) / (f1 - f0) * (t1 - t0))
    return np.where(np.isnan(fpr[:, -1:]), np.nan, value)


def bootstrap_errors(label: np.ndarray, scores: dict[str, np.ndarray], weight: np.ndarray,
                     targets: Sequence[float], n_resamples: int,
                     seed: int = 0) -> dict[str, dict[str, Any]]:
    """For every score: ``auc_err`` and ``eff_s_err`` (one per ε_b of ``targets``), the
    standard deviations over ``n_resamples`` stratified, weighted bootstrap resamples."""
    label = np.asarray(label)
    weight = nonnegative(weight)
    rng = np.random.default_rng(seed)
    block = max(1, min(n_resamples, _BLOCK_ELEMENTS // max(1, len(label))))
    values: dict[str, list[np.ndarray]] = {name: [] for name in scores}
    done = 0
    while done < n_resamples:
        rows = min(block, n_resamples - done)
        resampled = resample_counts(label, rows, rng) * weight
        for name, score in scores.items():
            fpr, tpr = roc_rows(label, np.asarray(score, np.float64), resampled)
            values[name].append(np.column_stack([auc_rows(fpr, tpr),
                                                 tpr_at_rows(fpr, tpr, targets)]))
        done += rows
    out = {}
    for name, parts in values.items():
        table = np.vstack(parts)
        spread = _spread(table)
        out[name] = {"auc_err": spread[0],
                     "eff_s_err": {f"{t:.0e}": s for t, s in zip(targets, spread[1:],
                                                                   strict=True)}}
    return out


def _spread(table: np.ndarray) -> list[float | None]:
    """Column standard deviations over the resamples (None where fewer than two are finite)."""
    out: list[float | None] = []
    for column in table.T:
        finite = column[np.isfinite(column)]
        out.append(float(np.std(finite, ddof=1)) if finite.size > 1 else None)
    return out
