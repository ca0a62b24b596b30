"""Separation metrics of anomaly scores (SPEC §9): ROC AUC, signal efficiency at fixed
background efficiency, maximum significance improvement, and how well a score tells the
background generators apart.

Conventions:
- Higher score = more signal-like. Event weights are honoured; negative weights (NLO
  generators) are set to zero here, since a ROC curve needs non-negative weights to be monotonic.
- Statistical floor: a background efficiency below ``1 / N_eff`` cannot be resolved, where
  ``N_eff = (Σw)² / Σw²`` is the effective number of background events (N for unit weights).
  Signal efficiencies at such working points are null rather than extrapolated. The SIC
  eps_s / sqrt(eps_b) needs more: it diverges on a single background event, so it is taken only
  where at least ``SIC_MIN_BKG`` effective background events pass (the SIC plots use the same).

Two further sections have their own modules: ``sculpting`` (bead.evaluation.sculpting: the
background's mass spectra before/after a cut on the primary score) and, with
``bootstrap_resamples`` > 0, bootstrap uncertainties ``auc_err`` / ``eff_s_err`` in every
``per_signal`` entry (bead.evaluation.bootstrap), described by the ``bootstrap`` section.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

from bead.evaluation.bootstrap import bootstrap_errors
from bead.evaluation.scores import ScoreTable
from bead.evaluation.sculpting import SCULPTING_OBSERVABLES, sculpting_metrics
from bead.stats import MIN_TEST_EVENTS, effective_count, nonnegative

log = logging.getLogger(__name__)

BKG_EFFICIENCIES = (1e-1, 1e-2, 1e-3, 1e-4)
ALL_SIGNALS = "all_signals"
SIC_MIN_BKG = 10


def efficiency_key(eff: float) -> str:
    """``1e-01`` style keys of metrics.json."""
    return f"{eff:.0e}"


def _empty_summary() -> dict[str, Any]:
    return {"auc": None, "eff_s": {efficiency_key(e): None for e in BKG_EFFICIENCIES},
            "max_sic": None, "n_signal_eff": 0.0, "n_background_eff": 0.0, "low_stats": True}


def _usable(label: np.ndarray, weight: np.ndarray) -> bool:
    return bool(weight[label == 1].sum() > 0 and weight[label == 0].sum() > 0)


def sic_points(
    fpr: np.ndarray, tpr: np.ndarray, bkg_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(eps_s, SIC) at the ROC points where at least SIC_MIN_BKG effective background events
    pass; ``bkg_weight`` are the (non-negative) background weights behind ``fpr``."""
    n_eff = effective_count(bkg_weight)
    ok = fpr * n_eff >= SIC_MIN_BKG * (1 - 1e-9) if n_eff > 0 else np.zeros(len(fpr), bool)
    return tpr[ok], tpr[ok] / np.sqrt(fpr[ok])


