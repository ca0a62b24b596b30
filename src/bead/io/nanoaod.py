"""CMS NanoAOD / PFNano trees to events: jets with their PF candidates from the index table.

PFNano stores the candidates once per event (``PFCands_pt``, ``_eta``, ``_phi``, ``_pdgId``)
and, per jet collection, a table of (jet, candidate) index pairs: ``FatJetPFCands_jetIdx`` and
``FatJetPFCands_pFCandsIdx`` (``_candIdx`` in later PFNano versions; either is found). The pairs
of a whole chunk are resolved at once with offsets and one stable sort by jet.

- Jets: ``<root_jet_branch>_pt`` / ``_eta`` (``FatJet`` by default, or ``Jet``).
- b-tag: ``<jet>_<root_btag_branch>`` >= ``root_btag_wp`` (default discriminators
  ``btagDDBvLV2`` for FatJet and ``btagDeepFlavB`` for Jet; the working point depends on the
  data-taking era, so set it for yours).
- MET: ``<root_met_branch>_pt`` / ``_phi`` (``MET`` by default, or ``PuppiMET``).
- Weight: ``genWeight`` where present (simulation), else 1 (data).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from bead.io.events import EventChunk
from bead.io.root_base import NONE, JetChunk, RootSettings, TreeInfo, bad_entry, counts, flat

TREE = "Events"
CAND_INDEX_FIELDS = ("pFCandsIdx", "candIdx")
_DEFAULT_BTAG = {"FatJet": "btagDDBvLV2", "Jet": "btagDeepFlavB"}


def looks_like(info: TreeInfo) -> bool:
    return any(name.endswith("PFCands_jetIdx") for name in info.names)


class Reader:
    """Which branches a NanoAOD tree must have, and how one chunk of them becomes events."""

    separator = "_"

    def __init__(self, info: TreeInfo, settings: RootSettings) -> None:
        self.path: Path = info.path
        self.jet = settings.pick("jet_branch", "FatJet")
        self.cands = settings.cands_branch
        table = f"{self.jet}{self.cands}"
        field = next((f for f in CAND_INDEX_FIELDS if info.has(f"{table}_{f}")),
                     CAND_INDEX_FIELDS[0])
        self.jet_index, self.cand_index = f"{table}_jetIdx", f"{table}_{field}"
        btag = settings.pick("btag_branch", _DEFAULT_BTAG.get(self.jet, "btagDDBvLV2"))
        self.btag = None if btag == NONE else f"{self.jet}_{btag}"
        self.btag_wp = settings.btag_wp
        self.met = settings.pick("met_branch", "MET")
        self.weight = "genWeight" if info.has("genWeight") else None
        self.branches = [f"{self.jet}_pt", f"{self.jet}_eta", self.jet_index, self.cand_index]
        self.branches += [f"{self.cands}_{f}" for f in ("pt", "eta", "phi", "pdgId")]
        self.branches += [f"{self.met}_pt", f"{self.met}_phi"]
        self.branches += [self.btag] if self.btag else []
        self.branches += [self.weight] if self.weight else []
        info.require(self.branches)

    @property
    def summary(self) -> str:
        btag = f"b-tag {self.btag} >= {self.btag_wp:g}" if self.btag else "no b-tag (none)"
        weight = "weight from genWeight" if self.weight else "no genWeight: weight 1"
        return (f"NanoAOD: jets from {self.jet}, constituents from {self.cands} through "
                f"{self.jet_index} / {self.cand_index}; {btag}; MET from {self.met}; {weight}")

    def read(self, arrays: ak.Array, entry_start: int) -> JetChunk:
        n = len(arrays)
        jet_pt = arrays[f"{self.jet}_pt"]
        num_jets, num_cands = counts(jet_pt), counts(arrays[f"{self.cands}_pt"])
        pair_event = np.repeat(np.arange(n), counts(arrays[self.jet_index]))
        jet_idx = flat(arrays[self.jet_index], np.int64)
        cand_idx = flat(arrays[self.cand_index], np.int64)
        bad = ((jet_idx < 0) | (jet_idx >= num_jets[pair_event])
               | (cand_idx < 0) | (cand_idx >= num_cands[pair_event]))
        if bad.any():
            i = int(np.argmax(bad))
            ev = int(pair_event[i])
            raise bad_entry(
                self.path, entry_start + ev,
                f"{self.jet_index} / {self.cand_index} pair ({jet_idx[i]}, {cand_idx[i]}) points "
                f"outside the event's {num_jets[ev]} {self.jet} and {num_cands[ev]} {self.cands}")
        jet_of_pair = (np.cumsum(num_jets) - num_jets)[pair_event] + jet_idx
        cand_of_pair = (np.cumsum(num_cands) - num_cands)[pair_event] + cand_idx
        src = cand_of_pair[np.argsort(jet_of_pair, kind="stable")]

        def cands(field: str, dtype: type = np.float64) -> np.ndarray:
            # gathered in the file's type, then widened: no full-size float64 copy of PFCands
            values = ak.to_numpy(ak.flatten(arrays[f"{self.cands}_{field}"], axis=None))
            return values[src].astype(dtype)

        n_jets = int(num_jets.sum())
        btag = (np.zeros(n_jets, dtype=np.int64) if self.btag is None
                else (flat(arrays[self.btag]) >= self.btag_wp).astype(np.int64))
        weight = (np.asarray(ak.to_numpy(arrays[self.weight]), dtype=np.float64)
                  if self.weight else np.ones(n))
        events = EventChunk(
            evt_id=entry_start + np.arange(n, dtype=np.int64), evt_weight=weight,
            met=np.asarray(ak.to_numpy(arrays[f"{self.met}_pt"]), dtype=np.float64),
            met_phi=np.asarray(ak.to_numpy(arrays[f"{self.met}_phi"]), dtype=np.float64),
            num_jets=num_jets,
            jet_num_constits=np.bincount(jet_of_pair, minlength=n_jets).astype(np.int64),
            jet_btag=btag, con_pid=cands("pdgId", np.int64), con_pt=cands("pt"),
            con_eta=cands("eta"), con_phi=cands("phi"),
        )
        return JetChunk(events, flat(jet_pt), flat(arrays[f"{self.jet}_eta"]))
