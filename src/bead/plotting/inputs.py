"""Where the plots' inputs live in a results folder, and how to read metrics.json's entries.

history.json, scores.h5 and metrics.json are read by ``bead.training.history.read_history``,
``bead.evaluation.scores.read_scores`` and ``bead.evaluation.provenance.read_metrics``. The
helpers here read metrics.json tolerantly (``.get``): keys such as ``primary_score``,
``observables``, ``low_stats`` or ``sculpting`` are shown when present and skipped when not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bead.evaluation.provenance import METRICS_FILE
from bead.evaluation.provenance import read_metrics as load_metrics
from bead.evaluation.scores import SCORES_FILE

__all__ = ["HISTORY", "METRICS", "SCORES", "load_metrics", "lookup_auc", "observables",
           "primary_score", "summary_entry"]

HISTORY = "history.json"
SCORES = SCORES_FILE
METRICS = METRICS_FILE
OBSERVABLE_PREFIX = "obs_"
DEFAULT_SCORE = "total"


def summary_entry(metrics: dict[str, Any], score: str, sample: str,
                  generator: str | None = None) -> dict[str, Any]:
    """metrics.json's summary of (score, sample[, background generator]); {} when absent."""
    try:
        if generator is None:
            entry = metrics["per_signal"][score][sample]
        else:
            entry = metrics["per_generator"][score][generator][sample]
    except (KeyError, TypeError):
        return {}
    return entry if isinstance(entry, dict) else {}


def lookup_auc(metrics: dict[str, Any], score: str, sample: str,
               generator: str | None = None) -> float | None:
    """The AUC recorded by detect for (score, sample[, background generator]), if present."""
    auc = summary_entry(metrics, score, sample, generator).get("auc")
    return float(auc) if auc is not None else None


def observables(metrics: dict[str, Any] | None, names: Iterable[str]) -> list[str]:
    """The scores among ``names`` that are single physics observables, not model scores."""
    listed = set((metrics or {}).get("observables") or [])
    return [n for n in names if n in listed or n.startswith(OBSERVABLE_PREFIX)]


def primary_score(metrics: dict[str, Any] | None, names: Iterable[str]) -> str:
    """The score a user should cut on: metrics.json's ``primary_score``, else ``total``, else
    the first model score."""
    names = list(names)
    chosen = (metrics or {}).get("primary_score")
    if chosen in names:
        return str(chosen)
    if DEFAULT_SCORE in names:
        return DEFAULT_SCORE
    models = [n for n in names if n not in observables(metrics, names)]
    return (models or names or [DEFAULT_SCORE])[0]
