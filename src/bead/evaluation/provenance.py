"""Which trained model and which prepared inputs a set of results was computed from.

detect records a provenance object in ``scores.h5`` (an attribute) and in ``metrics.json`` (the
top-level ``provenance``): the SHA-256 of the ``models/best.pt`` it scored, the model spec of
``model.json`` and the prepared data's identity. Every mode that reads results another mode
wrote (plot, the ROC overlay of other projects) first compares them with the project's current
``models/`` through :func:`stale_reason`, so a report can never show one model's training
history beside another model's scores: stale results are named, with the mode to rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bead.errors import DataError
from bead.evaluation.scores import SCORES_FILE, read_scores_provenance
from bead.fileio import file_sha256

if TYPE_CHECKING:
    from bead.prepare.manifest import Manifest

METRICS_FILE = "metrics.json"
PROVENANCE = "provenance"
# The file names of bead.training.checkpoint, which owns models/. Repeated here because importing
# it loads torch, which plot does not otherwise need; a test checks that both agree.
MODEL_JSON = "model.json"
BEST = "best.pt"


def read_json_object(path: Path, mode: str) -> dict[str, Any]:
    """A JSON object written by ``mode``; DataError naming the file when missing or unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: not found (run {mode} first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read JSON: {err}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def model_identity(models_dir: Path) -> dict[str, Any]:
    """The SHA-256 of ``best.pt`` and the content of ``model.json``; DataError if either is
    missing or unreadable."""
    models_dir = Path(models_dir)
    spec = read_json_object(models_dir / MODEL_JSON, "train")
    if not (models_dir / BEST).is_file():
        raise DataError(f"{models_dir / BEST}: not found (run train first)")
    return {"model_sha256": file_sha256(models_dir / BEST), "model_spec": spec}


def make_provenance(models_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """What detect records: the model it scores and the prepared inputs it reads.

    ``prepared_key`` is the per-preparation key where the manifest has one (read tolerantly:
    older manifests do not), ``prepared_folder`` the folder the tensors came from.
    """
    key = getattr(manifest, "prepared_key", None) or manifest.settings.get("prepared_key")
    return {**model_identity(models_dir), "scalers_sha256": manifest.scalers_sha256,
            "prepared_key": key, "prepared_folder": manifest.path.parent.name}


def read_metrics(results_dir: Path) -> dict[str, Any]:
    """The metrics detect recorded; DataError naming the file when missing or not an object."""
    return read_json_object(Path(results_dir) / METRICS_FILE, "detect")


def stale_reason(results_dir: Path, models_dir: Path) -> str | None:
    """Why the results in ``results_dir`` cannot be trusted beside ``models_dir``, or None.

    Results are current when scores.h5 and metrics.json record the same provenance and it names
    the ``best.pt`` (by SHA-256) and ``model.json`` that are there now. Results without a
    provenance (an older bead) cannot be checked and count as stale.
    """
    results_dir, models_dir = Path(results_dir), Path(models_dir)
    scores, metrics = results_dir / SCORES_FILE, results_dir / METRICS_FILE
    for path in (scores, metrics):
        if not path.is_file():
            return f"{path}: not found (run detect first)"
    recorded = read_scores_provenance(scores)
    if recorded is None:
        return (f"{scores} does not record which model it scored (written by an older bead): "
                "run detect")
    if read_metrics(results_dir).get(PROVENANCE) != recorded:
        return f"{metrics} and {SCORES_FILE} come from different detect runs: run detect"
    try:
        current = model_identity(models_dir)
    except DataError as err:
        return f"{err}; cannot tell which model {scores} came from"
    if current["model_spec"] != recorded.get("model_spec"):
        return (f"{scores} was computed with another {MODEL_JSON} than the one in {models_dir} "
                "(trained again since detect?): run detect")
    if current["model_sha256"] != recorded.get("model_sha256"):
        return (f"{scores} scored another {BEST} than the one in {models_dir} (trained again "
                "since detect?): run detect")
    return None
