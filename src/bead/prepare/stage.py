"""The ``prepare_inputs`` stage: store files -> model-ready tensors, scalers and manifest (SPEC §6).

For every store file it keeps the leading jets and constituents (``bead.prepare.select``), builds
the raw features of each level (``bead.prepare.features``) and normalises them
(``bead.prepare.scalers``). Each ``bkg_train`` sample gets a seeded train/validation split
(``is_val``); the scalers are fitted on the real slots of the *training* split of all
``bkg_train`` samples together (a seeded subsample of ``FIT_EVENTS`` events when there are more)
and applied unchanged to every sample, so validation, test and signal events are scaled exactly
alike and never leak into the fit.

Store files are read ``CHUNK_EVENTS`` events at a time, in two passes over ``bkg_train`` (fit,
then write) and one over the others, so memory stays bounded whatever the sample size; each
chunk becomes one tensor file (shard) of its sample.

Outputs (all written atomically, the manifest last): ``<stem>.safetensors`` per sample (and
``<stem>.part<k>.safetensors`` for its further shards), ``scalers.json`` and ``manifest.json``
in ``tensors_dir`` (their layout is in the README).
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from bead.io.store import count_store_events, iter_store, store_suffix
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

# Events read, prepared and written at a time: each chunk of a sample is one tensor file (shard),
# so memory stays bounded whatever the sample size (README: "Data larger than memory").
CHUNK_EVENTS = 16384
# The scalers are fitted on at most this many bkg_train training events (a seeded subsample
# above it): about a million constituent rows at the default 2 x 15 slots.
FIT_EVENTS = 32768
FIT_SALT = 0x5CA1E  # keeps the subsample's random stream apart from the split's

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
    files: tuple[str, ...] = ()  # every tensor file (shard) of the sample, in event order


@dataclass(frozen=True)
class PrepareResult:
    tensors_dir: Path
    manifest_path: Path
    scalers_path: Path
    generators: list[str]
    features: dict[str, list[str]]  # columns of the written tensors, per level
    samples: list[SampleSummary]


@dataclass
class _Part:
    """One chunk of a sample between reading and writing: its raw features and bookkeeping."""

    weight: np.ndarray
    evt_id: np.ndarray
    features: dict[str, LevelFeatures]
    observables: np.ndarray  # [N, len(OBSERVABLES)] raw
    is_val: np.ndarray | None


@dataclass
class _Counts:
    """What a sample's chunks kept, padded, truncated or dropped, summed over the chunks."""

    n_events: int = 0
    n_jets: int = 0
    n_jets_dropped: int = 0
    n_events_padded: int = 0
    n_constits: int = 0
    n_constits_truncated: int = 0
    n_constits_in_dropped_jets: int = 0
    n_no_jets: int = 0

    def add(self, chunk: EventChunk, sel: Selection, num_jets: int) -> None:
        self.n_events += chunk.n_events
        self.n_jets += chunk.n_jets
        self.n_jets_dropped += sel.n_jets_dropped
        self.n_events_padded += int((chunk.num_jets < num_jets).sum())
        self.n_constits += chunk.n_constits
        self.n_constits_truncated += sel.n_constits_truncated
        self.n_constits_in_dropped_jets += sel.n_constits_in_dropped_jets
        self.n_no_jets += int((chunk.num_jets == 0).sum())


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


@dataclass
class _Plan:
    """One store file to prepare: its sample, size, split and the events the scalers see."""

    path: Path
    name: SampleName
    n_events: int
    is_val: np.ndarray | None = None  # bkg_train only
    fit: np.ndarray | None = None  # bkg_train only: training events in the scalers' subsample
    counts: _Counts = field(default_factory=_Counts)
    files: list[str] = field(default_factory=list)


def _plan(path: Path, name: SampleName, config: Config) -> _Plan:
    n_events = count_store_events(path)
    if n_events == 0:
        raise DataError(f"{path}: store file has no events")
    plan = _Plan(path, name, n_events)
    if name.flag == "bkg_train":
        plan.is_val = split_validation(n_events, config.train_size, config.seed, name.stem)
    return plan


