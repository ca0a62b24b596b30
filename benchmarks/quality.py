"""Detection quality: BEAD next to simple baselines, on the same events and splits.

    python benchmarks/quality.py                      # generate (or reuse) the sample, run all
    python benchmarks/quality.py --models default,NSF_Density --workspaces /scratch/ws

The sample (generated once with ``bead -m generate``, then reused: ``generate`` keeps its own
finished files) is three QCD generators (pythia, a14, vincia) x (10,000 ``bkg_train`` + 5,000
``bkg_test``) events and four SVJ points of 5,000 events each: (2 TeV, r_inv 0.3),
(3 TeV, r_inv 0.5), (3 TeV, r_inv 0.7, democratic decays), (1.5 TeV, r_inv 0.5, democratic),
generation seed 11. It is prepared once with the default preparation settings.

For every signal point the table gives AUC and signal efficiency at background efficiency
1e-2 and 1e-3 of
(a) each single physics observable (as a cut in its better direction),
(b) scikit-learn's IsolationForest and a 16-component Gaussian mixture on the event + jet
    features a density model reads (bead.models.density.density_inputs),
(c) a supervised HistGradientBoosting classifier trained with signal labels on half of each
    signal sample (the ceiling an unsupervised method can approach), scored on the other half,
(d) every BEAD model family with its default loss, and (e) BEAD's default config,
plus, for each BEAD model, the largest |AUC - 0.5| between two QCD generators on its primary
score (the enrichment claim: near 0 means it does not tell the generators apart). Unsupervised
methods are scored on the whole signal sample, the supervised one on its held-out half.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.mixture import GaussianMixture

from bead.config import Config, make_config, save_config
from bead.evaluation.metrics import roc_summary
from bead.levels import LevelLayout
from bead.models.density import density_columns, density_inputs
from bead.pipeline import RunOptions, run_mode
from bead.prepare.manifest import prepared_dir, read_manifest
from bead.project import ProjectPaths, workspaces_root
from bead.training.data import load_sample

WORKSPACE = "quality"
SAMPLE = {
    "gen_bkg_train_events": 10000, "gen_bkg_test_events": 5000, "gen_sig_events": 5000,
    "gen_seed": 11,
    "gen_signal_points": [
        {"zprime_mass": 2000.0, "rinv": 0.3},
        {"zprime_mass": 3000.0, "rinv": 0.5},
        {"zprime_mass": 3000.0, "rinv": 0.7, "decay": "democratic"},
        {"zprime_mass": 1500.0, "rinv": 0.5, "decay": "democratic"},
    ],
}
# One configuration per BEAD model family, each with its default loss, and the default config.
FAMILIES: dict[str, dict[str, Any]] = {
    "default": {},
    "AE": {"model_name": "AE", "loss_function": "AELoss", "input_level": "jet"},
    "ConvVAE": {"model_name": "ConvVAE", "loss_function": "VAELoss", "input_level": "jet"},
    "Planar_ConvVAE": {"model_name": "Planar_ConvVAE", "loss_function": "VAEFlowLoss",
                       "input_level": "jet"},
    "DeepSetsVAE": {"model_name": "DeepSetsVAE", "loss_function": "VAELoss",
                    "input_level": "constituent"},
    "SetVAE": {"model_name": "SetVAE", "loss_function": "VAELoss",
               "input_level": "event+jet+constituent"},
    "MAF_Density": {"model_name": "MAF_Density", "loss_function": "FlowNLLLoss",
                    "input_level": "event+jet"},
    "NSF_Density": {"model_name": "NSF_Density", "loss_function": "FlowNLLLoss",
                    "input_level": "event+jet"},
}
WORKING_POINTS = ("1e-02", "1e-03")


def _run(paths: ProjectPaths, mode: str, options: str | None = None) -> None:
    run_mode(RunOptions(mode=mode, project=(paths.workspace, paths.project), options=options,
                        workspaces=str(paths.root), progress=False))


def prepare_sample(root: Path) -> tuple[Config, Path]:
    """Generate (or reuse), convert and prepare the sample; return its config and tensors."""
    paths = ProjectPaths(root, WORKSPACE, "sample")
    _run(paths, "new_project")
    config = make_config(SAMPLE, source="benchmark sample")
    save_config(config, paths.config_file)
    _run(paths, "chain", "generate_convertcsv_prepareinputs")
    return config, prepared_dir(paths.tensors_dir, config)


def _summary(bkg: np.ndarray, sig: np.ndarray) -> dict[str, Any]:
    label = np.r_[np.zeros(len(bkg)), np.ones(len(sig))]
    return roc_summary(label, np.r_[bkg, sig], np.ones(len(label)))


def baselines(tensors: Path, seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """(a)-(c) of the module docstring: {signal: {method: roc summary}}."""
    manifest = read_manifest(tensors)
    levels = ("event", "jet")

    def load(entry: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        batch, raw = load_sample(tensors, entry, levels)
        layout = {lv: LevelLayout(batch[lv].x.shape[1], tuple(manifest.features[lv]))
                  for lv in levels}
        x = density_inputs(batch, density_columns(layout, levels)).numpy().astype(np.float64)
        is_val = raw["is_val"].numpy() if "is_val" in raw else None
        return x, raw["observables"].numpy(), is_val

    train = [load(e) for e in manifest.of_flag("bkg_train")]
    x_train = np.concatenate([x for x, _, _ in train])
    x_fit = x_train[~np.concatenate([v for _, _, v in train])]
    bkg = [load(e) for e in manifest.of_flag("bkg_test")]
    x_bkg, obs_bkg = np.concatenate([x for x, _, _ in bkg]), np.concatenate([o for _, o, _ in bkg])
    gmm = GaussianMixture(16, covariance_type="full", reg_covar=1e-3, random_state=seed,
                          max_iter=300).fit(x_fit)
    forest = IsolationForest(n_estimators=300, random_state=seed).fit(x_fit)
    gmm_bkg, forest_bkg = -gmm.score_samples(x_bkg), -forest.score_samples(x_bkg)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in manifest.of_flag("sig_test"):
        x_sig, obs_sig, _ = load(entry)
        rows: dict[str, dict[str, Any]] = {}
        for k, name in enumerate(manifest.observables):
            up = _summary(obs_bkg[:, k], obs_sig[:, k])
            rows[f"obs_{name}"] = up if up["auc"] >= 0.5 else \
                _summary(-obs_bkg[:, k], -obs_sig[:, k])
        rows["GaussianMixture"] = _summary(gmm_bkg, -gmm.score_samples(x_sig))
        rows["IsolationForest"] = _summary(forest_bkg, -forest.score_samples(x_sig))
        half = len(x_sig) // 2
        clf = HistGradientBoostingClassifier(max_iter=300, random_state=seed)
        clf.fit(np.r_[x_train, x_sig[:half]], np.r_[np.zeros(len(x_train)), np.ones(half)])
        rows["supervised (HGB)"] = _summary(clf.predict_proba(x_bkg)[:, 1],
                                            clf.predict_proba(x_sig[half:])[:, 1])
        out[entry.stem] = rows
    return out


def bead_model(root: Path, name: str, overrides: dict[str, Any], sample: Config,
               epochs: int | None) -> tuple[dict[str, Any], float]:
    """Train and score one BEAD configuration on the sample's preparation."""
    paths = ProjectPaths(root, WORKSPACE, name)
    _run(paths, "new_project")
    values = {**sample.model_dump(), **overrides}
    if epochs is not None:
        values["epochs"] = epochs
    save_config(make_config(values, source=f"benchmark {name}"), paths.config_file)
    start = time.perf_counter()
    _run(paths, "chain", "train_detect")
    seconds = time.perf_counter() - start
    metrics = json.loads((paths.results_dir / "metrics.json").read_text())
    return metrics, seconds


