"""Detector emulation on Pythia's particles: visibility, MET, anti-kT jets, b-tag dice.

All per-particle work of a batch is done with numpy on awkward arrays: no per-event Python.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

import awkward as ak
import numpy as np

from bead.generate.settings import GenerationSettings
from bead.io.events import EventChunk

_BTAG_PROB = {"b": 0.7, "c": 0.1, "light": 0.01}


class Visibility:
    """Which particle ids a detector would see, from Pythia's particle data (cached)."""

    def __init__(self, particle_data: Any) -> None:
        self._data = particle_data
        self._invisible: set[int] = set()
        self._known: set[int] = set()

    def mask(self, pid: np.ndarray) -> np.ndarray:
        for code in np.unique(pid).tolist():
            if code not in self._known:
                self._known.add(code)
                a = abs(code)
                if a in (12, 14, 16) or a >= 4_900_000 or not self._data.isVisible(code):
                    self._invisible.add(code)
        return ~np.isin(pid, np.fromiter(self._invisible, dtype=np.int64))


@dataclass(frozen=True)
class Selected:
    """Accepted events of one batch, before b-tag dice are thrown."""

    weight: np.ndarray
    met: np.ndarray
    met_phi: np.ndarray
    num_jets: np.ndarray
    jet_num_constits: np.ndarray
    jet_tag_prob: np.ndarray
    con_pid: np.ndarray
    con_pt: np.ndarray
    con_eta: np.ndarray
    con_phi: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.weight)


def select_events(batch: Any, visibility: Visibility, settings: GenerationSettings, jet_def: Any,
            fastjet: ModuleType, limit: int) -> Selected:
    """Cluster, select and measure the events of one Pythia batch (at most ``limit`` kept)."""
    prt = batch.prt
    n_ev = len(prt)
    flat = ak.flatten(prt)
    pid = ak.to_numpy(flat.id).astype(np.int64)
    final = ak.to_numpy(flat.status) > 0
    px, py, pz = (ak.to_numpy(flat.p[c]).astype(np.float64) for c in ("px", "py", "pz"))
    event = np.repeat(np.arange(n_ev), ak.to_numpy(ak.num(prt, axis=1)))
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pt), where=pt > 0))
    phi = _phi(px, py)
    visible = final & (pt > 0) & visibility.mask(pid)

    # MET: minus the vector sum of visible particles, as a detector would measure it.
    in_met = visible & (np.abs(eta) < settings.met_eta_max)
    sum_x = np.bincount(event[in_met], weights=px[in_met], minlength=n_ev)
    sum_y = np.bincount(event[in_met], weights=py[in_met], minlength=n_ev)

    # Anti-kT on massless visible particles; jet kinematics are the constituent sums.
    inputs = np.flatnonzero(visible & (np.abs(eta) < settings.jet_eta_max))
    n_inputs = np.bincount(event[inputs], minlength=n_ev)
    energy = pt * np.cosh(eta)
    records = ak.zip({"px": px[inputs], "py": py[inputs], "pz": pz[inputs],
                      "E": energy[inputs]})
    sequence = fastjet.ClusterSequence(ak.unflatten(records, n_inputs), jet_def)
    index = sequence.constituent_index(0.9 * settings.jet_pt_min)
    jets_per_event = ak.to_numpy(ak.num(index, axis=1))
    jet_size = ak.to_numpy(ak.num(ak.flatten(index, axis=1), axis=1))
    jet_event = np.repeat(np.arange(n_ev), jets_per_event)
    con_jet = np.repeat(np.arange(len(jet_size)), jet_size)
    input_start = np.cumsum(n_inputs) - n_inputs
    particle = inputs[ak.to_numpy(ak.flatten(index, axis=None)) + input_start[jet_event][con_jet]]
    jet_pt, jet_eta, jet_phi = _massless_sum(con_jet, len(jet_size), px[particle],
                                             py[particle], pz[particle])

    order = np.lexsort((-jet_pt, jet_event))  # by event, then leading jet first
    order = order[(jet_pt[order] > settings.jet_pt_min)
                  & (np.abs(jet_eta[order]) < settings.jet_eta_max)]
    kept_per_event = np.bincount(jet_event[order], minlength=n_ev)
    chosen = np.flatnonzero(kept_per_event >= settings.min_jets)[:limit]
    is_chosen = np.zeros(n_ev, dtype=bool)
    is_chosen[chosen] = True
    order = order[is_chosen[jet_event[order]]]

    # Constituents of the kept jets, jet by jet, leading constituent first.
    sizes = jet_size[order]
    jet_start = np.cumsum(jet_size) - jet_size
    gather = (np.repeat(jet_start[order] - (np.cumsum(sizes) - sizes), sizes)
              + np.arange(int(sizes.sum())))
    con = particle[gather]
    out_jet = np.repeat(np.arange(len(order)), sizes)
    con = con[np.lexsort((-pt[con], out_jet))]

    return Selected(
        weight=_event_weights(batch)[chosen],
        met=np.hypot(sum_x, sum_y)[chosen],
        met_phi=_phi(-sum_x, -sum_y)[chosen],
        num_jets=kept_per_event[chosen].astype(np.int64),
        jet_num_constits=sizes.astype(np.int64),
        jet_tag_prob=_tag_probability(pid, eta, phi, pt, event, jet_event[order],
                                      jet_eta[order], jet_phi[order], settings.jet_r),
        con_pid=pid[con],
        con_pt=pt[con],
        con_eta=eta[con],
        con_phi=phi[con],
    )


