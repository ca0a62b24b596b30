"""Scoring of the test samples with the trained model (SPEC §9).

The model is rebuilt from ``models/model.json`` with the weights of ``best.pt`` and run in eval
mode (a VAE uses its posterior mean), so two runs give identical scores. Every loss component is
a per-event score; the loss is the one the model was trained with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bead.config import Config
from bead.errors import DataError
from bead.evaluation.enrichment import enrichment_metrics
from bead.evaluation.metrics import compute_metrics, signed_observables
from bead.evaluation.provenance import METRICS_FILE, PROVENANCE, make_provenance
from bead.evaluation.scores import LATENT_VIEWS, SCORES_FILE, ScoreTable, write_scores
from bead.fileio import atomic_write_json
from bead.levels import parse_levels
from bead.losses.objective import Objective
from bead.models.base import BeadModel
from bead.models.batch import Batch
from bead.prepare.manifest import Manifest, SampleEntry, read_manifest
from bead.training.checkpoint import ModelSpec, load_trained_model
from bead.training.data import holdout_generators, load_sample
from bead.training.runtime import Runtime, deterministic_algorithms, make_runtime, seed_everything
from bead.training.trainer import EVAL_BATCH, batch_slices

log = logging.getLogger(__name__)


def score_events(
    model: BeadModel, objective: Objective, inputs: Batch, runtime: Runtime,
    batch_size: int = EVAL_BATCH, on_batch: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-event loss components and latents of ``inputs`` (kept on the CPU, batches sent to
    the device one at a time so memory stays bounded).

    The latents are ``latent`` (the representation scores and plots use) and each of the
    model's ``LATENT_VIEWS`` that it returns.
    """
    model.eval()
    scores: dict[str, list[np.ndarray]] = {}
    latents: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for idx in batch_slices(len(inputs), batch_size):
            batch = inputs.select(idx).to(runtime.device)
            result = objective.step(model, batch)
            out = result.output
            if out.latent is None:
                raise DataError(f"model {type(model).__name__} returned no latent vector")
            for name, values in result.components.items():
                scores.setdefault(name, []).append(values.float().cpu().numpy())
            views = {"latent": out.latent, **{v: getattr(out, v) for v in LATENT_VIEWS}}
            for name, tensor in views.items():
                if tensor is not None:
                    latents.setdefault(name, []).append(tensor.float().cpu().numpy())
            if on_batch is not None:
                on_batch(len(idx))
    return ({name: np.concatenate(parts) for name, parts in scores.items()},
            {name: np.concatenate(parts) for name, parts in latents.items()})


def _check_shape(inputs: Batch, spec: ModelSpec, entry: SampleEntry) -> None:
    for level in spec.levels:
        got = tuple(inputs[level].x.shape[1:])
        expected = (spec.layout[level].n_slots, spec.layout[level].n_features)
        if got != expected:
            raise DataError(f"sample '{entry.stem}' has {level} inputs of shape {list(got)} "
                            f"but the model was trained on {list(expected)} (rerun "
                            "prepare_inputs or train)")


def _warn_on_config_drift(config: Config, spec: ModelSpec) -> None:
    for key, now, trained in (
            ("model_name", config.model_name, spec.model_name),
            ("loss_function", config.loss_function, spec.loss_function),
            ("input_level", "+".join(parse_levels(config.input_level)), "+".join(spec.levels)),
            ("latent_space_size", config.latent_space_size, spec.latent_dim),
            ("holdout_generator", config.holdout_generator, spec.holdout_generator)):
        if now != trained:
            log.warning("config %s = %r but the trained model used %r; scoring the trained "
                        "model (retrain to apply the config)", key, now, trained)


