"""Per-event scores of the test samples: ``results/scores.h5`` (formats §5), read and written.

Plots and metrics read this file, so it holds everything they need: labels, weights, sample and
generator indices (with their names as root attributes), latents and one dataset per score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from bead.errors import DataError
from bead.fileio import atomic_path

_COLUMNS = {"label": np.int8, "weight": np.float32, "evt_id": np.int64,
            "sample_index": np.int16, "generator_index": np.int16, "latent": np.float32}


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

    def __len__(self) -> int:
        return len(self.label)


def write_scores(path: Path, table: ScoreTable) -> None:
    """Write ``table`` atomically with fixed dtypes (compressed, chunked)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for name, dtype in _COLUMNS.items():
            data = np.ascontiguousarray(getattr(table, name), dtype=dtype)
            h5.create_dataset(name, data=data, compression="gzip", compression_opts=4,
                              chunks=True if len(data) else None)
        group = h5.create_group("scores")
        for name, values in table.scores.items():
            data = np.ascontiguousarray(values, dtype=np.float32)
            group.create_dataset(name, data=data, compression="gzip", compression_opts=4,
                                 chunks=True if len(data) else None)
        h5.attrs["sample_names"] = json.dumps(table.sample_names)
        h5.attrs["generator_names"] = json.dumps(table.generator_names)
        h5.attrs["signal_samples"] = json.dumps(table.signal_samples)


def read_scores(path: Path) -> ScoreTable:
    """Read a ``scores.h5`` written by detect; DataError when it is missing or incomplete."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no scores found (run detect first)")
    try:
        with h5py.File(path, "r") as h5:
            columns = {name: h5[name][()] for name in _COLUMNS}
            scores = {name: h5["scores"][name][()] for name in h5["scores"]}
            names = {key: json.loads(h5.attrs[key])
                     for key in ("sample_names", "generator_names", "signal_samples")}
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable or incomplete scores file ({err})") from None
    return ScoreTable(**columns, scores=scores, **names)