def _fmt(entry: dict[str, Any]) -> str:
    eff = entry.get("eff_s") or {}
    cells = [entry.get("auc"), *(eff.get(wp) for wp in WORKING_POINTS)]
    return " | ".join("—" if c is None else f"{c:.3f}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", default=None, help="workspaces folder (default: "
                        "$BEAD_WORKSPACES or ./workspaces)")
    parser.add_argument("--models", default=",".join(FAMILIES),
                        help="comma-separated BEAD configurations: " + ", ".join(FAMILIES))
    parser.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the baselines")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    root = workspaces_root(args.workspaces)
    torch.manual_seed(args.seed)

    sample, tensors = prepare_sample(root)
    table = baselines(tensors, args.seed)
    separation: dict[str, float] = {}
    timing: dict[str, float] = {}
    for name in [m for m in args.models.split(",") if m]:
        metrics, timing[name] = bead_model(root, name, FAMILIES[name], sample, args.epochs)
        primary = metrics["primary_score"]
        label = f"BEAD {name} ({primary})"
        for signal, rows in table.items():
            rows[label] = metrics["per_signal"][primary][signal]
        pairs = metrics["generator_separation"][primary].values()
        separation[label] = max(abs(v - 0.5) for v in pairs if v is not None)

    for signal, rows in table.items():
        print(f"\n### {signal}\n")
        print("| method | AUC | eff_s @ 1e-2 | eff_s @ 1e-3 |\n|---|---|---|---|")
        for method, entry in sorted(rows.items(), key=lambda kv: -(kv[1]["auc"] or 0)):
            print(f"| {method} | {_fmt(entry)} |")
    print("\n| BEAD model | generator separation max abs(AUC - 0.5) | train + detect [s] |")
    print("|---|---|---|")
    for label, value in separation.items():
        name = label.split(" ")[1]
        print(f"| {label} | {value:.3f} | {timing[name]:.0f} |")
    if args.out is not None:
        args.out.write_text(json.dumps({"table": table, "separation": separation,
                                        "seconds": timing}, indent=1, default=float))


if __name__ == "__main__":
    main()
