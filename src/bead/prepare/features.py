"""Named feature columns per object level, for each ``input_features`` choice (SPEC §6).

=====================  ===============================  =====================  ==================
input_features         constituent                      jet                    event
=====================  ===============================  =====================  ==================
``4momentum``          pt, eta, phi                     pt, eta, phi, mass     met, met_phi,
                                                                               num_jets, ht,
                                                                               j1_pt, j1_eta,
                                                                               j1_phi, j1_mass
``4momentum_btag``     + jet_btag                       + b_tagged             + n_btag, j1_btag
``pj_custom``          + the five pid classes           + num_constits         + j1_num_constits
``all``                pj_custom + deta, dphi           as pj_custom           pj_custom + mjj, mt
=====================  ===============================  =====================  ==================

(each row adds to the row above it, except ``all``, which is ``pj_custom`` plus the extras.)
Column order: the kinematics, then the ``all`` extras, then b-tags, then the ``pj_custom`` ones.

- Constituent pt, eta, phi are absolute, as in the original BEAD. ``all`` adds ``deta`` and
  ``dphi``, the constituent's position relative to its jet axis (dphi wrapped to [-pi, pi)):
  jet substructure then does not have to be learnt separately at every point of the detector.
- ``jet_btag`` is the parent jet's b-tag, repeated on each of its constituents.
- Particle classes (one-hot): ``is_photon`` 22, ``is_electron`` ±11, ``is_muon`` ±13; every
  other id is an ``is_charged_hadron`` or ``is_neutral_hadron`` by its electric charge, taken
  from the PDG table of scikit-hep's ``particle`` package (so pi+, K+, p, Sigma+ are charged;
  n, K_L, K_S, Lambda neutral; a non-hadron such as a tau counts by its charge too). A valid id
  that the table lacks (an exotic state) is charged by ``particle``'s PDG numbering-scheme
  rules; an id that is not a PDG number at all (0, say) has no class: all five flags are 0,
  and a warning names it. Each distinct id is looked up once.
- Jet ``pt, eta, phi, mass`` are the four-vector sum of all its constituents (not only the kept
  ones); ``num_constits`` is its full constituent count, ``b_tagged`` is 0/1.
- Event ``num_jets`` and ``ht`` (scalar sum of jet pt) count every jet of the event, not only
  the kept ones; ``n_btag`` is the number of b-tagged jets; ``j1_*`` describe the hardest jet
  (zeros when the event has none). ``mjj`` is the invariant mass of the two hardest jets and
  ``mt`` the transverse mass of that dijet system with the MET (the CMS semi-visible-jet
  variable); a missing jet counts as a zero vector.

Each column has a kind, which tells the scalers what they may do with it: ``energy`` (pt, mass,
met, ht: non-negative, log-able), ``count`` (non-negative integers), ``signed`` (real values
such as eta), ``angle`` (an azimuth, may become a sin/cos pair) and ``binary`` (0/1 flags and
one-hots, never scaled).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bead.io.events import EventChunk
from bead.prepare.select import Selection, gather

log = logging.getLogger(__name__)

LEVELS = ("constituent", "jet", "event")
PID_CLASSES = ("is_charged_hadron", "is_neutral_hadron", "is_photon", "is_electron", "is_muon")

_BASE = {
    "constituent": ["pt", "eta", "phi"],
    "jet": ["pt", "eta", "phi", "mass"],
    "event": ["met", "met_phi", "num_jets", "ht", "j1_pt", "j1_eta", "j1_phi", "j1_mass"],
}
_BTAG = {"constituent": ["jet_btag"], "jet": ["b_tagged"], "event": ["n_btag", "j1_btag"]}
_CUSTOM = {"constituent": list(PID_CLASSES), "jet": ["num_constits"], "event": ["j1_num_constits"]}
_ALL = {"constituent": ["deta", "dphi"], "jet": [], "event": ["mjj", "mt"]}

_KIND = {
    "pt": "energy", "mass": "energy", "met": "energy", "ht": "energy", "j1_pt": "energy",
    "j1_mass": "energy", "mjj": "energy", "mt": "energy",
    "num_jets": "count", "num_constits": "count", "n_btag": "count", "j1_num_constits": "count",
    "eta": "signed", "deta": "signed", "dphi": "signed", "j1_eta": "signed",
    "phi": "angle", "met_phi": "angle", "j1_phi": "angle",
    "jet_btag": "binary", "b_tagged": "binary", "j1_btag": "binary",
    **dict.fromkeys(PID_CLASSES, "binary"),
}


def feature_names(input_features: str, level: str) -> list[str]:
    """The raw (before scaling) feature columns of ``level`` for an ``input_features`` value."""
    if input_features not in ("4momentum", "4momentum_btag", "pj_custom", "all"):
        raise ValueError(f"unknown input_features {input_features!r}")
    names = list(_BASE[level])
    if input_features == "all":
        names += _ALL[level]
    if input_features in ("4momentum_btag", "pj_custom", "all"):
        names += _BTAG[level]
    if input_features in ("pj_custom", "all"):
        names += _CUSTOM[level]
    return names


def feature_kind(name: str) -> str:
    return _KIND[name]


@dataclass(frozen=True)
class LevelFeatures:
    """One level's raw features: ``values`` [N, S, F] (events: [N, F]) and its slot mask."""

    values: np.ndarray  # float32, zeros in padded slots
    mask: np.ndarray  # bool [N, S] (events: [N], all True)
    names: list[str]

    @property
    def kinds(self) -> list[str]:
        return [feature_kind(n) for n in self.names]


