"""Small ROOT files for the ROOT-input tests, written with uproot.

The NanoAOD-like files are synthetic: the branch layout of CMS NanoAOD / PFNano (``nFatJet``,
``FatJet_pt``, ``FatJetPFCands_jetIdx``, ``PFCands_pdgId``, ``MET_pt``, ``genWeight``, ...)
with values made up by the test, not real CMS data.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from bead.io.events import EventChunk
from bead.io.root import SelectionReport, iter_root_chunks
from bead.io.root_base import RootSettings

uproot = pytest.importorskip("uproot", reason="ROOT input needs the 'root' extra (uproot)")

DELPHES = "delphes_10events.root"


def read_root(path: Path, settings: RootSettings | None = None, chunk_size: int = 3,
              report: SelectionReport | None = None) -> EventChunk:
    """Every selected event of a ROOT file, as one chunk."""
    chunks = iter_root_chunks(path, settings or RootSettings(), chunk_size, report)
    return EventChunk.concatenate(list(chunks))


def write_tree(path: Path, branches: dict[str, Any], tree: str = "Events") -> Path:
    """Write ``branches`` as NanoAOD spells them: a collection ``{field: jagged}`` becomes
    ``n<collection>`` and ``<collection>_<field>``; a 1-D array stays one flat branch."""
    data = {name: ak.zip({f: ak.Array(v) for f, v in value.items()}) if isinstance(value, dict)
            else np.asarray(value) for name, value in branches.items()}
    with uproot.recreate(path) as file:
        file.mktree(tree, {name: value.type if isinstance(value, ak.Array) else value.dtype
                           for name, value in data.items()},
                    field_name=lambda outer, inner: f"{outer}_{inner}",
                    counter_name=lambda counted: f"n{counted}")
        file[tree].extend(data)
    return path


def random_nanoaod(path: Path, n_events: int, seed: int, pt_scale: float = 1.0) -> Path:
    """A NanoAOD-like file of ``n_events`` with 1-3 fat jets of 5-30 PF candidates each."""
    rng = np.random.default_rng(seed)
    num_jets = rng.integers(1, 4, n_events)
    per_jet = [rng.integers(5, 31, k) for k in num_jets]
    num_cands = np.array([c.sum() + 5 for c in per_jet])  # 5 candidates outside any jet
    pids = np.array([211, -211, 22, 130, 11, -13, 2212, 321])

    def jagged(counts: np.ndarray, draw) -> list[np.ndarray]:
        return [draw(k) for k in counts]

    jet_idx = [np.repeat(np.arange(len(c)), c).astype(np.int32) for c in per_jet]
    cand_idx = [rng.permutation(int(n))[: len(j)].astype(np.int32)
                for n, j in zip(num_cands, jet_idx, strict=True)]
    return write_tree(path, {
        "FatJet": {
            "pt": jagged(num_jets, lambda k: (pt_scale * rng.uniform(200, 800, k)).astype("f4")),
            "eta": jagged(num_jets, lambda k: rng.uniform(-2.4, 2.4, k).astype("f4")),
            "phi": jagged(num_jets, lambda k: rng.uniform(-np.pi, np.pi, k).astype("f4")),
            "btagDDBvLV2": jagged(num_jets, lambda k: rng.random(k).astype("f4")),
        },
        "PFCands": {
            "pt": jagged(num_cands, lambda k: (pt_scale * rng.exponential(10, k)).astype("f4")),
            "eta": jagged(num_cands, lambda k: rng.uniform(-2.5, 2.5, k).astype("f4")),
            "phi": jagged(num_cands, lambda k: rng.uniform(-np.pi, np.pi, k).astype("f4")),
            "pdgId": jagged(num_cands, lambda k: rng.choice(pids, k).astype(np.int32)),
        },
        "FatJetPFCands": {"jetIdx": jet_idx, "pFCandsIdx": cand_idx},
        "MET_pt": (pt_scale * rng.exponential(50, n_events)).astype("f4"),
        "MET_phi": rng.uniform(-np.pi, np.pi, n_events).astype("f4"),
        "genWeight": rng.uniform(0.5, 1.5, n_events).astype("f4"),
    })


def copy_delphes(shared_fixture, dest: Path) -> Path:
    """The real Delphes fixture, copied to ``dest`` (a temporary folder, never the repo)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared_fixture(DELPHES), dest)
    return dest
