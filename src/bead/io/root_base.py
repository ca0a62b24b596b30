"""What every ROOT format reader shares: its settings, the tree's branch names, what it returns.

The format readers (``bead.io.delphes``, ``bead.io.nanoaod``) import only this module, so they
stay free of the file handling and selection in ``bead.io.root``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from bead.errors import DataError
from bead.io.events import EventChunk

AUTO = "auto"
NONE = "none"


@dataclass(frozen=True)
class RootSettings:
    """The ``root_*`` config keys without their prefix (see ``bead.config.schema``)."""

    format: str = AUTO
    tree: str = AUTO
    jet_branch: str = AUTO
    cands_branch: str = "PFCands"
    met_branch: str = AUTO
    btag_branch: str = AUTO
    btag_wp: float = 0.5
    btag_bit: int = 0
    jet_pt_min: float = 0.0
    jet_eta_max: float = 0.0
    min_jets: int = 0

    def pick(self, key: str, default: str) -> str:
        """The value of ``key``, or ``default`` where it is ``auto``."""
        value = getattr(self, key)
        return default if value == AUTO else value


@dataclass(frozen=True)
class TreeInfo:
    """A tree's branch names, so a reader can check what it needs before reading anything."""

    path: Path
    tree: str
    names: frozenset[str]
    separator: str  # between collection and field: '.' (Delphes) or '_' (NanoAOD)

    def has(self, name: str) -> bool:
        return name in self.names

    def require(self, wanted: list[str]) -> None:
        """A DataError naming every missing branch, and what the tree has instead."""
        missing = [name for name in wanted if name not in self.names]
        if not missing:
            return
        fields = defaultdict(list)
        for name in sorted(self.names):
            collection, _, field = name.partition(self.separator)
            fields[collection].append(field)
        hints = []
        for collection in dict.fromkeys(n.partition(self.separator)[0] for n in missing):
            if collection in fields:
                hints.append(f"{collection} has {', '.join(f for f in fields[collection] if f)}")
        there = "; ".join(hints) if hints else "collections: " + ", ".join(sorted(fields))
        raise DataError(f"{self.path}: tree '{self.tree}' lacks branch"
                        f"{'es' if len(missing) > 1 else ''} {', '.join(missing)} ({there})")


@dataclass(frozen=True)
class JetChunk:
    """Events as read, before the jet selection; ``jet_pt`` / ``jet_eta`` are the file's own
    (calibrated) jet kinematics, which the cuts use."""

    events: EventChunk
    jet_pt: np.ndarray  # float64 [n_jets]
    jet_eta: np.ndarray  # float64 [n_jets]


def flat(array: ak.Array, dtype: type = np.float64) -> np.ndarray:
    """All values of a jagged array, in order, as one numpy array."""
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=dtype)


def counts(array: ak.Array) -> np.ndarray:
    """Entries per event of a jagged array."""
    return np.asarray(ak.to_numpy(ak.num(array, axis=1)), dtype=np.int64)


def first_per_event(array: ak.Array, name: str, path: Path, entry_start: int) -> np.ndarray:
    """The first value of a one-per-event collection (Delphes ``Event.Weight``, ``MissingET``);
    an event without one is an error naming its entry."""
    n = counts(array)
    if (n == 0).any():
        entry = entry_start + int(np.argmax(n == 0))
        raise DataError(f"{path}: entry {entry}: {name} is empty")
    return np.asarray(ak.to_numpy(array[:, 0]), dtype=np.float64)


def bad_entry(path: Path, entry: int, what: str) -> DataError:
    return DataError(f"{path}: entry {entry}: {what}")
