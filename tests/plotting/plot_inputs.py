"""Synthetic detect/train outputs that follow the on-disk contract (history.json, scores.h5,
metrics.json), so the plotting stage can be tested without training anything."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from sklearn.metrics import roc_auc_score

GENERATORS = ["a14", "pythia", "vincia"]
SIGNALS = ["sig_test_svj_rinv03", "sig_test_svj_rinv05"]
SCORES = ["total", "reco", "kl"]


def write_history(results_dir: Path, epochs: int = 12) -> Path:
    ep = np.arange(1, epochs + 1)
    train = {"total": 2.0 / ep + 0.3, "reco": 1.8 / ep + 0.25, "kl": 0.2 / np.sqrt(ep)}
    val = {k: v * 1.05 + 0.01 for k, v in train.items()}
    data = {"epoch": ep.tolist(), "lr": [1e-3] * 6 + [1e-4] * (epochs - 6),
            "train": {k: v.tolist() for k, v in train.items()},
            "val": {k: v.tolist() for k, v in val.items()},
            "best_epoch": epochs - 2, "seconds": 12.5, "events_per_second": 4321.0}
    path = results_dir / "history.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_scores(results_dir: Path, n_bkg: int = 300, n_sig: int = 150, seed: int = 0) -> Path:
    """Background per generator, then each signal; signal scores and latents are shifted."""
    rng = np.random.default_rng(seed)
    sample_names = [f"bkg_test_{g}" for g in GENERATORS] + SIGNALS
    generator_names = [*GENERATORS, "svj"]
    label, sample, gen, shift = [], [], [], []
    for i, _ in enumerate(GENERATORS):
        label += [0] * n_bkg
        sample += [i] * n_bkg
        gen += [i] * n_bkg
        shift += [0.0] * n_bkg
    for j, _ in enumerate(SIGNALS):
        label += [1] * n_sig
        sample += [len(GENERATORS) + j] * n_sig
        gen += [len(GENERATORS)] * n_sig
        shift += [1.0 + j] * n_sig
    shift = np.asarray(shift)
    n = len(label)
    latent = rng.normal(size=(n, 12)) + shift[:, None] * np.linspace(0.5, 0, 12)
    scores = {"reco": np.exp(rng.normal(size=n) + shift),
              "kl": rng.gamma(2.0, 1.0, size=n) + 0.5 * shift}
    scores["total"] = scores["reco"] + scores["kl"]
    path = results_dir / "scores.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["label"] = np.asarray(label, dtype=np.int8)
        f["weight"] = rng.uniform(0.5, 1.5, size=n).astype(np.float32)
        f["evt_id"] = np.arange(n, dtype=np.int64)
        f["sample_index"] = np.asarray(sample, dtype=np.int16)
        f["generator_index"] = np.asarray(gen, dtype=np.int16)
        f["latent"] = latent.astype(np.float32)
        for name in SCORES:
            f[f"scores/{name}"] = scores[name].astype(np.float32)
        f.attrs["sample_names"] = json.dumps(sample_names)
        f.attrs["generator_names"] = json.dumps(generator_names)
        f.attrs["signal_samples"] = json.dumps(SIGNALS)
    return path


def write_metrics(results_dir: Path) -> Path:
    """AUCs computed with sklearn from scores.h5; efficiencies are fixed placeholder numbers."""
    with h5py.File(results_dir / "scores.h5", "r") as f:
        label, weight, sample = f["label"][()], f["weight"][()], f["sample_index"][()]
        gen = f["generator_index"][()]
        scores = {k: f["scores"][k][()] for k in f["scores"]}

    def entry(score, sig, bkg):
        sel = sig | bkg
        auc = roc_auc_score(sig[sel], score[sel], sample_weight=weight[sel]) if sig.any() else None
        return {"auc": auc, "eff_s": {"1e-01": 0.61, "1e-02": 0.1234, "1e-03": 0.0456,
                                             "1e-04": None}, "max_sic": 2.5}

    bkg = label == 0
    signals = {s: (label == 1) & (sample == len(GENERATORS) + j) for j, s in enumerate(SIGNALS)}
    signals["all_signals"] = label == 1
    data = {"scores": SCORES, "signals": SIGNALS, "generators": GENERATORS,
            "per_signal": {k: {s: entry(v, m, bkg) for s, m in signals.items()}
                           for k, v in scores.items()},
            "per_generator": {k: {g: {s: entry(v, m, bkg & (gen == i))
                                      for s, m in signals.items()}
                                  for i, g in enumerate(GENERATORS)}
                              for k, v in scores.items()},
            "generator_separation": {k: {"a14_vs_pythia": 0.5012, "a14_vs_vincia": 0.4987,
                                         "pythia_vs_vincia": 0.5101} for k in scores}}
    path = results_dir / "metrics.json"
    path.write_text(json.dumps(data))
    return path


def write_all(results_dir: Path, **kwargs) -> Path:
    write_history(results_dir)
    write_scores(results_dir, **kwargs)
    write_metrics(results_dir)
    return results_dir
