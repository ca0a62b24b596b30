"""Per-epoch training history (SPEC §8): every loss component's epoch mean, train and val.

Written after every epoch, atomically, so an interrupted run keeps what it learned so far. Also
written in the original BEAD's form (``*_epoch_loss_data.npy``, the total loss per epoch).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bead.fileio import atomic_path, atomic_write_json, atomic_write_text


@dataclass
class History:
    """Epoch-indexed lists, in the layout of ``results/history.json``."""

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train: dict[str, list[float]] = field(default_factory=dict)
    val: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    seconds: float = 0.0
    events_per_second: float = 0.0

    def append(
        self, epoch: int, lr: float, train: dict[str, float], val: dict[str, float]
    ) -> None:
        if self.epoch and (set(train) != set(self.train) or set(val) != set(self.val)):
            raise ValueError("loss components changed between epochs")
        self.epoch.append(epoch)
        self.lr.append(lr)
        for target, values in ((self.train, train), (self.val, val)):
            for name, value in values.items():
                target.setdefault(name, []).append(value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(**data)

    def to_csv(self) -> str:
        components = list(self.train)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["epoch", "lr", *(f"train_{c}" for c in components),
                         *(f"val_{c}" for c in components)])
        for i, epoch in enumerate(self.epoch):
            writer.writerow([epoch, repr(self.lr[i]), *(repr(self.train[c][i]) for c in components),
                             *(repr(self.val[c][i]) for c in components)])
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