def detect(
    config: Config, tensors_dir: Path, models_dir: Path, results_dir: Path,
    progress: bool = True, runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Score every bkg_test and sig_test sample; write scores.h5 and metrics.json.

    Returns the metrics. Without a signal sample the scores are still written and the metrics
    only hold the generator separation.
    """
    runtime = runtime or make_runtime(config)
    tensors_dir, results_dir = Path(tensors_dir), Path(results_dir)
    model, spec = load_trained_model(Path(models_dir), runtime.device)
    _warn_on_config_drift(config, spec)
    objective = spec.objective()
    manifest = read_manifest(tensors_dir)
    if manifest.scalers_sha256 != spec.scalers_sha256:
        raise DataError(f"{manifest.path}: the inputs were prepared with other scalers than the "
                        "model was trained on (prepare_inputs ran again with other settings or "
                        "training data); rerun train, or prepare_inputs as before training")
    provenance = make_provenance(Path(models_dir), manifest)
    background, signals = manifest.of_flag("bkg_test"), manifest.of_flag("sig_test")
    if not background:
        raise DataError(f"{manifest.path}: no bkg_test sample to score (add bkg_test_*.csv "
                        "files and rerun convert_csv and prepare_inputs)")
    if not signals:
        log.warning("no sig_test sample: writing background scores and generator separation "
                    "only")
    entries = background + signals
    generator_names = list(manifest.generators)
    generator_names += sorted({e.generator for e in entries} - set(generator_names))

    columns: dict[str, list[np.ndarray]] = {}
    score_parts: dict[str, list[np.ndarray]] = {}
    observable_parts: dict[str, list[np.ndarray]] = {}
    columns_bar = (TextColumn("[bold]detect"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("events"), TimeElapsedColumn())
    bar = Progress(*columns_bar, console=Console(stderr=True), disable=not progress)
    with deterministic_algorithms(config.deterministic_algorithm), bar:
        seed_everything(config.seed)
        task = bar.add_task("detect", total=sum(e.n_events for e in entries))
        for index, entry in enumerate(entries):
            inputs, tensors = load_sample(tensors_dir, entry, spec.levels)
            log.debug("scoring %s from %s: %s", entry.stem, tensors_dir / entry.file,
                      ", ".join(f"{lv} {list(inputs[lv].x.shape)}" for lv in spec.levels))
            _check_shape(inputs, spec, entry)
            scores, latents = score_events(
                model, objective, inputs, runtime, max(EVAL_BATCH, config.batch_size),
                on_batch=lambda n: bar.advance(task, n))
            n, is_signal = len(inputs), entry.flag == "sig_test"
            for key, values in (
                ("label", np.full(n, int(is_signal), np.int8)),
                ("weight", inputs.weight.numpy()),
                ("evt_id", inputs.evt_id.numpy()),
                ("sample_index", np.full(n, index, np.int16)),
                ("generator_index", np.full(n, generator_names.index(entry.generator),
                                            np.int16)),
                *latents.items(),
            ):
                columns.setdefault(key, []).append(values)
            for name, values in scores.items():
                score_parts.setdefault(name, []).append(values)
            raw = _observables(tensors, manifest.observables, entry, n)
            for name, values in raw.items():
                observable_parts.setdefault(name, []).append(values)
            log.info("scored %s: %d events", entry.stem, n)
    merged = {key: np.concatenate(parts) for key, parts in columns.items()}
    table = ScoreTable(
        **{key: merged.pop(key) for key in list(merged) if key not in LATENT_VIEWS},
        scores={name: np.concatenate(parts) for name, parts in score_parts.items()},
        sample_names=[e.stem for e in entries], generator_names=generator_names,
        signal_samples=[e.stem for e in signals], latents=merged, provenance=provenance,
        observables={name: np.concatenate(parts) for name, parts in observable_parts.items()})
    write_scores(results_dir / SCORES_FILE, table)
    metrics = compute_metrics(table, primary_score=objective.primary_score,
                              bootstrap_resamples=config.bootstrap_resamples, seed=config.seed)
    metrics["enrichment"] = _enrichment(table, metrics, manifest, spec)
    metrics[PROVENANCE] = provenance
    for warning in metrics["warnings"]:
        log.warning("%s", warning)
    atomic_write_json(results_dir / METRICS_FILE, metrics)
    if signals:
        area = metrics["per_signal"][objective.primary_score]["all_signals"]["auc"]
        log.info("wrote %s and %s (AUC of the primary score '%s', all signals: %s)",
                 SCORES_FILE, METRICS_FILE, objective.primary_score,
                 "n/a" if area is None else f"{area:.4f}")
    return metrics


def _observables(tensors: dict[str, torch.Tensor], names: list[str], entry: SampleEntry,
                 n: int) -> dict[str, np.ndarray]:
    """The raw observables of one sample's tensor file, by name."""
    values = tensors.get("observables")
    if values is None or tuple(values.shape) != (n, len(names)):
        raise DataError(f"sample '{entry.stem}': its observables do not match the manifest "
                        "(rerun prepare_inputs)")
    return {name: values[:, i].numpy() for i, name in enumerate(names)}


def _enrichment(table: ScoreTable, metrics: dict[str, Any], manifest: Manifest,
                spec: ModelSpec) -> dict[str, Any] | None:
    """The enrichment test of a model trained without its ``holdout_generator`` (else None):
    every score and observable at the cuts placed on the generators it was trained on."""
    holdout = list(holdout_generators(spec.holdout_generator))
    if not holdout:
        return None
    seen = sorted({e.generator for e in manifest.of_flag("bkg_train")} - set(holdout))
    observables, _ = signed_observables(table)
    section = enrichment_metrics(table, {**table.scores, **observables}, holdout, seen)
    for name in section["missing"]:
        log.warning("holdout_generator %s has no bkg_test events: the enrichment test cannot "
                    "measure it", name)
    primary = section["per_score"].get(metrics["primary_score"], {})
    for name, entry in primary.items():
        cut = entry["eff_b"].get("1e-02")
        if cut is not None:
            log.info("enrichment: held-out %s passes %.3g of its events at the 1e-02 cut on %s "
                     "(%.2f x nominal)", name, cut["eff_b_holdout"], ", ".join(seen),
                     cut["ratio"])
    return section
