"""Single physics observables that need no training, kept raw (unscaled) per event.

They are the honest reference for every model (SPEC §9): ``detect`` scores each one as a
one-variable cut beside the model's scores, so every run shows whether the model beats what a
physicist would plot first; the masses also feed the mass-sculpting checks.

=======================  ==========================================================
``met``                  visible missing transverse momentum [GeV]
``met_over_j1pt``        MET divided by the leading-jet pt (at least 1 GeV)
``j1_mass``              leading-jet mass [GeV]
``j1_num_constits``      leading-jet constituent multiplicity
``n_btag``               number of b-tagged jets
``mjj``                  invariant mass of the two leading jets [GeV]
``mt``                   transverse mass of the dijet system with the MET [GeV]
=======================  ==========================================================

Events without a jet get zeros for the jet quantities (as in the event features).
"""

from __future__ import annotations

import numpy as np

from bead.io.events import EventChunk
from bead.prepare.features import event_features
from bead.prepare.select import Selection

OBSERVABLES = ("met", "met_over_j1pt", "j1_mass", "j1_num_constits", "n_btag", "mjj", "mt")
_MIN_J1_PT = 1.0  # GeV: keeps MET / pt finite for events without a jet


def observables(chunk: EventChunk, sel: Selection) -> np.ndarray:
    """[N, len(OBSERVABLES)] float32 raw observables of every event of ``chunk``."""
    names = ["met", "j1_pt", "j1_mass", "j1_num_constits", "n_btag", "mjj", "mt"]
    raw = dict(zip(names, event_features(chunk, sel, names).values.T, strict=True))
    raw["met_over_j1pt"] = raw["met"] / np.maximum(raw["j1_pt"], _MIN_J1_PT)
    return np.stack([raw[name] for name in OBSERVABLES], axis=1).astype(np.float32)
