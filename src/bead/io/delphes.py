"""Delphes trees to events: jets with their constituents resolved into the EFlow collections.

A Delphes jet lists its constituents in ``Jet.Constituents``, a ``TRefArray`` of the unique ids
(``fUniqueID``) of the objects it was clustered from: tracks (``EFlowTrack``, with ``PT`` and the
generator ``PID``), photons (``EFlowPhoton``) and neutral hadrons (``EFlowNeutralHadron``), both
with ``ET`` and no particle id. The references are matched to the objects of the same event in
one sorted search over the whole chunk, so no Python runs per event.

- Photons get PDG id 22 and neutral hadrons 130 (K_L), the codes whose particle class they are.
  A track without a ``PID`` branch gets 211 times the sign of its ``Charge``.
- The unique ids are compared on their low 24 bits, the object number that ROOT's references
  keep (the high bits carry the process id).
- b-tag: bit ``root_btag_bit`` of the jet's ``BTag`` bitmask (one bit per b-tagging working
  point of the Delphes card), reduced to 0/1.
- MET: ``MissingET.MET`` / ``.Phi`` where the tree has them, otherwise minus the vector sum of
  every EFlow object of the event.
- Weight: ``Event.Weight`` where present, else 1.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from bead.io.events import EventChunk
from bead.io.root_base import (
    AUTO,
    NONE,
    JetChunk,
    RootSettings,
    TreeInfo,
    bad_entry,
    counts,
    first_per_event,
    flat,
)

TREE = "Delphes"
PHOTON_PID = 22
NEUTRAL_HADRON_PID = 130
# (collection, its transverse-momentum field, the PDG id it is given; None: from the track)
EFLOW = (("EFlowTrack", "PT", None), ("EFlowPhoton", "ET", PHOTON_PID),
         ("EFlowNeutralHadron", "ET", NEUTRAL_HADRON_PID))
_UID_BITS = 24
_UID_MASK = (1 << _UID_BITS) - 1


def looks_like(info: TreeInfo) -> bool:
    return any(name.endswith(".Constituents") for name in info.names)


class Reader:
    """Which branches a Delphes tree must have, and how one chunk of them becomes events."""

    separator = "."

    def __init__(self, info: TreeInfo, settings: RootSettings) -> None:
        self.path: Path = info.path
        self.jet = settings.pick("jet_branch", "Jet")
        btag = settings.pick("btag_branch", "BTag")
        self.btag = None if btag == NONE else f"{self.jet}.{btag}"
        self.btag_bit = settings.btag_bit
        self.track_pid = "EFlowTrack.PID" if info.has("EFlowTrack.PID") else "EFlowTrack.Charge"
        met = settings.pick("met_branch", "MissingET")
        has_met = info.has(f"{met}.MET")
        # Only the default may fall back: a MET branch the user named must be there.
        self.met = met if has_met or settings.met_branch != AUTO else None
        self.weight = "Event.Weight" if info.has("Event.Weight") else None
        self.branches = [f"{self.jet}.PT", f"{self.jet}.Eta", f"{self.jet}.Constituents",
                         self.track_pid]
        self.branches += [f"{c}.{f}" for c, pt, _ in EFLOW for f in ("fUniqueID", pt, "Eta", "Phi")]
        self.branches += [self.btag] if self.btag else []
        self.branches += [f"{self.met}.MET", f"{self.met}.Phi"] if self.met else []
        self.branches += [self.weight] if self.weight else []
        info.require(self.branches)

    @property
    def summary(self) -> str:
        met = f"MET from {self.met}" if self.met else (
            "no MissingET branch: MET = minus the vector sum of the EFlow objects")
        btag = f"b-tag bit {self.btag_bit} of {self.btag}" if self.btag else "no b-tag (none)"
        weight = "weight from Event.Weight" if self.weight else "no Event.Weight: weight 1"
        return (f"Delphes: jets from {self.jet}, constituents from "
                f"{', '.join(c for c, _, _ in EFLOW)}; {btag}; {met}; {weight}")

    def read(self, arrays: ak.Array, entry_start: int) -> JetChunk:
        n = len(arrays)
        jet_pt = arrays[f"{self.jet}.PT"]
        num_jets = counts(jet_pt)
        refs = arrays[f"{self.jet}.Constituents"]["refs"]
        jet_num_constits = flat(ak.num(refs, axis=2), np.int64)
        ref_ids = flat(refs, np.int64)
        jet_event = np.repeat(np.arange(n), num_jets)
        ref_event = np.repeat(jet_event, jet_num_constits)

        pool_event, pool_key, pool_pt, pool_eta, pool_phi, pool_pid = self._eflow(arrays)
        order = np.argsort(pool_key, kind="stable")
        keys = pool_key[order]
        twins = np.flatnonzero(keys[1:] == keys[:-1])
        if len(twins):
            key = int(keys[twins[0]])
            raise bad_entry(self.path, entry_start + (key >> _UID_BITS),
                            f"two EFlow objects share the unique id {key & _UID_MASK}")
        wanted = (ref_event << _UID_BITS) | (ref_ids & _UID_MASK)
        pos = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        found = keys[pos] == wanted if len(keys) else np.zeros(len(wanted), dtype=bool)
        if not found.all():
            i = int(np.argmin(found))
            jet = int(np.repeat(np.arange(len(jet_event)), jet_num_constits)[i])
            in_event = jet - int(np.searchsorted(jet_event, jet_event[jet]))
            raise bad_entry(
                self.path, entry_start + int(ref_event[i]),
                f"{self.jet} {in_event} references constituent id {int(ref_ids[i])}, which is "
                f"in none of {', '.join(c for c, _, _ in EFLOW)}")
        src = order[pos]

        if self.met:
            met = first_per_event(arrays[f"{self.met}.MET"], f"{self.met}.MET", self.path,
                                  entry_start)
            met_phi = first_per_event(arrays[f"{self.met}.Phi"], f"{self.met}.Phi", self.path,
                                      entry_start)
        else:
            mx = -np.bincount(pool_event, pool_pt * np.cos(pool_phi), minlength=n)
            my = -np.bincount(pool_event, pool_pt * np.sin(pool_phi), minlength=n)
            met, met_phi = np.hypot(mx, my), np.arctan2(my, mx)
        weight = (first_per_event(arrays[self.weight], self.weight, self.path, entry_start)
                  if self.weight else np.ones(n))
        btag = (np.zeros(len(jet_event), dtype=np.int64) if self.btag is None
                else (flat(arrays[self.btag], np.int64) >> self.btag_bit) & 1)
        events = EventChunk(
            evt_id=entry_start + np.arange(n, dtype=np.int64), evt_weight=weight, met=met,
            met_phi=met_phi, num_jets=num_jets, jet_num_constits=jet_num_constits,
            jet_btag=btag, con_pid=pool_pid[src], con_pt=pool_pt[src], con_eta=pool_eta[src],
            con_phi=pool_phi[src],
        )
        return JetChunk(events, flat(jet_pt), flat(arrays[f"{self.jet}.Eta"]))

    def _eflow(self, arrays: ak.Array) -> tuple[np.ndarray, ...]:
        """Every EFlow object of the chunk: (event, event<<24 | uid, pt, eta, phi, pid)."""
        parts = []
        for collection, pt_field, pid in EFLOW:
            uid = arrays[f"{collection}.fUniqueID"]
            event = np.repeat(np.arange(len(arrays)), counts(uid))
            if pid is None:
                value = flat(arrays[self.track_pid], np.int64)
                pids = value if self.track_pid.endswith(".PID") else 211 * np.sign(value)
            else:
                pids = np.full(len(event), pid, dtype=np.int64)
            parts.append((event, (event << _UID_BITS) | (flat(uid, np.int64) & _UID_MASK),
                          flat(arrays[f"{collection}.{pt_field}"]),
                          flat(arrays[f"{collection}.Eta"]), flat(arrays[f"{collection}.Phi"]),
                          pids))
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
