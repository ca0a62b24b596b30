"""``data/csv/generated.json``: which CSVs ``generate`` wrote, with which settings and seeds.

It lets ``generate`` tell its own earlier output from a user's files: a CSV is generate's own
when the record lists it with the SHA-256 of its current bytes. Its entry is written only after
the CSV itself is complete (atomically, file by file), so an interrupted run leaves a record of
exactly the files that were finished, and the next run completes the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bead.errors import DataError
from bead.fileio import atomic_write_json, file_sha256

RECORD = "generated.json"
RECORD_VERSION = 1


@dataclass(frozen=True)
class GeneratedFile:
    """One finished CSV: the key of the settings that made it, its bytes' hash, its size."""

    key: str
    sha256: str
    n_events: int
    settings: dict[str, Any]


def settings_key(settings: dict[str, Any]) -> str:
    """A stable hash of everything that shapes one sample's bytes."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class GenerationRecord:
    """The record of one CSV folder; ``files`` maps a CSV name to its entry."""

    path: Path
    files: dict[str, GeneratedFile]

    @classmethod
    def read(cls, csv_dir: Path) -> GenerationRecord:
        """The folder's record (empty if there is none); a damaged one is a DataError."""
        path = Path(csv_dir) / RECORD
        if not path.is_file():
            return cls(path, {})
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            files = {name: GeneratedFile(**entry) for name, entry in raw["files"].items()}
        except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{path}: unreadable generation record ({err}); delete it and "
                            "rerun generate with -o overwrite") from None
        return cls(path, files)

    def add(self, name: str, entry: GeneratedFile) -> None:
        """Record a finished CSV and write the record at once (atomically)."""
        self.files[name] = entry
        atomic_write_json(self.path, {"version": RECORD_VERSION, "files": {
            n: asdict(e) for n, e in sorted(self.files.items())}})

    def owns(self, path: Path) -> GeneratedFile | None:
        """The entry of ``path`` if generate wrote it and it is unchanged since, else None."""
        entry = self.files.get(path.name)
        if entry is None or not path.is_file() or file_sha256(path) != entry.sha256:
            return None
        return entry
