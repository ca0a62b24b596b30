"""The in-memory event record shared by generation, CSV I/O, the store and preparation.

Events are kept columnar and jagged through counts (events -> jets -> constituents), so every
stage can work on whole chunks with numpy instead of per-event Python.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class EventChunk:
    """A block of events in structure-of-arrays form.

    Jets are listed event by event (``num_jets`` per event) and constituents jet by jet
    (``jet_num_constits`` per jet), in file order. Constituents are massless (pt, eta, phi).
    """

    evt_id: np.ndarray  # int64 [n_events]
    evt_weight: np.ndarray  # float64 [n_events]
    met: np.ndarray  # float64 [n_events]
    met_phi: np.ndarray  # float64 [n_events]
    num_jets: np.ndarray  # int64 [n_events]
    jet_num_constits: np.ndarray  # int64 [n_jets]
    jet_btag: np.ndarray  # int64 [n_jets]
    con_pid: np.ndarray  # int64 [n_constits]
    con_pt: np.ndarray  # float64 [n_constits]
    con_eta: np.ndarray  # float64 [n_constits]
    con_phi: np.ndarray  # float64 [n_constits]

    def __post_init__(self) -> None:
        n_ev, n_jet, n_con = len(self.evt_id), len(self.jet_num_constits), len(self.con_pt)
        if int(self.num_jets.sum()) != n_jet or int(self.jet_num_constits.sum()) != n_con:
            raise ValueError("EventChunk counts do not match array lengths")
        for name, size in (("evt_weight", n_ev), ("met", n_ev), ("met_phi", n_ev),
                           ("num_jets", n_ev), ("jet_btag", n_jet), ("con_pid", n_con),
                           ("con_eta", n_con), ("con_phi", n_con)):
            if len(getattr(self, name)) != size:
                raise ValueError(f"EventChunk.{name} has the wrong length")

    @property
    def n_events(self) -> int:
        return len(self.evt_id)

    @property
    def n_jets(self) -> int:
        return len(self.jet_num_constits)

    @property
    def n_constits(self) -> int:
        return len(self.con_pt)

    def jet_event_index(self) -> np.ndarray:
        """Index of the owning event for every jet."""
        return np.repeat(np.arange(self.n_events), self.num_jets)

    def constit_jet_index(self) -> np.ndarray:
        """Index of the owning jet (within this chunk) for every constituent."""
        return np.repeat(np.arange(self.n_jets), self.jet_num_constits)

    def jet_index_in_event(self) -> np.ndarray:
        """Position of each jet within its event (0, 1, ...), as in the file."""
        starts = np.cumsum(self.num_jets) - self.num_jets
        return np.arange(self.n_jets) - np.repeat(starts, self.num_jets)

    def constit_index_in_jet(self) -> np.ndarray:
        """Position of each constituent within its jet (0, 1, ...), as in the file."""
        starts = np.cumsum(self.jet_num_constits) - self.jet_num_constits
        return np.arange(self.n_constits) - np.repeat(starts, self.jet_num_constits)

    def jet_kinematics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Jet (pt, eta, phi, mass) as the four-vector sum of massless constituents."""
        px = self.con_pt * np.cos(self.con_phi)
        py = self.con_pt * np.sin(self.con_phi)
        pz = self.con_pt * np.sinh(self.con_eta)
        e = self.con_pt * np.cosh(self.con_eta)
        owner = self.constit_jet_index()
        sums = [np.bincount(owner, weights=c, minlength=self.n_jets) for c in (px, py, pz, e)]
        jpx, jpy, jpz, je = sums
        pt = np.hypot(jpx, jpy)
        eta = np.arcsinh(np.divide(jpz, pt, out=np.zeros_like(pt), where=pt > 0))
        phi = np.arctan2(jpy, jpx)
        mass = np.sqrt(np.clip(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0, None))
        return pt, eta, phi, mass

    def events(self, start: int, stop: int) -> EventChunk:
        """Events ``start:stop`` of the chunk, with their jets and constituents."""
        start, stop = min(start, self.n_events), min(stop, self.n_events)
        jet_ends = np.concatenate([[0], np.cumsum(self.num_jets)])
        j0, j1 = int(jet_ends[start]), int(jet_ends[stop])
        con_ends = np.concatenate([[0], np.cumsum(self.jet_num_constits)])
        c0, c1 = int(con_ends[j0]), int(con_ends[j1])
        rows = {"jet_": slice(j0, j1), "con_": slice(c0, c1)}  # by field prefix; else events
        return EventChunk(**{f.name: getattr(self, f.name)[rows.get(f.name[:4], slice(start, stop))]
                             for f in fields(EventChunk)})

    @staticmethod
    def concatenate(chunks: list[EventChunk]) -> EventChunk:
        """Join chunks in order (event ids are kept as they are)."""
        if not chunks:
            raise ValueError("nothing to concatenate")
        return EventChunk(**{
            f.name: np.concatenate([getattr(c, f.name) for c in chunks]) for f in fields(EventChunk)
        })