def particle_class(pid: np.ndarray) -> np.ndarray:
    """Index into ``PID_CLASSES`` for every PDG id, -1 for an id that is no PDG number (see the
    module docstring)."""
    unique, inverse = np.unique(np.asarray(pid, dtype=np.int64), return_inverse=True)
    classes = np.array([_class_of(int(p)) for p in unique], dtype=np.int64)
    unknown = unique[classes < 0]
    if len(unknown):
        log.warning("PDG ids that are no particle (all particle-class flags 0): %s",
                    ", ".join(str(p) for p in unknown))
    return classes[inverse].reshape(np.shape(pid))


_NAMED_CLASS = {22: PID_CLASSES.index("is_photon"), 11: PID_CLASSES.index("is_electron"),
                13: PID_CLASSES.index("is_muon")}


@functools.cache
def _class_of(pid: int) -> int:
    """The class of one id: the named leptons and photon, else charged / neutral by charge."""
    from particle import InvalidParticle, Particle, ParticleNotFound
    from particle.pdgid import three_charge

    if abs(pid) in _NAMED_CLASS:
        return _NAMED_CLASS[abs(pid)]
    try:
        charge = Particle.from_pdgid(pid).charge
    except (ParticleNotFound, InvalidParticle):
        charge = None
    if charge is None:
        thirds = three_charge(pid)
        if thirds is None:
            return -1
        charge = thirds / 3
    return PID_CLASSES.index("is_charged_hadron" if charge != 0 else "is_neutral_hadron")


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def constituent_features(chunk: EventChunk, sel: Selection, names: list[str]) -> LevelFeatures:
    """[N, J*C, F] constituent features, jet-major (slot j*C + c)."""
    src, mask = sel.con_src, sel.con_mask
    parent = np.broadcast_to(sel.jet_src[:, :, None], src.shape)

    def of_jet(values: np.ndarray) -> np.ndarray:
        return np.where(mask, gather(values, parent), 0.0)

    @functools.cache
    def pid_slots() -> np.ndarray:
        return gather(particle_class(chunk.con_pid), src)

    def pid_column(k: int) -> Callable[[], np.ndarray]:
        return lambda: ((pid_slots() == k) & mask).astype(float)

    columns: dict[str, Callable[[], np.ndarray]] = {
        "pt": lambda: gather(chunk.con_pt, src),
        "eta": lambda: gather(chunk.con_eta, src),
        "phi": lambda: gather(chunk.con_phi, src),
        "deta": lambda: np.where(mask, gather(chunk.con_eta, src) - of_jet(sel.jet_eta), 0.0),
        "dphi": lambda: np.where(
            mask, _wrap(gather(chunk.con_phi, src) - of_jet(sel.jet_phi)), 0.0),
        "jet_btag": lambda: of_jet((chunk.jet_btag > 0).astype(float)),
        **{name: pid_column(k) for k, name in enumerate(PID_CLASSES)},
    }
    n, j, c = src.shape
    values = _stack(columns, names, (n, j * c))
    return LevelFeatures(values, mask.reshape(n, j * c), names)