def tpr_at(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Signal efficiency at background efficiency ``target``, linear between ROC points.

    On a vertical stretch of the ROC (several points at ``target``) the highest efficiency,
    which the best threshold reaches, is returned.
    """
    i = int(np.searchsorted(fpr, target, side="right")) - 1
    if fpr[i] == target or i == len(fpr) - 1:
        return float(tpr[i])
    frac = (target - fpr[i]) / (fpr[i + 1] - fpr[i])
    return float(tpr[i] + frac * (tpr[i + 1] - tpr[i]))


def weighted_roc(
    label: np.ndarray, score: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Background and signal efficiency (fpr, tpr) of the cut ``score >= t`` at every distinct
    t, highest first, from (0, 0). No point is dropped, so working points interpolate exactly."""
    fpr, tpr, _ = roc_curve(label, score, sample_weight=weight, drop_intermediate=False)
    return fpr, tpr


def roc_summary(label: np.ndarray, score: np.ndarray, weight: np.ndarray) -> dict[str, Any]:
    """AUC, eff_s at each of BKG_EFFICIENCIES and max SIC of ``score`` for label 1 vs 0."""
    label = np.asarray(label)
    weight = nonnegative(weight)
    score = np.asarray(score, dtype=np.float64)
    if not _usable(label, weight) or not np.all(np.isfinite(score)):
        return _empty_summary()
    fpr, tpr = weighted_roc(label, score, weight)
    area = float(auc(fpr, tpr))  # what roc_auc_score computes, without sorting twice
    floor = 1.0 / effective_count(weight[label == 0])
    eff_s = {efficiency_key(e): tpr_at(fpr, tpr, e) if e >= floor * (1 - 1e-9) else None
             for e in BKG_EFFICIENCIES}
    _, sic = sic_points(fpr, tpr, weight[label == 0])
    n_sig, n_bkg = effective_count(weight[label == 1]), effective_count(weight[label == 0])
    return {"auc": area, "eff_s": eff_s, "max_sic": float(sic.max()) if sic.size else None,
            "n_signal_eff": n_sig, "n_background_eff": n_bkg,
            "low_stats": bool(min(n_sig, n_bkg) < MIN_TEST_EVENTS)}


def separation_auc(
    score_a: np.ndarray, weight_a: np.ndarray, score_b: np.ndarray, weight_b: np.ndarray
) -> float | None:
    """AUC with sample A as the positive class: P(score_A > score_B); 0.5 = indistinguishable."""
    label = np.concatenate([np.ones(len(score_a), np.int8), np.zeros(len(score_b), np.int8)])
    weight = nonnegative(np.concatenate([weight_a, weight_b]))
    score = np.concatenate([score_a, score_b]).astype(np.float64)
    if not _usable(label, weight) or not np.all(np.isfinite(score)):
        return None
    return float(roc_auc_score(label, score, sample_weight=weight))


def _signal_summaries(
    table: ScoreTable, score: np.ndarray, background: np.ndarray
) -> dict[str, dict[str, Any]]:
    """ROC summaries of the ``background`` events against each signal and all signals."""
    out: dict[str, dict[str, Any]] = {}
    for stem, keep in _signal_selections(table).items():
        keep = keep & (background | (table.label == 1))
        out[stem] = roc_summary(table.label[keep], score[keep], table.weight[keep])
    return out


def background_generators(table: ScoreTable) -> list[str]:
    """Generators that have background events in the table, in generator-index order."""
    present = set(np.unique(table.generator_index[table.label == 0]).tolist())
    return [g for i, g in enumerate(table.generator_names) if i in present]


OBSERVABLE_PREFIX = "obs_"


def signed_observables(table: ScoreTable) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each raw observable as a one-variable cut, named ``obs_<name>``, oriented so that higher
    means more signal-like, with the direction ("higher" or "lower" for the signal).

    The direction is the one that separates all signals best: generous to the baseline, so a
    model that beats it beats the best cut a physicist could place on that variable. Without
    signal, higher is kept.
    """
    scores, directions = {}, {}
    for name, values in table.observables.items():
        values = np.asarray(values, dtype=np.float64)
        flip = False
        if table.is_signal.any() and (~table.is_signal).any():
            area = roc_summary(table.label, values, table.weight)["auc"]
            flip = area is not None and area < 0.5
        scores[OBSERVABLE_PREFIX + name] = -values if flip else values
        directions[OBSERVABLE_PREFIX + name] = "lower" if flip else "higher"
    return scores, directions


def compute_metrics(table: ScoreTable, primary_score: str = "total", *,
                    bootstrap_resamples: int = 0, seed: int = 0) -> dict[str, Any]:
    """Every metric of formats §5 for every score of ``table`` and every single observable;
    ``primary_score`` names the score a user should cut on (and the one checked for mass
    sculpting). ``bootstrap_resamples`` > 0 adds seeded bootstrap uncertainties."""
    if np.any(table.weight < 0):
        log.warning("%d events have negative weights; they count as zero in the metrics",
                    int(np.sum(table.weight < 0)))
    generators = background_generators(table)
    is_bkg = table.label == 0
    gen_masks = {g: is_bkg & (table.generator_index == table.generator_names.index(g))
                 for g in generators}
    signals = table.signal_samples
    observables, directions = signed_observables(table)
    metrics: dict[str, Any] = {"primary_score": primary_score, "scores": list(table.scores),
                               "observables": list(observables),
                               "observable_directions": directions, "signals": list(signals),
                               "generators": generators, "per_signal": {},
                               "per_generator": {}, "generator_separation": {}}
    every_score = {**table.scores, **observables}
    for name, score in every_score.items():
        if not np.all(np.isfinite(score)):
            log.warning("score '%s' has %d non-finite values: its metrics are null", name,
                        int(np.sum(~np.isfinite(score))))
        metrics["per_signal"][name] = _signal_summaries(table, score, is_bkg) if signals else {}
        metrics["per_generator"][name] = {
            g: _signal_summaries(table, score, mask) if signals else {}
            for g, mask in gen_masks.items()}
        metrics["generator_separation"][name] = {
            f"{a}_vs_{b}": separation_auc(score[gen_masks[a]], table.weight[gen_masks[a]],
                                          score[gen_masks[b]], table.weight[gen_masks[b]])
            for a, b in itertools.combinations(generators, 2)}
    metrics["bootstrap"] = {"resamples": bootstrap_resamples, "seed": seed,
                            "method": "stratified weighted resampling; error = standard "
                                      "deviation over the resamples"}
    if bootstrap_resamples > 0 and signals:
        _add_bootstrap(table, every_score, metrics["per_signal"], bootstrap_resamples, seed)
    metrics["sculpting"] = _sculpting(table, primary_score, seed)
    metrics["warnings"] = _low_statistics(table, metrics)
    return metrics


def _signal_selections(table: ScoreTable) -> dict[str, np.ndarray]:
    """The events of each signal sample and of all signals together, with all backgrounds."""
    is_signal, is_bkg = table.label == 1, table.label == 0
    out = {stem: is_bkg | (is_signal & (table.sample_index == table.sample_names.index(stem)))
           for stem in table.signal_samples}
    out[ALL_SIGNALS] = is_bkg | is_signal
    return out


def _add_bootstrap(table: ScoreTable, scores: dict[str, np.ndarray],
                   per_signal: dict[str, dict[str, Any]], resamples: int, seed: int) -> None:
    """``auc_err`` and ``eff_s_err`` into every per_signal entry whose metric is defined
    (computed once for a selection that equals an earlier one: one signal is all signals)."""
    done: list[tuple[np.ndarray, dict[str, Any]]] = []
    for stem, keep in _signal_selections(table).items():
        usable = {name: score[keep] for name, score in scores.items()
                  if per_signal[name][stem]["auc"] is not None}
        errors = next((e for k, e in done if np.array_equal(k, keep)), None)
        if errors is None:
            errors = bootstrap_errors(table.label[keep], usable, table.weight[keep],
                                      BKG_EFFICIENCIES, resamples, seed)
            done.append((keep, errors))
        for name, err in errors.items():
            entry = per_signal[name][stem]
            entry["auc_err"] = err["auc_err"]
            entry["eff_s_err"] = {k: v if entry["eff_s"][k] is not None else None
                                  for k, v in err["eff_s_err"].items()}


def _sculpting(table: ScoreTable, score: str, seed: int) -> dict[str, Any]:
    """Mass sculpting of the background by a cut on ``score`` (empty without the masses)."""
    section: dict[str, Any] = {"score": score, "observables": {}}
    masses = {m: table.observables[m] for m in SCULPTING_OBSERVABLES if m in table.observables}
    is_bkg = table.label == 0
    if score not in table.scores or not masses or not is_bkg.any():
        log.warning("no mass-sculpting check: needs the score '%s' and the observables %s of "
                    "background events", score, ", ".join(SCULPTING_OBSERVABLES))
        return section
    section.update(sculpting_metrics(table.scores[score][is_bkg],
                                     {m: v[is_bkg] for m, v in masses.items()},
                                     table.weight[is_bkg], seed))
    return section


def _low_statistics(table: ScoreTable, metrics: dict[str, Any]) -> list[str]:
    """One line per sample whose metrics rest on fewer than MIN_TEST_EVENTS effective events."""
    warnings = []
    weight = nonnegative(table.weight)
    groups = [(g.name, "background generator", g.mask) for g in table.background_groups()]
    groups += [(g.name, "signal sample", g.mask) for g in table.signal_groups()]
    for name, kind, mask in groups:
        n_eff = effective_count(weight[mask])
        if n_eff < MIN_TEST_EVENTS:
            warnings.append(f"{kind} {name} has only {n_eff:.0f} effective events (fewer than "
                            f"{MIN_TEST_EVENTS}): its metrics are flagged low_stats")
    return warnings
