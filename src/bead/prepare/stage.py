"""The ``prepare_inputs`` stage: store files -> model-ready tensors, scalers and manifest (SPEC §6).

For every store file it keeps the leading jets and constituents (``bead.prepare.select``), builds
the raw features of each level (``bead.prepare.features``) and normalises them
(``bead.prepare.scalers``). Each ``bkg_train`` sample gets a seeded train/validation split
(``is_val``); the scalers are fitted on the real slots of the *training* split of all
``bkg_train`` samples together and applied unchanged to every sample, so validation, test and
signal events are scaled exactly alike and never leak into the fit.

Outputs (all written atomically, the manifest last): ``<stem>.safetensors`` per sample,
``scalers.json`` and ``manifest.json`` in ``tensors_dir`` (their layout is in the README).
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from safetensors.torch import save_file

from bead.config import Config
from bead.errors import DataError
from bead.fileio import staged_folder
from bead.io.events import EventChunk
from bead.io.samples import FLAGS, SampleName, parse_sample_name
from bead.io.store import read_store, store_suffix
from bead.levels import parse_levels
from bead.prepare.features import LEVELS, LevelFeatures, build_features
from bead.prepare.manifest import (
    MANIFEST,
    SCALERS,
    Manifest,
    SampleEntry,
    preparation_key,
    preparation_settings,
)
from bead.prepare.observables import OBSERVABLES, observables
from bead.prepare.scalers import LevelScaler, Scalers
from bead.prepare.select import Selection, select_leading
from bead.stats import MIN_FIT_EVENTS, MIN_VALIDATION_EVENTS

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SampleSummary:
    """What happened to one sample: counts of everything kept, padded, truncated or dropped."""

    name: SampleName
    source: str  # store file name
    file: str  # tensor file name
    n_events: int
    n_jets: int
    n_jets_dropped: int  # beyond num_jets
    n_events_padded: int  # events with fewer jets than num_jets
    n_constits: int
    n_constits_truncated: int  # beyond num_constits in a kept jet
    n_constits_in_dropped_jets: int
    n_val: int  # validation events (bkg_train only, else 0)


@dataclass(frozen=True)
class PrepareResult:
    tensors_dir: Path
    manifest_path: Path
    scalers_path: Path
    generators: list[str]
    features: dict[str, list[str]]  # columns of the written tensors, per level
    samples: list[SampleSummary]


@dataclass
class _Sample:
    """One sample between reading and writing: its raw features and bookkeeping."""

    name: SampleName
    source: str
    weight: np.ndarray
    evt_id: np.ndarray
    features: dict[str, LevelFeatures]
    observables: np.ndarray  # [N, len(OBSERVABLES)] raw
    summary: SampleSummary
    is_val: np.ndarray | None


def find_store_files(store_dir: Path, file_type: str) -> list[tuple[Path, SampleName]]:
    """The store files of ``store_dir`` with their parsed sample names, bkg_train first."""
    store_dir = Path(store_dir)
    suffix = store_suffix(file_type)
    if not store_dir.is_dir():
        raise DataError(f"{store_dir}: store folder does not exist (run convert_csv first)")
    paths = sorted(p for p in store_dir.glob(f"*{suffix}")
                   if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise DataError(f"{store_dir}: no {suffix} store files (run convert_csv first)")
    found = []
    for path in paths:
        try:
            name = parse_sample_name(path.name.removesuffix(suffix) + ".csv")
        except DataError:
            raise DataError(f"{path}: store file name must look like "
                            f"<bkg_train|bkg_test|sig_test>_<generator>[_<tag>]{suffix}") from None
        found.append((path, name))
    if not any(name.flag == "bkg_train" for _, name in found):
        raise DataError(f"{store_dir}: no bkg_train_*{suffix} sample to train and fit scalers on")
    return sorted(found, key=lambda item: (FLAGS.index(item[1].flag), item[1].stem))


def split_validation(n_events: int, train_size: float, seed: int, stem: str) -> np.ndarray:
    """Seeded ``is_val`` mask: a ``1 - train_size`` share of the events, at least one event on
    each side when there are two or more. The stem enters the seed, so samples of different
    generators are not split by the same permutation."""
    rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
    n_train = round(train_size * n_events)
    if n_events >= 2:
        n_train = min(max(n_train, 1), n_events - 1)
    is_val = np.ones(n_events, dtype=bool)
    is_val[rng.permutation(n_events)[:n_train]] = False
    return is_val


def _load(path: Path, name: SampleName, config: Config) -> _Sample:
    chunk = read_store(path)
    log.debug("read %s: %d events, %d jets, %d constituents", path, chunk.n_events,
              chunk.n_jets, chunk.n_constits)
    if chunk.n_events == 0:
        raise DataError(f"{path}: store file has no events")
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite features are reported below
        sel = select_leading(chunk, config.num_jets, config.num_constits)
        features = build_features(chunk, sel, config.input_features)
        raw_observables = observables(chunk, sel)
    _check_finite(path, features, chunk.evt_id)
    is_val = None
    if name.flag == "bkg_train":
        is_val = split_validation(chunk.n_events, config.train_size, config.seed, name.stem)
    summary = _summarise(path, name, chunk, sel, is_val, config)
    return _Sample(name, path.name, chunk.evt_weight, chunk.evt_id, features, raw_observables,
                   summary, is_val)


def _check_finite(path: Path, features: dict[str, LevelFeatures], evt_id: np.ndarray) -> None:
    """Unphysical inputs (say |eta| in the hundreds) overflow derived features such as the jet
    energy; name the first such event and feature rather than fail later inside a scaler."""
    for level, feats in features.items():
        bad = ~np.isfinite(feats.values)
        if bad.any():
            first = np.argwhere(bad)[0]
            n_events = int(bad.reshape(len(bad), -1).any(axis=1).sum())
            raise DataError(
                f"{path}: event {int(evt_id[first[0]])}: {level} feature "
                f"'{feats.names[first[-1]]}' is not finite ({n_events} event(s) affected); "
                "check the input values of these events")


def _summarise(path: Path, name: SampleName, chunk: EventChunk, sel: Selection,
               is_val: np.ndarray | None, config: Config) -> SampleSummary:
    summary = SampleSummary(
        name=name, source=path.name, file=f"{name.stem}.safetensors", n_events=chunk.n_events,
        n_jets=chunk.n_jets, n_jets_dropped=sel.n_jets_dropped,
        n_events_padded=int((chunk.num_jets < config.num_jets).sum()),
        n_constits=chunk.n_constits, n_constits_truncated=sel.n_constits_truncated,
        n_constits_in_dropped_jets=sel.n_constits_in_dropped_jets,
        n_val=int(is_val.sum()) if is_val is not None else 0,
    )
    no_jets = int((chunk.num_jets == 0).sum())
    if no_jets and "event" not in parse_levels(config.input_level):
        log.warning("%s: %d events have no jet: at input_level '%s' they give the model nothing "
                    "to reconstruct, so their reconstruction score is 0 (they are kept)",
                    name.stem, no_jets, config.input_level)
    log.info(
        "%s: %d events%s; jets: %d kept, %d beyond num_jets=%d dropped, %d events with fewer "
        "jets padded; constituents: %d kept, %d beyond num_constits=%d truncated, %d in "
        "dropped jets", name.stem, summary.n_events,
        f" ({summary.n_val} validation)" if is_val is not None else "",
        summary.n_jets - summary.n_jets_dropped, summary.n_jets_dropped, config.num_jets,
        summary.n_events_padded,
        summary.n_constits - summary.n_constits_truncated - summary.n_constits_in_dropped_jets,
        summary.n_constits_truncated, config.num_constits, summary.n_constits_in_dropped_jets,
    )
    return summary


def _warn_on_low_statistics(train: list[_Sample]) -> None:
    n_val = sum(int(s.is_val.sum()) for s in train if s.is_val is not None)
    n_fit = sum(s.summary.n_events for s in train) - n_val
    if n_fit < MIN_FIT_EVENTS:
        log.warning("the scalers are fitted on only %d bkg_train training events (fewer than "
                    "%d): the normalisation follows statistical noise; use more events",
                    n_fit, MIN_FIT_EVENTS)
    if n_val < MIN_VALIDATION_EVENTS:
        log.warning("only %d bkg_train validation events (fewer than %d): early stopping and "
                    "the learning-rate schedule will follow noise; use more events or a "
                    "smaller train_size", n_val, MIN_VALIDATION_EVENTS)


def fit_scalers(config: Config, train_samples: list[_Sample]) -> Scalers:
    """Fit each level's scaler on the real slots of the training split of ``train_samples``."""
    levels = {}
    for level in LEVELS:
        rows = []
        for sample in train_samples:
            feats = sample.features[level]
            mask = feats.mask if sample.is_val is None else feats.mask & ~_expand(
                sample.is_val, feats.mask.ndim)
            rows.append(feats.values[mask])
        first = train_samples[0].features[level]
        levels[level] = LevelScaler.fit(config.normalizations, np.concatenate(rows), first.names,
                                        first.kinds, seed=config.seed, level=level)
    return Scalers(config.normalizations, levels)


