"""metrics.json, the one input of the plots without a reader in the stage that writes it.

history.json and scores.h5 are read by ``bead.training.history.read_history`` and
``bead.evaluation.scores.read_scores``; the names here locate them in a results folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bead.errors import DataError

HISTORY = "history.json"
SCORES = "scores.h5"
METRICS = "metrics.json"


def load_metrics(results_dir: Path) -> dict[str, Any]:
    """The metrics detect recorded; DataError naming the file when missing or not an object."""
    path = Path(results_dir) / METRICS
    if not path.is_file():
        raise DataError(f"{path}: not found (run detect first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read JSON: {err}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def lookup_auc(metrics: dict[str, Any], score: str, sample: str,
               generator: str | None = None) -> float | None:
    """The AUC recorded by detect for (score, sample[, background generator]), if present."""
    try:
        if generator is None:
            entry = metrics["per_signal"][score][sample]
        else:
            entry = metrics["per_generator"][score][generator][sample]
        return float(entry["auc"]) if entry.get("auc") is not None else None
    except (KeyError, TypeError):
        return None
