"""Keep the leading jets per event and the leading constituents per jet (SPEC §6).

Objects are ranked by pt inside their parent with one ``lexsort`` and scattered into fixed-size
slots, so a whole chunk is selected without a per-event Python loop. Slots without an object
(fewer jets than ``num_jets``, fewer constituents than ``num_constits``) get index -1 and a
False mask. Objects beyond the limits are counted, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bead.io.events import EventChunk


@dataclass(frozen=True)
class Selection:
    """Where each padded slot takes its object from, as indices into the chunk's flat arrays.

    Jet kinematics (the four-vector sum of the constituents) are kept for every chunk jet, so
    features can use them without recomputing.
    """

    jet_src: np.ndarray  # int64 [N, J]: chunk jet index, -1 for an empty slot
    con_src: np.ndarray  # int64 [N, J, C]: chunk constituent index, -1 for an empty slot
    jet_event: np.ndarray  # int64 [n_jets]: owning event of every chunk jet
    jet_rank: np.ndarray  # int64 [n_jets]: pt rank of every chunk jet in its event (0 leads)
    jet_pt: np.ndarray  # float64 [n_jets]
    jet_eta: np.ndarray  # float64 [n_jets]
    jet_phi: np.ndarray  # float64 [n_jets]
    jet_mass: np.ndarray  # float64 [n_jets]
    n_jets_dropped: int  # jets beyond num_jets in their event
    n_constits_truncated: int  # constituents beyond num_constits in a kept jet
    n_constits_in_dropped_jets: int  # constituents of the dropped jets

    @property
    def jet_mask(self) -> np.ndarray:
        return self.jet_src >= 0

    @property
    def con_mask(self) -> np.ndarray:
        return self.con_src >= 0

    def jet_of_rank(self, rank: int) -> np.ndarray:
        """Chunk index of each event's ``rank``-th hardest jet (kept or not), -1 if none."""
        out = np.full(self.jet_src.shape[0], -1, dtype=np.int64)
        jets = np.flatnonzero(self.jet_rank == rank)
        out[self.jet_event[jets]] = jets
        return out


def _rank_in_groups(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort objects by descending ``keys`` inside consecutive groups of sizes ``counts``.

    Returns the permutation (group after group, hardest first; ties keep file order) and the
    rank inside its group of the object at each position of that permutation.
    """
    group = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-keys, group))
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(keys)) - np.repeat(starts, counts)
    return order, rank


def select_leading(chunk: EventChunk, num_jets: int, num_constits: int) -> Selection:
    """Slot the ``num_jets`` hardest jets of each event and ``num_constits`` hardest
    constituents of each kept jet (both by pt) into [N, J] and [N, J, C] index arrays."""
    n_ev = chunk.n_events
    pt, eta, phi, mass = chunk.jet_kinematics()
    jet_event = chunk.jet_event_index()

    jet_order, jet_rank_sorted = _rank_in_groups(pt, chunk.num_jets)
    jet_rank = np.empty(chunk.n_jets, dtype=np.int64)
    jet_rank[jet_order] = jet_rank_sorted
    kept_jet = jet_rank < num_jets
    jet_src = np.full((n_ev, num_jets), -1, dtype=np.int64)
    kept_ids = np.flatnonzero(kept_jet)
    jet_src[jet_event[kept_ids], jet_rank[kept_ids]] = kept_ids

    con_order, con_rank = _rank_in_groups(chunk.con_pt, chunk.jet_num_constits)
    con_jet = chunk.constit_jet_index()[con_order]
    in_kept_jet = kept_jet[con_jet]
    take = in_kept_jet & (con_rank < num_constits)
    con_src = np.full((n_ev, num_jets, num_constits), -1, dtype=np.int64)
    jets_taken = con_jet[take]
    con_src[jet_event[jets_taken], jet_rank[jets_taken], con_rank[take]] = con_order[take]

    return Selection(
        jet_src=jet_src, con_src=con_src, jet_event=jet_event, jet_rank=jet_rank,
        jet_pt=pt, jet_eta=eta, jet_phi=phi, jet_mass=mass,
        n_jets_dropped=int(chunk.n_jets - kept_jet.sum()),
        n_constits_truncated=int((in_kept_jet & ~take).sum()),
        n_constits_in_dropped_jets=int((~in_kept_jet).sum()),
    )


def gather(values: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``values[src]`` with zeros where ``src`` is -1 (padded slots)."""
    if values.size == 0:
        return np.zeros(src.shape, dtype=values.dtype)
    out = values[np.maximum(src, 0)]
    out[src < 0] = 0
    return out
