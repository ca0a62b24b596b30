"""Synthetic train/detect outputs that follow the on-disk contract (models/, history.json,
scores.h5 with provenance and latent views, metrics.json from the real metrics code), so the
plotting stage can be tested without training anything. benchmarks/plot.py builds its
demo-sized inputs with the same functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bead.evaluation.metrics import compute_metrics
from bead.evaluation.provenance import model_identity
from bead.evaluation.scores import ScoreTable, read_scores
from bead.evaluation.scores import write_scores as write_score_file

GENERATORS = ["a14", "pythia", "vincia"]
SIGNALS = ["sig_test_svj_rinv03", "sig_test_svj_rinv05"]
SMALL_SIGNALS = SIGNALS[:1]
SCORES = ["total", "reco", "kl"]
LATENT_DIM = 12


def write_models(models_dir: Path, version: str = "first") -> Path:
    """A stand-in for train's models/: model.json and a best.pt whose bytes name ``version``."""
    models_dir.mkdir(parents=True, exist_ok=True)
    spec = {"model_name": "Planar_ConvVAE", "n_slots": 2, "n_features": 11,
            "latent_dim": LATENT_DIM, "input_level": "jet", "loss_function": "VAEFlowLoss",
            "reg_param": 0.001, "model_init": "xavier", "scalers_sha256": "toy-scalers"}
    (models_dir / "model.json").write_text(json.dumps(spec))
    (models_dir / "best.pt").write_bytes(f"weights of the {version} model".encode())
    return models_dir


def write_history(results_dir: Path, epochs: int = 12,
                  components: list[str] | None = None) -> Path:
    ep = np.arange(1, epochs + 1)
    train = {"total": 2.0 / ep + 0.3, "reco": 1.8 / ep + 0.25, "kl": 0.2 / np.sqrt(ep)}
    for i, name in enumerate(components or []):
        train.setdefault(name, (0.5 + 0.1 * i) / np.sqrt(ep))
    val = {k: v * 1.05 + 0.01 for k, v in train.items()}
    data = {"epoch": ep.tolist(), "lr": [1e-3] * 6 + [1e-4] * (epochs - 6),
            "train": {k: v.tolist() for k, v in train.items()},
            "val": {k: v.tolist() for k, v in val.items()},
            "best_epoch": epochs - 2, "seconds": 12.5, "events_per_second": 4321.0}
    path = results_dir / "history.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def provenance_of(models_dir: Path) -> dict[str, Any]:
    """What detect would record for the models in ``models_dir``."""
    return {**model_identity(models_dir), "scalers_sha256": "toy-scalers", "prepared_key": None,
            "prepared_folder": "processed"}


def write_scores(results_dir: Path, n_bkg: int = 300, n_sig: int = 150, seed: int = 0,
                 signals: list[str] | None = None, scores: list[str] | None = None,
                 views: bool = True, models_dir: Path | None = None) -> Path:
    """Background per generator, then each signal; signal scores and latents are shifted.

    ``scores`` beyond total/reco/kl are extra noisy scores (names ``obs_*`` act as single
    observables); ``views`` adds z0 (= mu), zk and logvar as a flow VAE's detect writes them.
    """
    rng = np.random.default_rng(seed)
    signals = SIGNALS if signals is None else signals
    names = SCORES if scores is None else scores
    generator_names = [*GENERATORS, "svj"]
    label = np.repeat([0] * len(GENERATORS) + [1] * len(signals),
                      [n_bkg] * len(GENERATORS) + [n_sig] * len(signals)).astype(np.int8)
    sample = np.repeat(np.arange(len(GENERATORS) + len(signals)),
                       [n_bkg] * len(GENERATORS) + [n_sig] * len(signals)).astype(np.int16)
    gen = np.minimum(sample, len(GENERATORS)).astype(np.int16)
    shift = np.where(label == 1, 1.0 + sample - len(GENERATORS), 0.0)
    n = len(label)
    mu = rng.normal(size=(n, LATENT_DIM)) + shift[:, None] * np.linspace(0.5, 0, LATENT_DIM)
    values = {"reco": np.exp(rng.normal(size=n) + shift),
              "kl": rng.gamma(2.0, 1.0, size=n) + 0.5 * shift}
    values["total"] = values["reco"] + values["kl"]
    for i, name in enumerate(names):
        if name not in values:
            values[name] = rng.normal(size=n) + (0.3 + 0.1 * i) * shift
    latents = {}
    if views:
        latents = {"z0": mu, "mu": mu, "zk": np.tanh(mu) + 0.1 * mu,
                   "logvar": -1.0 - 0.3 * shift[:, None] + 0.1 * rng.normal(size=mu.shape)}
    table = ScoreTable(
        label=label, weight=rng.uniform(0.5, 1.5, size=n), evt_id=np.arange(n),
        sample_index=sample, generator_index=gen,
        latent=latents.get("zk", mu), scores={k: values[k] for k in names},
        sample_names=[f"bkg_test_{g}" for g in GENERATORS] + signals,
        generator_names=generator_names, signal_samples=signals, latents=latents,
        provenance=provenance_of(models_dir) if models_dir is not None else None)
    path = results_dir / "scores.h5"
    write_score_file(path, table)
    return path


def write_metrics(results_dir: Path, **extra: Any) -> Path:
    """metrics.json as detect computes it from scores.h5 (with its provenance), plus ``extra``
    top-level keys (primary_score, observables, warnings, sculpting, ...)."""
    table = read_scores(results_dir / "scores.h5")
    metrics = compute_metrics(table)
    if table.provenance is not None:
        metrics["provenance"] = table.provenance
    metrics.update(extra)
    path = results_dir / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


def write_all(results_dir: Path, epochs: int = 12, metrics: dict[str, Any] | None = None,
              **kwargs: Any) -> Path:
    """models/ beside ``results_dir``, then history.json (with a component per score that is
    not an observable), scores.h5 and metrics.json."""
    models_dir = write_models(results_dir.parent / "models")
    components = [s for s in kwargs.get("scores") or [] if not s.startswith("obs_")]
    write_history(results_dir, epochs=epochs, components=components)
    write_scores(results_dir, models_dir=models_dir, **kwargs)
    write_metrics(results_dir, **(metrics or {}))
    return results_dir
