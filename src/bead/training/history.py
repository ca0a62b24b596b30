"""Per-epoch training history (SPEC §8): every loss component's epoch mean, train and val.

Written after every epoch, atomically, so an interrupted run keeps what it learned so far. Also
written in the original BEAD's form (``*_epoch_loss_data.npy``, the total loss per epoch).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bead.errors import DataError
from bead.fileio import atomic_path, atomic_write_json, atomic_write_text


@dataclass
class History:
    """Epoch-indexed lists, in the layout of ``results/history.json``; best_epoch 0 = none yet.
    ``weights``: the loss weights and settings in force in each epoch (annealing changes them)."""

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train: dict[str, list[float]] = field(default_factory=dict)
    val: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    seconds: float = 0.0
    events_per_second: float = 0.0
    weights: dict[str, list[float]] = field(default_factory=dict)

    def append(
        self, epoch: int, lr: float, train: dict[str, float], val: dict[str, float],
        weights: dict[str, float] | None = None,
    ) -> None:
        weights = weights or {}
        if self.epoch and (set(train) != set(self.train) or set(val) != set(self.val)
                           or set(weights) != set(self.weights)):
            raise ValueError("loss components changed between epochs")
        self.epoch.append(epoch)
        self.lr.append(lr)
        for target, values in ((self.train, train), (self.val, val), (self.weights, weights)):
            for name, value in values.items():
                target.setdefault(name, []).append(value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(**data)

    def to_csv(self) -> str:
        components, weights = list(self.train), list(self.weights)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["epoch", "lr", *(f"train_{c}" for c in components),
                         *(f"val_{c}" for c in components), *(f"weight_{w}" for w in weights)])
        for i, epoch in enumerate(self.epoch):
            writer.writerow([epoch, repr(self.lr[i]), *(repr(self.train[c][i]) for c in components),
                             *(repr(self.val[c][i]) for c in components),
                             *(repr(self.weights[w][i]) for w in weights)])
        return out.getvalue()

    def write(self, results_dir: Path) -> None:
        """history.json, history.csv and the original's train/val total-loss .npy files."""
        results_dir = Path(results_dir)
        atomic_write_json(results_dir / "history.json", self.to_dict())
        atomic_write_text(results_dir / "history.csv", self.to_csv())
        for split, values in (("train", self.train), ("val", self.val)):
            with atomic_path(results_dir / f"{split}_epoch_loss_data.npy") as tmp, \
                    open(tmp, "wb") as handle:
                np.save(handle, np.asarray(values.get("total", []), dtype=np.float64),
                        allow_pickle=False)


def _floats(values: Any) -> list[float]:
    """A JSON list of numbers as floats (null becomes NaN); anything else is a TypeError."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise TypeError(f"expected a list of numbers, got {values!r}")
    return array.tolist()


def read_history(path: Path) -> History:
    """Read a ``history.json`` written by train; DataError naming the file when it is missing or
    malformed (missing keys, non-numeric values, a component with more or fewer epochs)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (run train first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        history = History(
            epoch=[int(e) for e in _floats(data["epoch"])], lr=_floats(data.get("lr", [])),
            train={k: _floats(v) for k, v in data["train"].items()},
            val={k: _floats(v) for k, v in data["val"].items()},
            best_epoch=int(data.get("best_epoch") or 0), seconds=float(data.get("seconds") or 0),
            events_per_second=float(data.get("events_per_second") or 0),
            weights={k: _floats(v) for k, v in data.get("weights", {}).items()})
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read JSON: {err}") from None
    except KeyError as err:
        raise DataError(f"{path}: missing key {err.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: malformed history: {err}") from None
    for part, components in (("train", history.train), ("val", history.val),
                             ("weights", history.weights)):
        for name, values in components.items():
            if len(values) != len(history.epoch):
                raise DataError(f"{path}: {part}.{name} has {len(values)} values for "
                                f"{len(history.epoch)} epochs")
    return history