def _expand(per_event: np.ndarray, ndim: int) -> np.ndarray:
    return per_event.reshape(-1, *([1] * (ndim - 1)))


def sample_tensors(sample: _Sample, scalers: Scalers) -> dict[str, torch.Tensor]:
    """The normalised tensors of one sample, named as in the tensor file."""
    out: dict[str, np.ndarray] = {}
    for level, key, mask_key in (("constituent", "constituents", "constituent_mask"),
                                 ("jet", "jets", "jet_mask"), ("event", "events", None)):
        feats = sample.features[level]
        values = scalers[level].transform(feats.values, feats.mask)
        if not np.isfinite(values).all():
            raise DataError(f"{sample.source}: non-finite {level} features after "
                            f"'{scalers.normalizations}' normalisation")
        out[key] = values
        if mask_key is not None:
            out[mask_key] = feats.mask
    out["observables"] = sample.observables
    out["weight"] = sample.weight.astype(np.float32)
    out["evt_id"] = sample.evt_id.astype(np.int64)
    if sample.is_val is not None:
        out["is_val"] = sample.is_val
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def prepare_inputs(config: Config, store_dir: Path, tensors_dir: Path,
                   progress: bool = True) -> PrepareResult:
    """Build tensors, scalers and manifest for every store file of ``store_dir``.

    Everything is staged and moved into ``tensors_dir`` only when every sample succeeded, the
    manifest last: a failure leaves the previous preparation whole.
    """
    tensors_dir = Path(tensors_dir)
    files = find_store_files(store_dir, config.file_type)
    with staged_folder(tensors_dir, last=(MANIFEST,)) as staging:
        return _prepare(config, files, staging, tensors_dir, progress)