def jet_features(chunk: EventChunk, sel: Selection, names: list[str]) -> LevelFeatures:
    """[N, J, F] jet features of the kept jets."""
    src = sel.jet_src
    columns: dict[str, Callable[[], np.ndarray]] = {
        "pt": lambda: gather(sel.jet_pt, src),
        "eta": lambda: gather(sel.jet_eta, src),
        "phi": lambda: gather(sel.jet_phi, src),
        "mass": lambda: gather(sel.jet_mass, src),
        "b_tagged": lambda: gather((chunk.jet_btag > 0).astype(float), src),
        "num_constits": lambda: gather(chunk.jet_num_constits.astype(float), src),
    }
    return LevelFeatures(_stack(columns, names, src.shape), sel.jet_mask, names)


def _four_vector(sel: Selection, jets: np.ndarray) -> np.ndarray:
    """(px, py, pz, E) [N, 4] of the chunk jets ``jets`` (zero where -1)."""
    pt, eta, phi, m = (gather(a, jets) for a in (sel.jet_pt, sel.jet_eta, sel.jet_phi,
                                                  sel.jet_mass))
    pz = pt * np.sinh(eta)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(m**2 + pt**2 + pz**2)], -1)


def _dijet(chunk: EventChunk, sel: Selection) -> tuple[np.ndarray, np.ndarray]:
    """(mjj, mt) of the two hardest jets, mt including the MET."""
    dijet = _four_vector(sel, sel.jet_of_rank(0)) + _four_vector(sel, sel.jet_of_rank(1))
    px, py, pz, e = dijet.T
    mjj2 = np.clip(e**2 - px**2 - py**2 - pz**2, 0.0, None)
    met_x, met_y = chunk.met * np.cos(chunk.met_phi), chunk.met * np.sin(chunk.met_phi)
    et_jj = np.sqrt(mjj2 + px**2 + py**2)
    mt2 = mjj2 + 2 * (et_jj * chunk.met - (px * met_x + py * met_y))
    return np.sqrt(mjj2), np.sqrt(np.clip(mt2, 0.0, None))


def event_features(chunk: EventChunk, sel: Selection, names: list[str]) -> LevelFeatures:
    """[N, F] event features."""
    n = chunk.n_events
    lead = sel.jet_of_rank(0)
    dijet = functools.cache(lambda: _dijet(chunk, sel))

    def per_event(weights: np.ndarray) -> np.ndarray:
        return np.bincount(sel.jet_event, weights=weights, minlength=n)

    columns: dict[str, Callable[[], np.ndarray]] = {
        "met": lambda: chunk.met,
        "met_phi": lambda: chunk.met_phi,
        "num_jets": lambda: chunk.num_jets.astype(float),
        "ht": lambda: per_event(sel.jet_pt),
        "n_btag": lambda: per_event((chunk.jet_btag > 0).astype(float)),
        "j1_pt": lambda: gather(sel.jet_pt, lead),
        "j1_eta": lambda: gather(sel.jet_eta, lead),
        "j1_phi": lambda: gather(sel.jet_phi, lead),
        "j1_mass": lambda: gather(sel.jet_mass, lead),
        "j1_btag": lambda: gather((chunk.jet_btag > 0).astype(float), lead),
        "j1_num_constits": lambda: gather(chunk.jet_num_constits.astype(float), lead),
        "mjj": lambda: dijet()[0],
        "mt": lambda: dijet()[1],
    }
    return LevelFeatures(_stack(columns, names, (n,)), np.ones(n, dtype=bool), names)


def _stack(columns: dict[str, Callable[[], np.ndarray]], names: list[str],
           shape: tuple[int, ...]) -> np.ndarray:
    # Filled column by column in feature-major order (contiguous writes), then made
    # feature-last in one copy: about twice as fast as strided writes.
    out = np.empty((len(names), *shape), dtype=np.float32)
    for i, name in enumerate(names):
        out[i] = np.asarray(columns[name]()).reshape(shape)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1))


def build_features(chunk: EventChunk, sel: Selection,
                   input_features: str) -> dict[str, LevelFeatures]:
    """Raw features of every level, keyed by level name."""
    builders = {"constituent": constituent_features, "jet": jet_features,
                "event": event_features}
    return {level: builders[level](chunk, sel, feature_names(input_features, level))
            for level in LEVELS}
