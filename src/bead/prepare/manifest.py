"""``manifest.json``: what prepare_inputs wrote, and the one place that writes and reads it.

The manifest lists every prepared sample (flag, generator, tensor files, event count, source
store file), the background generators (their order gives the generator labels), the feature
names per level, the settings preparation ran with and the SHA-256 of ``scalers.json``, which
ties a trained model to these exact inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bead.errors import DataError
from bead.fileio import atomic_write_json

MANIFEST = "manifest.json"
SCALERS = "scalers.json"
MANIFEST_VERSION = 2
# Every config key that changes the prepared tensors. They name the folder of a preparation, so
# projects of a workspace with different settings keep their own tensors side by side.
PREPARATION_KEYS = ("file_type", "num_jets", "num_constits", "normalizations", "input_features",
                    "train_size", "seed")


def preparation_settings(config: Any) -> dict[str, Any]:
    """The values of PREPARATION_KEYS in ``config``."""
    return {key: getattr(config, key) for key in PREPARATION_KEYS}


def preparation_key(config: Any) -> str:
    """A short, stable hash of the preparation settings: the name of their folder."""
    text = json.dumps(preparation_settings(config), sort_keys=True, separators=(",", ":"))
    return "prep_" + hashlib.sha256(text.encode()).hexdigest()[:12]


def prepared_dir(tensors_root: Path, config: Any) -> Path:
    """Where ``config``'s prepared tensors live: one folder per preparation."""
    return Path(tensors_root) / preparation_key(config)


@dataclass(frozen=True)
class SampleEntry:
    """One sample of the manifest."""

    stem: str
    flag: str
    generator: str
    tag: str | None
    file: str
    n_events: int
    source: str = ""  # the store file it was prepared from
    # Every tensor file (shard) of the sample in event order; empty means ``file`` alone.
    files: tuple[str, ...] = ()

    @property
    def shards(self) -> tuple[str, ...]:
        """The sample's tensor files, in event order (``file`` is the first)."""
        return self.files or (self.file,)


@dataclass(frozen=True)
class Manifest:
    """What prepare_inputs wrote: the samples and the background generator labels."""

    path: Path
    generators: list[str]
    samples: list[SampleEntry]
    scalers_sha256: str  # identifies the preparation; a model records the one it trained on
    settings: dict[str, Any]  # the config values prepare_inputs ran with
    features: dict[str, list[str]]  # columns of the written tensors, per level
    observables: list[str]  # columns of the raw ``observables`` tensor
    key: str  # the preparation key (its folder name)

    def of_flag(self, flag: str) -> list[SampleEntry]:
        return [s for s in self.samples if s.flag == flag]

    def write(self) -> None:
        atomic_write_json(self.path, {
            "version": MANIFEST_VERSION,
            "scalers_sha256": self.scalers_sha256,
            "settings": self.settings,
            "generators": self.generators,
            "features": self.features,
            "observables": self.observables,
            "key": self.key,
            "samples": [{**asdict(s), "files": list(s.shards)} for s in self.samples],
        })


def read_manifest(tensors_dir: Path) -> Manifest:
    """Read ``manifest.json``; a missing or malformed one is a DataError naming the problem."""
    path = Path(tensors_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no inputs prepared with this project's settings (run "
                        "prepare_inputs first)")
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        samples = [
            SampleEntry(stem=s["stem"], flag=s["flag"], generator=s["generator"],
                        tag=s.get("tag"), file=s["file"], n_events=int(s["n_events"]),
                        source=str(s.get("source", "")),
                        files=tuple(str(f) for f in s.get("files", [s["file"]])))
            for s in raw["samples"]
        ]
        generators = [str(g) for g in raw["generators"]]
        scalers_sha256 = str(raw["scalers_sha256"])
        settings = dict(raw["settings"])
        if raw.get("version") != MANIFEST_VERSION:
            raise DataError(f"{path}: prepared by an older version of bead (manifest version "
                            f"{raw.get('version')!r}, not {MANIFEST_VERSION}); rerun "
                            "prepare_inputs")
        features = {str(k): [str(n) for n in v] for k, v in raw["features"].items()}
        observables = [str(n) for n in raw["observables"]]
        key = str(raw["key"])
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: malformed manifest ({type(err).__name__}: {err}); rerun "
                        "prepare_inputs") from None
    return Manifest(path=path, generators=generators, samples=samples,
                    scalers_sha256=scalers_sha256, settings=settings, features=features,
                    observables=observables, key=key)