def _prepare(config: Config, files: list[tuple[Path, SampleName]], staging: Path,
             tensors_dir: Path, progress: bool) -> PrepareResult:
    summaries: list[SampleSummary] = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("prepare_inputs", total=len(files) + 1)
        train = []
        for path, name in files:
            if name.flag == "bkg_train":
                bar.update(task, description=f"reading {name.stem}")
                train.append(_load(path, name, config))
        bar.update(task, description="fitting scalers", advance=1)
        _warn_on_low_statistics(train)
        scalers = fit_scalers(config, train)
        for path, name in files:
            bar.update(task, description=f"writing {name.stem}")
            sample = train.pop(0) if name.flag == "bkg_train" else _load(path, name, config)
            tensors = sample_tensors(sample, scalers)
            log.debug("writing %s: %s", sample.summary.file,
                      ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))
            save_file(tensors, str(staging / sample.summary.file),
                      # one key: safetensors writes a metadata dict in no fixed order, and
                      # the same inputs must give the same bytes (the stem holds the flag)
                      metadata={"stem": name.stem})
            summaries.append(sample.summary)
            bar.advance(task)

    features = {level: scalers[level].output_names for level in LEVELS}
    generators = sorted({s.name.generator for s in summaries if s.name.flag != "sig_test"})
    scalers.save(staging / SCALERS)
    Manifest(
        path=staging / MANIFEST, generators=generators,
        # Ties a trained model to these inputs: the same scalers give the same tensors.
        scalers_sha256=hashlib.sha256((staging / SCALERS).read_bytes()).hexdigest(),
        settings=preparation_settings(config),
        features=features, observables=list(OBSERVABLES), key=preparation_key(config),
        samples=[SampleEntry(stem=s.name.stem, flag=s.name.flag, generator=s.name.generator,
                             tag=s.name.tag, file=s.file, n_events=s.n_events, source=s.source)
                 for s in summaries],
    ).write()
    log.info("prepared %d samples in %s (features: %s)", len(summaries), tensors_dir,
             ", ".join(f"{k} {len(v)}" for k, v in features.items()))
    return PrepareResult(tensors_dir, tensors_dir / MANIFEST, tensors_dir / SCALERS, generators,
                         features, summaries)