def choose_fit_events(plans: list[_Plan], seed: int, limit: int) -> None:
    """Mark the bkg_train training events the scalers are fitted on: all of them up to
    ``limit``, else a seeded random ``limit`` of them (sampled over all files together), so
    fitting needs bounded memory whatever the sample size."""
    train = [~p.is_val for p in plans if p.is_val is not None]
    n_train = sum(int(t.sum()) for t in train)
    chosen = np.ones(n_train, dtype=bool)
    if n_train > limit:
        chosen[:] = False
        chosen[np.random.default_rng([seed, FIT_SALT]).choice(n_train, limit, replace=False)] = True
        log.info("fitting the scalers on a seeded subsample of %d of the %d bkg_train training "
                 "events", limit, n_train)
    offset = 0
    for plan in (p for p in plans if p.is_val is not None):
        fit = np.zeros(plan.n_events, dtype=bool)
        rows = np.flatnonzero(~plan.is_val)
        fit[rows] = chosen[offset:offset + len(rows)]
        plan.fit, offset = fit, offset + len(rows)


def _chunks(plan: _Plan, config: Config) -> Iterator[tuple[_Part, EventChunk, Selection]]:
    """The prepared chunks of one store file, CHUNK_EVENTS events at a time."""
    start = 0
    for chunk in iter_store(plan.path, CHUNK_EVENTS):
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite features: see below
            sel = select_leading(chunk, config.num_jets, config.num_constits)
            features = build_features(chunk, sel, config.input_features)
            raw_observables = observables(chunk, sel)
        _check_finite(plan.path, features, chunk.evt_id)
        stop = start + chunk.n_events
        is_val = None if plan.is_val is None else plan.is_val[start:stop]
        yield _Part(chunk.evt_weight, chunk.evt_id, features, raw_observables, is_val), chunk, sel
        start = stop
    if start != plan.n_events:
        raise DataError(f"{plan.path}: read {start} events, its metadata says {plan.n_events}")


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


def _summarise(plan: _Plan, config: Config) -> SampleSummary:
    name, counts = plan.name, plan.counts
    summary = SampleSummary(
        name=name, source=plan.path.name, file=plan.files[0], n_events=counts.n_events,
        n_jets=counts.n_jets, n_jets_dropped=counts.n_jets_dropped,
        n_events_padded=counts.n_events_padded, n_constits=counts.n_constits,
        n_constits_truncated=counts.n_constits_truncated,
        n_constits_in_dropped_jets=counts.n_constits_in_dropped_jets,
        n_val=int(plan.is_val.sum()) if plan.is_val is not None else 0,
        files=tuple(plan.files),
    )
    if counts.n_no_jets and "event" not in parse_levels(config.input_level):
        log.warning("%s: %d events have no jet: at input_level '%s' they give the model nothing "
                    "to reconstruct, so their reconstruction score is 0 (they are kept)",
                    name.stem, counts.n_no_jets, config.input_level)
    log.info(
        "%s: %d events%s; jets: %d kept, %d beyond num_jets=%d dropped, %d events with fewer "
        "jets padded; constituents: %d kept, %d beyond num_constits=%d truncated, %d in "
        "dropped jets", name.stem, summary.n_events,
        f" ({summary.n_val} validation)" if plan.is_val is not None else "",
        summary.n_jets - summary.n_jets_dropped, summary.n_jets_dropped, config.num_jets,
        summary.n_events_padded,
        summary.n_constits - summary.n_constits_truncated - summary.n_constits_in_dropped_jets,
        summary.n_constits_truncated, config.num_constits, summary.n_constits_in_dropped_jets,
    )
    return summary


def _warn_on_low_statistics(train: list[_Plan]) -> None:
    n_val = sum(int(p.is_val.sum()) for p in train if p.is_val is not None)
    n_fit = sum(p.n_events for p in train) - n_val
    if n_fit < MIN_FIT_EVENTS:
        log.warning("the scalers are fitted on only %d bkg_train training events (fewer than "
                    "%d): the normalisation follows statistical noise; use more events",
                    n_fit, MIN_FIT_EVENTS)
    if n_val < MIN_VALIDATION_EVENTS:
        log.warning("only %d bkg_train validation events (fewer than %d): early stopping and "
                    "the learning-rate schedule will follow noise; use more events or a "
                    "smaller train_size", n_val, MIN_VALIDATION_EVENTS)


