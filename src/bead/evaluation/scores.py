"""Per-event scores of the test samples: ``results/scores.h5`` (formats §5), read and written.

Plots and metrics read this file, so it holds everything they need: labels, weights, sample and
generator indices (with their names as root attributes), latents and one dataset per score.
Optional parts: the model's other latent views (``z0``, ``zk``, ``mu``, ``logvar``, where the
model has them) and a ``provenance`` attribute naming the model and inputs that were scored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bead.errors import DataError
from bead.fileio import atomic_path

_COLUMNS = {"label": np.int8, "weight": np.float32, "evt_id": np.int64,
            "sample_index": np.int16, "generator_index": np.int16, "latent": np.float32}
_NAMES = ("sample_names", "generator_names", "signal_samples")
LATENT_VIEWS = ("z0", "zk", "mu", "logvar")  # optional [N, L] datasets, ModelOutput's names
PROVENANCE_ATTR = "provenance"
SCORES_FILE = "scores.h5"
_CHUNK_ROWS = 4096  # rows per HDF5 chunk of every dataset


@dataclass(frozen=True)
class Group:
    """One background generator or one signal sample: a name and its event mask."""

    name: str
    mask: np.ndarray
    is_signal: bool


@dataclass
class ScoreTable:
    """Scored events of all test samples; ``sample_index`` / ``generator_index`` point into
    ``sample_names`` / ``generator_names``; label 1 marks signal."""

    label: np.ndarray
    weight: np.ndarray
    evt_id: np.ndarray
    sample_index: np.ndarray
    generator_index: np.ndarray
    latent: np.ndarray
    scores: dict[str, np.ndarray]
    sample_names: list[str]
    generator_names: list[str]
    signal_samples: list[str]
    # Raw single physics observables per event (bead.prepare.observables), no model involved.
    observables: dict[str, np.ndarray] = field(default_factory=dict)
    latents: dict[str, np.ndarray] = field(default_factory=dict)  # LATENT_VIEWS present
    provenance: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.label)

    @property
    def is_signal(self) -> np.ndarray:
        return self.label == 1

    def background_groups(self) -> list[Group]:
        """One group per background generator present, in generator-index order."""
        bkg = ~self.is_signal
        return [Group(_name(self.generator_names, g, "gen"), bkg & (self.generator_index == g),
                      False) for g in np.unique(self.generator_index[bkg])]

    def signal_groups(self) -> list[Group]:
        """One group per signal sample present, named by its file stem."""
        sig = self.is_signal
        return [Group(_name(self.sample_names, s, "sample"), sig & (self.sample_index == s), True)
                for s in np.unique(self.sample_index[sig])]


def _name(names: list[str], index: int, fallback: str) -> str:
    return names[index] if index < len(names) else f"{fallback}{index}"


def write_scores(path: Path, table: ScoreTable) -> None:
    """Write ``table`` atomically with fixed dtypes (compressed, chunked)."""
    with scores_writer(path) as writer:
        writer.append(table)
        writer.finish(table)


@contextlib.contextmanager
def scores_writer(path: Path) -> Iterator[ScoresWriter]:
    """A :class:`ScoresWriter` on a temporary file that becomes ``path`` only when the block
    ends without an error (nothing half-written is ever left at ``path``)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        yield ScoresWriter(h5)


class ScoresWriter:
    """``scores.h5`` written part by part (detect appends each shard's events as it scores
    them, so the file never has to be held whole): extendible, gzip-compressed datasets."""

    def __init__(self, h5: h5py.File) -> None:
        self.h5 = h5
        h5.create_group("scores")
        h5.create_group("observables")

    def _append(self, name: str, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=_COLUMNS.get(name, np.float32))
        if name not in self.h5:
            self.h5.create_dataset(
                name, shape=(0, *data.shape[1:]), maxshape=(None, *data.shape[1:]),
                dtype=data.dtype, chunks=(_CHUNK_ROWS, *data.shape[1:]), compression="gzip",
                compression_opts=4)
        dataset = self.h5[name]
        start = dataset.shape[0]
        dataset.resize(start + len(data), axis=0)
        dataset[start:] = data

    def append(self, part: ScoreTable) -> None:
        """Add the events of ``part`` after those already written."""
        for name in _COLUMNS:
            self._append(name, getattr(part, name))
        for name, values in part.scores.items():
            self._append(f"scores/{name}", values)
        for name, values in part.observables.items():
            self._append(f"observables/{name}", values)
        for name in LATENT_VIEWS:
            if name in part.latents:
                self._append(name, part.latents[name])

    def finish(self, table: ScoreTable) -> None:
        """Write the names and provenance of ``table`` (the whole file's)."""
        if table.provenance is not None:
            self.h5.attrs[PROVENANCE_ATTR] = json.dumps(table.provenance)
        for key in _NAMES:
            self.h5.attrs[key] = json.dumps(getattr(table, key))


def read_scores(path: Path) -> ScoreTable:
    """Read a ``scores.h5`` written by detect; DataError naming the file when it is missing,
    incomplete or inconsistent (datasets of different lengths, no scores)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (run detect first)")
    try:
        with h5py.File(path, "r") as h5:
            missing = [name for name in (*_COLUMNS, "scores") if name not in h5]
            if missing:
                raise DataError(f"{path}: missing dataset {missing[0]!r}")
            missing = [key for key in _NAMES if key not in h5.attrs]
            if missing:
                raise DataError(f"{path}: missing attribute {missing[0]!r}")
            columns = {name: h5[name][()] for name in _COLUMNS}
            scores = {name: h5["scores"][name][()] for name in h5["scores"]}
            observables = ({name: h5["observables"][name][()] for name in h5["observables"]}
                           if "observables" in h5 else {})
            latents = {name: h5[name][()] for name in LATENT_VIEWS if name in h5}
            names = {key: json.loads(h5.attrs[key]) for key in _NAMES}
            provenance = _provenance(h5.attrs)
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable scores file ({err})") from None
    n = len(columns["label"])
    for name, values in [*columns.items(), *scores.items(), *observables.items(),
                         *latents.items()]:
        if len(values) != n:
            raise DataError(f"{path}: {name} has {len(values)} rows, label has {n}")
    if not scores:
        raise DataError(f"{path}: group 'scores' is empty")
    return ScoreTable(**columns, scores=scores, **names, observables=observables,
                      latents=latents, provenance=provenance)


def _provenance(attrs: Any) -> dict[str, Any] | None:
    raw = attrs.get(PROVENANCE_ATTR)
    value = json.loads(raw) if raw is not None else None
    return value if isinstance(value, dict) else None


def read_scores_provenance(path: Path) -> dict[str, Any] | None:
    """Only the provenance attribute of a scores file (None when absent), without its data."""
    try:
        with h5py.File(path, "r") as h5:
            return _provenance(h5.attrs)
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable scores file ({err})") from None