def _event_weights(batch: Any) -> np.ndarray:
    """Pythia's nominal event weight (the first of the weight list)."""
    return ak.to_numpy(ak.fill_none(ak.firsts(batch.info.weights), 1.0)).astype(np.float64)


def _phi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Azimuth in [0, 2pi), the convention of FastJet and of the original BEAD files."""
    phi = np.mod(np.arctan2(y, x), 2 * np.pi)
    phi[phi >= 2 * np.pi] = 0.0
    return phi


def _massless_sum(owner: np.ndarray, n: int, px: np.ndarray, py: np.ndarray,
                  pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pt, eta, phi) of the sum of massless vectors grouped by ``owner``."""
    sx, sy, sz = (np.bincount(owner, weights=c, minlength=n) for c in (px, py, pz))
    pt = np.hypot(sx, sy)
    eta = np.arcsinh(np.divide(sz, pt, out=np.zeros_like(pt), where=pt > 0))
    return pt, eta, _phi(sx, sy)


def _tag_probability(pid: np.ndarray, eta: np.ndarray, phi: np.ndarray, pt: np.ndarray,
                     event: np.ndarray, jet_event: np.ndarray, jet_eta: np.ndarray,
                     jet_phi: np.ndarray, radius: float) -> np.ndarray:
    """b-tag probability per jet: B hadron within ``radius`` 0.7, else charm 0.1, else 0.01."""
    a = np.abs(pid)
    hadron = (a > 100) & (a < 1_000_000) & ((a // 10) % 10 != 0) & (pt > 0)  # not diquarks
    digits = ((a // 1000) % 10, (a // 100) % 10, (a // 10) % 10)
    bottom = hadron & np.logical_or.reduce([d == 5 for d in digits])
    charm = hadron & ~bottom & np.logical_or.reduce([d == 4 for d in digits])
    near_b = _near(jet_event, jet_eta, jet_phi, event[bottom], eta[bottom], phi[bottom], radius)
    near_c = _near(jet_event, jet_eta, jet_phi, event[charm], eta[charm], phi[charm], radius)
    return np.where(near_b, _BTAG_PROB["b"], np.where(near_c, _BTAG_PROB["c"],
                                                      _BTAG_PROB["light"]))


def _near(jet_event: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray,
          obj_event: np.ndarray, obj_eta: np.ndarray, obj_phi: np.ndarray,
          radius: float) -> np.ndarray:
    """For each jet, whether any object of the same event lies within ``radius`` in (eta, phi).

    ``obj_event`` must be sorted; every jet is paired with its event's objects only.
    """
    n_events = int(max(jet_event.max(initial=-1), obj_event.max(initial=-1))) + 1
    per_event = np.bincount(obj_event, minlength=n_events)
    start = np.cumsum(per_event) - per_event
    per_jet = per_event[jet_event]
    pair_jet = np.repeat(np.arange(len(jet_event)), per_jet)
    pair_obj = (np.repeat(start[jet_event] - (np.cumsum(per_jet) - per_jet), per_jet)
                + np.arange(int(per_jet.sum())))
    dphi = np.abs(np.mod(jet_phi[pair_jet] - obj_phi[pair_obj] + np.pi, 2 * np.pi) - np.pi)
    deta = jet_eta[pair_jet] - obj_eta[pair_obj]
    close = deta**2 + dphi**2 < radius**2
    return np.bincount(pair_jet[close], minlength=len(jet_event)) > 0


def to_chunk(parts: list[Selected], rng: np.random.Generator) -> EventChunk:
    joined = {f.name: np.concatenate([getattr(p, f.name) for p in parts])
              for f in fields(Selected)}
    tag_prob = joined.pop("jet_tag_prob")
    weight = joined.pop("weight")
    return EventChunk(
        evt_id=np.arange(len(weight), dtype=np.int64),
        evt_weight=weight,
        jet_btag=(rng.random(len(tag_prob)) < tag_prob).astype(np.int64),
        **joined,
    )
