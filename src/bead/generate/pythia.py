"""One block of events: Pythia 8 runs in this process, the detector emulation selects them.

Events are pulled from Pythia in batches as awkward arrays (``nextBatch``).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from bead.errors import BeadError, DataError, MissingExtraError
from bead.generate.cards import derive_seed, pythia_commands
from bead.generate.detector import Selected, Visibility, select_events, to_chunk
from bead.generate.settings import GenerationSettings, SignalPoint
from bead.io.events import EventChunk

_MAX_BATCH = 250  # events per Pythia batch: bounds the memory of one awkward event batch


def generate_events(kind: str, generator: str, n_events: int, settings: GenerationSettings,
                    seed_key: str, point: SignalPoint | None = None) -> EventChunk:
    """Generate ``n_events`` selected events in this process (event ids 0..n-1).

    ``kind`` is ``"qcd"`` or ``"svj"`` (at signal ``point``, by default the settings' first);
    ``seed_key`` names the block, and with ``settings.seed`` fixes the Pythia seed and the
    b-tagging random stream.
    """
    pythia8mc, fastjet = import_extras()
    seed = derive_seed(settings.seed, seed_key)
    pythia = _make_pythia(pythia8mc, pythia_commands(kind, generator, settings, seed, point))
    visibility = Visibility(pythia.particleData)
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, settings.jet_r)

    parts: list[Selected] = []
    accepted = requested = 0
    max_requested = 1000 + 200 * n_events
    while accepted < n_events:
        if requested >= max_requested:
            raise DataError(
                f"only {accepted} of {n_events} {kind}/{generator} events passed the jet "
                f"selection after {requested} generated: lower gen_jet_pt_min or gen_min_jets")
        remaining = n_events - accepted
        efficiency = max(accepted / requested, 0.05) if requested else 1.0
        n_request = min(math.ceil(1.1 * remaining / efficiency), _MAX_BATCH)
        batch = pythia.nextBatch(n_request)
        requested += n_request
        selected = select_events(batch, visibility, settings, jet_def, fastjet, remaining)
        parts.append(selected)
        accepted += selected.n_events

    rng = np.random.default_rng(derive_seed(settings.seed, f"{seed_key}/btag"))
    return to_chunk(parts, rng)


def import_extras() -> tuple[ModuleType, ModuleType]:
    try:
        import fastjet
        import pythia8mc
    except ImportError as exc:
        raise MissingExtraError("generate", "pythia8mc", "Event generation") from exc
    # Silence FastJet's banner: any SWIG ClusterSequence class carries the static controls.
    fastjet.ClusterSequenceArea.set_fastjet_banner_stream(None)
    fastjet.ClusterSequenceArea.print_banner()
    return pythia8mc, fastjet


def _make_pythia(pythia8mc: ModuleType, commands: list[str]) -> Any:
    pythia = pythia8mc.Pythia("", False)
    for command in commands:
        if not pythia.readString(command):
            raise BeadError(f"Pythia rejected the setting {command!r}")
    if not pythia.init():
        raise BeadError("Pythia failed to initialise with the generation settings")
    return pythia
