"""The enrichment test: does a background learnt from some generators generalise to one it
has not seen?

With ``holdout_generator`` set, training skipped that generator's bkg_train events. Here its
bkg_test events are an unseen background: at the cut that keeps ε_b = 1e-2 (1e-3) of the seen
generators' bkg_test events, the fraction of the held-out generator's events that pass is
measured, with its ratio to the nominal ε_b (1 = the cut means the same on a generator the
model never saw; above 1, the unseen generator looks anomalous), and the AUC of held-out vs
seen background (0.5 = indistinguishable). The cut is placed as ε_s is in the ROC metrics:
linear between neighbouring events, so the seen efficiency is exactly the nominal one. The
uncertainty is binomial on the held-out sample's effective size, sqrt(ε (1 - ε) / N_eff) (ε
kept at least 1/N_eff from 0 and 1), and an entry is flagged ``low_stats`` when fewer than
SIC_MIN_BKG held-out events are expected to pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bead.evaluation.metrics import (
    SIC_MIN_BKG,
    efficiency_key,
    separation_auc,
    tpr_at,
    weighted_roc,
)
from bead.evaluation.scores import ScoreTable
from bead.evaluation.sculpting import cut_threshold
from bead.stats import effective_count, nonnegative

ENRICHMENT_EFFICIENCIES = (1e-2, 1e-3)


def _generator_mask(table: ScoreTable, names: list[str]) -> np.ndarray:
    index = [table.generator_names.index(g) for g in names if g in table.generator_names]
    return (table.label == 0) & np.isin(table.generator_index, index)


def enrichment_metrics(table: ScoreTable, scores: dict[str, np.ndarray], holdout: list[str],
                       seen: list[str]) -> dict[str, Any]:
    """The ``enrichment`` section of metrics.json: per score and held-out generator, the
    held-out ε_b at each of ENRICHMENT_EFFICIENCIES on the ``seen`` generators."""
    seen_mask = _generator_mask(table, seen)
    weight = nonnegative(table.weight)
    n_seen = effective_count(weight[seen_mask])
    out: dict[str, Any] = {"holdout_generators": list(holdout), "seen_generators": list(seen),
                           "n_seen_eff": n_seen, "per_score": {}}
    missing = [g for g in holdout if not _generator_mask(table, [g]).any()]
    out["missing"] = missing  # held out in training but without bkg_test events to measure
    for name, score in scores.items():
        out["per_score"][name] = {
            g: _one_holdout(np.asarray(score, np.float64), weight, seen_mask,
                            _generator_mask(table, [g]), n_seen)
            for g in holdout if g not in missing}
    return out


def _one_holdout(score: np.ndarray, weight: np.ndarray, seen: np.ndarray, held: np.ndarray,
                 n_seen: float) -> dict[str, Any]:
    n_held = effective_count(weight[held])
    entry: dict[str, Any] = {"auc_vs_seen": None, "n_holdout_eff": n_held,
                             "eff_b": {efficiency_key(e): None
                                       for e in ENRICHMENT_EFFICIENCIES}}
    usable = (n_seen > 0 and n_held > 0 and np.isfinite(score[seen]).all()
              and np.isfinite(score[held]).all())
    if not usable:
        return entry
    entry["auc_vs_seen"] = separation_auc(score[held], weight[held], score[seen], weight[seen])
    keep = seen | held
    fpr, tpr = weighted_roc(held[keep], score[keep], weight[keep])
    for eff in ENRICHMENT_EFFICIENCIES:
        if eff * n_seen < 1 - 1e-9:  # the seen sample cannot resolve this working point
            continue
        held_eff = tpr_at(fpr, tpr, eff)
        entry["eff_b"][efficiency_key(eff)] = {
            "threshold": cut_threshold(score[seen], weight[seen], eff),
            "eff_b_holdout": held_eff,
            "eff_b_holdout_err": _binomial_error(held_eff, n_held),
            "ratio": held_eff / eff,
            "low_stats": bool(eff * n_held < SIC_MIN_BKG)}
    return entry


def _binomial_error(eff: float, n_eff: float) -> float:
    """sqrt(ε (1 - ε) / N_eff), with ε kept within [1/N_eff, 1 - 1/N_eff] so that no event
    passing (or all) does not claim a zero uncertainty."""
    clipped = min(max(eff, 1 / n_eff), 1 - 1 / n_eff) if n_eff > 2 else 0.5
    return float(np.sqrt(clipped * (1 - clipped) / n_eff))