def fit_scalers(config: Config, train: list[_Plan]) -> Scalers:
    """Fit each level's scaler on the real slots of the bkg_train events chosen by
    :func:`choose_fit_events`, gathered chunk by chunk."""
    rows: dict[str, list[np.ndarray]] = {level: [] for level in LEVELS}
    names: dict[str, LevelFeatures] = {}
    for plan in train:
        start = 0
        for part, _, _ in _chunks(plan, config):
            fit = plan.fit[start:start + len(part.evt_id)]
            start += len(part.evt_id)
            for level in LEVELS:
                feats = part.features[level]
                names.setdefault(level, feats)
                rows[level].append(feats.values[feats.mask & _expand(fit, feats.mask.ndim)])
    levels = {}
    for level in LEVELS:
        first = names[level]
        levels[level] = LevelScaler.fit(config.normalizations, np.concatenate(rows[level]),
                                        first.names, first.kinds, seed=config.seed, level=level)
        rows[level].clear()
    return Scalers(config.normalizations, levels)


def _expand(per_event: np.ndarray, ndim: int) -> np.ndarray:
    return per_event.reshape(-1, *([1] * (ndim - 1)))


def sample_tensors(part: _Part, scalers: Scalers, source: str) -> dict[str, torch.Tensor]:
    """The normalised tensors of one chunk of a sample, named as in the tensor file."""
    out: dict[str, np.ndarray] = {}
    for level, key, mask_key in (("constituent", "constituents", "constituent_mask"),
                                 ("jet", "jets", "jet_mask"), ("event", "events", None)):
        feats = part.features[level]
        values = scalers[level].transform(feats.values, feats.mask)
        if not np.isfinite(values).all():
            raise DataError(f"{source}: non-finite {level} features after "
                            f"'{scalers.normalizations}' normalisation")
        out[key] = values
        if mask_key is not None:
            out[mask_key] = feats.mask
    out["observables"] = part.observables
    out["weight"] = part.weight.astype(np.float32)
    out["evt_id"] = part.evt_id.astype(np.int64)
    if part.is_val is not None:
        out["is_val"] = part.is_val
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def shard_name(stem: str, index: int) -> str:
    """The tensor file of a sample's ``index``-th shard: ``<stem>.safetensors`` for the first
    (often only) one, ``<stem>.part<index>.safetensors`` for the others."""
    return f"{stem}.safetensors" if index == 0 else f"{stem}.part{index}.safetensors"


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
    plans = [_plan(path, name, config) for path, name in files]
    train = [p for p in plans if p.name.flag == "bkg_train"]
    _warn_on_low_statistics(train)
    choose_fit_events(train, config.seed, FIT_EVENTS)
    written: dict[str, str] = {}  # tensor file -> sample stem, to refuse a clash of names
    with Progress(disable=not progress) as bar:
        task = bar.add_task("prepare_inputs", total=sum(p.n_events for p in plans) + 1)
        bar.update(task, description="fitting scalers")
        scalers = fit_scalers(config, train)
        bar.advance(task)
        for plan in plans:
            bar.update(task, description=f"writing {plan.name.stem}")
            for index, (part, chunk, sel) in enumerate(_chunks(plan, config)):
                plan.counts.add(chunk, sel, config.num_jets)
                file = shard_name(plan.name.stem, index)
                if file in written:
                    raise DataError(f"{plan.path}: its tensor file {file} would replace one of "
                                    f"sample '{written[file]}'; rename one of the two")
                written[file] = plan.name.stem
                tensors = sample_tensors(part, scalers, plan.path.name)
                log.debug("writing %s: %s", file,
                          ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))
                save_file(tensors, str(staging / file),
                          # one key: safetensors writes a metadata dict in no fixed order, and
                          # the same inputs must give the same bytes (the stem holds the flag)
                          metadata={"stem": plan.name.stem})
                plan.files.append(file)
                bar.advance(task, chunk.n_events)
    summaries = [_summarise(plan, config) for plan in plans]

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
                             tag=s.name.tag, file=s.file, n_events=s.n_events, source=s.source,
                             files=s.files)
                 for s in summaries],
    ).write()
    log.info("prepared %d samples in %s (features: %s)", len(summaries), tensors_dir,
             ", ".join(f"{k} {len(v)}" for k, v in features.items()))
    return PrepareResult(tensors_dir, tensors_dir / MANIFEST, tensors_dir / SCALERS, generators,
                         features, summaries)
