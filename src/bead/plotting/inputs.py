"""Readers for what train and detect leave on disk (history.json, scores.h5, metrics.json).

A missing or malformed file is a DataError that names the file and the mode that writes it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bead.errors import DataError

log = logging.getLogger(__name__)

HISTORY = "history.json"
SCORES = "scores.h5"
METRICS = "metrics.json"
_MADE_BY = {HISTORY: "train", SCORES: "detect", METRICS: "detect"}


def _require(results_dir: Path, name: str) -> Path:
    path = Path(results_dir) / name
    if not path.is_file():
        raise DataError(f"{path}: not found (run {_MADE_BY[name]} first)")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read JSON: {err}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


@dataclass(frozen=True)
class History:
    """Per-epoch means of every loss component, as written by train."""

    epoch: np.ndarray
    lr: np.ndarray
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    best_epoch: int | None
    seconds: float | None
    events_per_second: float | None


def load_history(results_dir: Path) -> History:
    path = _require(results_dir, HISTORY)
    data = _read_json(path)
    try:
        epoch = np.asarray(data["epoch"], dtype=float)
        series = {part: {k: np.asarray(v, dtype=float) for k, v in data[part].items()}
                  for part in ("train", "val")}
        lr = np.asarray(data.get("lr", []), dtype=float)
    except KeyError as err:
        raise DataError(f"{path}: missing key {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: malformed history: {err}") from None
    for part, comps in series.items():
        for name, values in comps.items():
            if len(values) != len(epoch):
                raise DataError(f"{path}: {part}.{name} has {len(values)} values for "
                                f"{len(epoch)} epochs")
    best = data.get("best_epoch")
    return History(epoch=epoch, lr=lr, train=series["train"], val=series["val"],
                   best_epoch=int(best) if best is not None else None,
                   seconds=data.get("seconds"), events_per_second=data.get("events_per_second"))


@dataclass(frozen=True)
class Group:
    """One background generator or one signal sample: a name and its event mask."""

    name: str
    mask: np.ndarray
    is_signal: bool


@dataclass(frozen=True)
class ScoreTable:
    """Per-event detect output: labels, weights, provenance, latents and one array per score."""

    label: np.ndarray
    weight: np.ndarray
    sample_index: np.ndarray
    generator_index: np.ndarray
    latent: np.ndarray
    scores: dict[str, np.ndarray]
    sample_names: list[str]
    generator_names: list[str]

    @property
    def is_signal(self) -> np.ndarray:
        return self.label == 1

    def background_groups(self) -> list[Group]:
        """One group per background generator present, in generator-label order."""
        bkg = ~self.is_signal
        groups = []
        for g in np.unique(self.generator_index[bkg]):
            name = self.generator_names[g] if g < len(self.generator_names) else f"gen{g}"
            groups.append(Group(name, bkg & (self.generator_index == g), False))
        return groups

    def signal_groups(self) -> list[Group]:
        """One group per signal sample present, named by its file stem."""
        sig = self.is_signal
        groups = []
        for s in np.unique(self.sample_index[sig]):
            name = self.sample_names[s] if s < len(self.sample_names) else f"sample{s}"
            groups.append(Group(name, sig & (self.sample_index == s), True))
        return groups


_DATASETS = ("label", "weight", "sample_index", "generator_index", "latent")


def load_scores(results_dir: Path) -> ScoreTable:
    path = _require(results_dir, SCORES)
    try:
        with h5py.File(path, "r") as f:
            missing = [n for n in (*_DATASETS, "scores") if n not in f]
            if missing:
                raise DataError(f"{path}: missing dataset {missing[0]!r}")
            arrays = {n: f[n][()] for n in _DATASETS}
            scores = {n: np.asarray(f["scores"][n][()], dtype=float) for n in f["scores"]}
            names = {k: json.loads(f.attrs.get(k, "[]")) for k in
                     ("sample_names", "generator_names")}
    except OSError as err:
        raise DataError(f"{path}: cannot read HDF5: {err}") from None
    n = len(arrays["label"])
    for name, values in [*arrays.items(), *scores.items()]:
        if len(values) != n:
            raise DataError(f"{path}: {name} has {len(values)} rows, label has {n}")
    if not scores:
        raise DataError(f"{path}: group 'scores' is empty")
    return ScoreTable(label=arrays["label"].astype(np.int8),
                      weight=arrays["weight"].astype(float),
                      sample_index=arrays["sample_index"].astype(int),
                      generator_index=arrays["generator_index"].astype(int),
                      latent=np.asarray(arrays["latent"], dtype=float).reshape(n, -1),
                      scores=scores, sample_names=list(names["sample_names"]),
                      generator_names=list(names["generator_names"]))


def load_metrics(results_dir: Path) -> dict[str, Any]:
    return _read_json(_require(results_dir, METRICS))


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
