"""The ROC overlay across projects (``overlay_roc_projects``), with a JSON summary beside it.

Honest by default: each project's curve is its primary score (metrics.json's
``primary_score``, else ``total``) or the score ``overlay_roc_score`` names, chosen before the
curves are looked at; picking whichever score had the best AUC on the very sample shown would
flatter every curve. The current project is always drawn, and a project whose results do not
come from its current model is refused (``stale_reason``), as plot refuses its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bead.errors import DataError, UsageError
from bead.evaluation.metrics import efficiency_key, roc_summary, tpr_at
from bead.evaluation.provenance import stale_reason
from bead.evaluation.scores import read_scores
from bead.fileio import atomic_write_json
from bead.plotting.inputs import SCORES, load_metrics, primary_score
from bead.plotting.roc import Curve, _finish_roc, roc_curve
from bead.plotting.style import color, hep_style, new_figure, safe_name, save_figure

WORKING_POINTS = (1e-2, 1e-3)
CURVE_POINTS = 200  # log-spaced eps_b points of each curve in the summary, for re-plotting


@dataclass(frozen=True)
class OverlaySource:
    """One project of the overlay: its name in the legend and its output folders."""

    label: str
    results_dir: Path
    models_dir: Path


def check_sources(sources: list[OverlaySource]) -> None:
    """One line naming the first project without current scores (before anything is drawn)."""
    if not sources:
        raise UsageError("overlay_roc: no projects given (set overlay_roc_projects)")
    for source in sources:
        scores = Path(source.results_dir) / SCORES
        if not scores.is_file():
            raise DataError(f"overlay_roc_projects: {source.label}: no {scores} (run detect "
                            "for that project first)")
        reason = stale_reason(source.results_dir, source.models_dir)
        if reason is not None:
            raise DataError(f"overlay_roc_projects: {source.label}: {reason}")


def choose_score(metrics: dict[str, Any], names: list[str], requested: str,
                 label: str) -> tuple[str, str]:
    """The score drawn for a project, and why that one."""
    if requested:
        if requested not in names:
            raise DataError(f"overlay_roc_score = '{requested}': project {label} has no such "
                            f"score (it has {', '.join(names)})")
        return requested, "overlay_roc_score"
    chosen = primary_score(metrics, names)
    if metrics.get("primary_score") == chosen:
        return chosen, "primary_score"
    return chosen, "total (no primary_score recorded)" if chosen == "total" else "first score"


def _sampled(curve: Curve) -> dict[str, list[float]]:
    positive = curve.eps_b[curve.eps_b > 0]
    lo = float(positive.min()) if positive.size else 1e-4
    grid = np.geomspace(lo, 1.0, CURVE_POINTS)
    return {"eps_b": grid.tolist(),
            "eps_s": [tpr_at(curve.eps_b, curve.eps_s, float(x)) for x in grid]}


def project_summary(source: OverlaySource, requested: str) -> tuple[dict[str, Any], Curve]:
    """The overlay entry of one project (all signals against all background) and its curve."""
    metrics = load_metrics(source.results_dir)
    table = read_scores(Path(source.results_dir) / SCORES)
    if not table.is_signal.any():
        raise DataError(f"overlay_roc_projects: {source.label}: no signal events in "
                        f"{Path(source.results_dir) / SCORES}, nothing to overlay")
    score, why = choose_score(metrics, list(table.scores), requested, source.label)
    values = table.scores[score]
    curve = roc_curve(values, table.is_signal, table.weight)
    summary = roc_summary(table.label, values, table.weight)
    entry = {
        "project": source.label, "results": str(source.results_dir), "score": score,
        "score_choice": why, "auc": summary["auc"],
        "eff_s": {efficiency_key(e): summary["eff_s"][efficiency_key(e)]
                  for e in WORKING_POINTS},
        "n_signal": int(table.is_signal.sum()), "n_background": int((~table.is_signal).sum()),
        "model_sha256": (table.provenance or {}).get("model_sha256"),
        "curve": _sampled(curve),
    }
    return entry, curve


def _legend(entry: dict[str, Any]) -> str:
    eff = entry["eff_s"][efficiency_key(WORKING_POINTS[0])]
    eff_text = "—" if eff is None else f"{eff:.3f}"
    auc = "—" if entry["auc"] is None else f"{entry['auc']:.3f}"
    return (f"{entry['project']}: {entry['score']}, AUC = {auc}, "
            f"$\\varepsilon_S(\\varepsilon_B{{=}}10^{{-2}})$ = {eff_text}")


def overlay_roc(sources: list[OverlaySource], out_dir: Path, filename: str,
                score: str = "") -> list[Path]:
    """Draw ``out_dir/<filename>.{pdf,png}`` and write ``<filename>.json`` (the summary: per
    project the score, why it was chosen, AUC, eps_s at eps_b = 1e-2 and 1e-3, and the curve)."""
    check_sources(sources)
    entries, curves = zip(*(project_summary(s, score) for s in sources), strict=True)
    with hep_style():
        fig, ax = new_figure()
        for i, (entry, curve) in enumerate(zip(entries, curves, strict=True)):
            ax.plot(curve.eps_b, curve.eps_s, color="black" if i == 0 else color(i - 1, False),
                    lw=3.0 if i == 0 else 2.0, label=_legend(entry))
        _finish_roc(ax, list(curves), rlabel="all signals, each project's chosen score",
                    legend_rows=len(entries) + 1)
        base = Path(out_dir) / safe_name(filename)
        written = save_figure(fig, base)
    summary_path = base.parent / f"{base.name}.json"
    atomic_write_json(summary_path, {
        "signal": "all signal samples together, against all background",
        "working_points": [efficiency_key(e) for e in WORKING_POINTS],
        "curve_note": f"eps_s at {CURVE_POINTS} log-spaced eps_b, linear between ROC points",
        "projects": list(entries),
    })
    return [*written, summary_path]
