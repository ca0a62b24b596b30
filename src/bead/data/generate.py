"""Monte-Carlo event generation with Pythia 8 and FastJet into BEAD CSVs (SPEC §5).

Background is QCD multijet production from several "generators" (shower/tune variants of
Pythia 8); the signal is semi-visible jets from the Hidden Valley module (the CMS s-channel Z'
model). Each sample is cut into blocks of ``block_size`` events whose seeds are derived from
(``seed``, sample name, block number), so the files do not depend on how many worker processes
ran the blocks. Events are pulled from Pythia in batches as awkward arrays and all per-particle
work (visibility, MET, clustering input, jet selection, b-tagging) is done with numpy.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import awkward as ak
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bead.data.csv_write import write_bead_csv
from bead.data.events import EventChunk
from bead.errors import BeadError, DataError, MissingExtraError, UsageError

logger = logging.getLogger(__name__)

# Pythia settings that make each background "generator" (SPEC §5).
GENERATORS: dict[str, tuple[str, ...]] = {
    "pythia": (),  # default simple shower, Monash tune
    "a14": ("Tune:pp = 21",),
    "vincia": ("PartonShowers:model = 2", "Vincia:sectorShower = off"),
}
KINDS = ("qcd", "svj")
SIGNAL_GENERATOR = "pythia"  # the Hidden Valley shower only runs in Pythia's simple shower

# MS-bar quark masses (GeV) for the dark-meson decays to SM quarks, as in the CMS SVJ model.
_QUARK_MASSES = {1: 0.0048, 2: 0.0023, 3: 0.095, 4: 1.275, 5: 4.18}
# Dark sector of the CMS model: SU(2) with two dark flavours.
_DARK_NCOLOUR, _DARK_NFLAV = 2, 2
_MIN_HV_LAMBDA = 0.01  # smallest HiddenValley:Lambda Pythia accepts
_MAX_BATCH = 250  # events per Pythia batch: bounds the memory of one awkward event batch
_BTAG_PROB = {"b": 0.7, "c": 0.1, "light": 0.01}
_SEED_RANGE = 900_000_000  # Pythia's Random:seed accepts 1..900000000


@dataclass(frozen=True)
class GenerationSettings:
    """What to generate; the config keys are ``gen_<field>``."""

    bkg_train_events: int = 2000
    bkg_test_events: int = 1000
    sig_events: int = 1000
    generators: tuple[str, ...] = ("pythia", "a14", "vincia")
    pthat_min: float = 500.0
    sqrt_s: float = 13000.0
    jet_r: float = 0.8
    jet_eta_max: float = 2.5
    jet_pt_min: float = 200.0
    met_eta_max: float = 4.9
    min_jets: int = 2
    zprime_mass: float = 1500.0
    dark_meson_mass: float = 20.0
    rinv: float = 0.3
    alpha_dark: float = 0.2
    seed: int = 1
    block_size: int = 250

    def __post_init__(self) -> None:
        object.__setattr__(self, "generators", tuple(self.generators))
        for name in ("bkg_train_events", "bkg_test_events", "sig_events"):
            if getattr(self, name) < 0:
                raise UsageError(f"gen_{name} must be >= 0, got {getattr(self, name)}")
        for name in ("pthat_min", "sqrt_s", "jet_r", "jet_eta_max", "met_eta_max",
                     "zprime_mass", "dark_meson_mass", "alpha_dark"):
            if not getattr(self, name) > 0:
                raise UsageError(f"gen_{name} must be > 0, got {getattr(self, name)}")
        for name in ("min_jets", "block_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"gen_{name} must be >= 1, got {getattr(self, name)}")
        if self.jet_pt_min < 0:
            raise UsageError(f"gen_jet_pt_min must be >= 0, got {self.jet_pt_min}")
        if not 0.0 <= self.rinv <= 1.0:
            raise UsageError(f"gen_rinv must be in [0, 1], got {self.rinv}")
        if self.zprime_mass <= 2 * self.dark_meson_mass:
            raise UsageError("gen_zprime_mass must exceed twice gen_dark_meson_mass")
        if self.rinv < 1.0 and not _visible_quarks(self.dark_meson_mass):
            raise UsageError(f"gen_dark_meson_mass = {self.dark_meson_mass} GeV is too light "
                             "to decay to any quark pair")
        if dark_lambda(self.alpha_dark) < _MIN_HV_LAMBDA:
            raise UsageError(f"gen_alpha_dark = {self.alpha_dark} gives a dark confinement "
                             f"scale below {_MIN_HV_LAMBDA} GeV; use a larger value")
        for name in self.generators:
            check_generator(name)
        if len(set(self.generators)) != len(self.generators):
            raise UsageError(f"gen_generators lists a generator twice: {list(self.generators)}")


@dataclass(frozen=True)
class GeneratedSample:
    """One CSV written by :func:`generate_samples`.

    ``seconds`` is the wall time spent waiting for and writing this sample; with several
    workers the samples are generated concurrently, so the overall rate is logged separately.
    """

    path: Path
    n_events: int
    seconds: float
    events_per_second: float


@dataclass(frozen=True)
class _Sample:
    name: str
    kind: str
    generator: str
    n_events: int


@dataclass(frozen=True)
class _Block:
    kind: str
    generator: str
    n_events: int
    settings: GenerationSettings
    seed_key: str


def check_generator(name: str) -> None:
    """Raise a usage error naming the known generators if ``name`` is not one."""
    if name not in GENERATORS:
        raise UsageError(f"gen_generators: unknown generator {name!r}; "
                         f"known: {', '.join(GENERATORS)}")


def signal_tag(settings: GenerationSettings) -> str:
    """File-name tag of the signal point, e.g. ``mz1500_mdark20_rinv0p3_alpha0p2``."""
    def num(x: float) -> str:
        return f"{x:g}".replace(".", "p").replace("-", "m")
    return (f"mz{num(settings.zprime_mass)}_mdark{num(settings.dark_meson_mass)}"
            f"_rinv{num(settings.rinv)}_alpha{num(settings.alpha_dark)}")


def dark_lambda(alpha_dark: float) -> float:
    """Dark confinement scale (GeV) for a one-loop running coupling alpha_dark at 1 TeV.

    alpha(Q) = pi / (b0 ln(Q / Lambda)) with b0 = 11/6 N_c - 1/3 N_f, the convention of the
    CMS model and of Pythia's first-order ``HiddenValley:alphaOrder = 1`` running.
    """
    b0 = 11.0 / 6.0 * _DARK_NCOLOUR - 1.0 / 3.0 * _DARK_NFLAV
    return 1000.0 * math.exp(-math.pi / (b0 * alpha_dark))


def derive_seed(base_seed: int, key: str) -> int:
    """A Pythia seed (1..900000000) derived from the run seed and a block's key."""
    digest = hashlib.sha256(f"bead-generate/{base_seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _SEED_RANGE + 1


def pythia_commands(kind: str, generator: str, settings: GenerationSettings,
                    seed: int) -> list[str]:
    """The Pythia ``readString`` commands for one sample kind and generator."""
    check_generator(generator)
    common = [
        f"Beams:eCM = {settings.sqrt_s:g}",
        "Print:quiet = on",
        "Print:verbosity = 1",  # only aborts; failures surface as exceptions here
        "Print:useErrorStream = on",
        "Next:numberCount = 0",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        # Long-lived hadrons (K0S, Lambda, ...: c*tau > 10 mm) stay stable, as in the original
        # BEAD files, where they reach the detector.
        "ParticleDecays:limitTau0 = on",
        "ParticleDecays:tau0Max = 10",
    ]
    if kind == "qcd":
        process = ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {settings.pthat_min:g}"]
    elif kind == "svj":
        if generator == "vincia":
            raise UsageError("the svj signal cannot use generator 'vincia': the Hidden Valley "
                             "shower runs only in Pythia's simple shower")
        process = _svj_commands(settings)
    else:
        raise UsageError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
    return common + list(GENERATORS[generator]) + process


def _visible_quarks(dark_meson_mass: float) -> list[int]:
    return [q for q, m in _QUARK_MASSES.items() if 2 * m < dark_meson_mass]


def _svj_commands(s: GenerationSettings) -> list[str]:
    """Hidden Valley s-channel Z' -> dark quarks with the CMS SVJ model's dark sector.

    r_inv is the branching ratio of every dark meson to a pair of invisible stand-ins (PDG 51
    for the pseudoscalars, 53 for the vectors); the rest decays to SM quark pairs that
    hadronise: pseudoscalars in proportion to m_q^2 (mass insertion), vectors democratically.
    """
    lam = dark_lambda(s.alpha_dark)
    quark_mass = s.dark_meson_mass / 2
    cmds = [
        "HiddenValley:ffbar2Zv = on",
        f"4900023:m0 = {s.zprime_mass:g}",
        f"4900023:mMin = {s.zprime_mass - 1:g}",
        f"4900023:mMax = {s.zprime_mass + 1:g}",
        "4900023:mWidth = 0.01",
        # Leptophobic Z': the small SM-quark widths give the q qbar production; only the
        # decay to dark quarks is switched on.
        "4900023:oneChannel = 1 0.982 102 4900101 -4900101",
        *(f"4900023:addChannel = 1 0.003 102 {q} -{q}" for q in range(1, 7)),
        "4900023:onMode = off",
        "4900023:onIfMatch = 4900101 -4900101",
        f"4900101:m0 = {quark_mass:g}",
        *(f"{pdg}:m0 = {s.dark_meson_mass:g}" for pdg in (4900111, 4900211, 4900113, 4900213)),
        "51:m0 = 0", "51:isResonance = off",
        "53:m0 = 0", "53:isResonance = off",
        f"HiddenValley:Ngauge = {_DARK_NCOLOUR}",
        f"HiddenValley:nFlav = {_DARK_NFLAV}",
        "HiddenValley:spinFv = 0",
        "HiddenValley:FSR = on",
        "HiddenValley:fragment = on",
        "HiddenValley:alphaOrder = 1",
        "HiddenValley:setLambda = on",
        f"HiddenValley:Lambda = {lam:.6g}",
        f"HiddenValley:pTminFSR = {max(quark_mass, 1.1 * lam):.6g}",
        "HiddenValley:probVector = 0.75",
    ]
    quarks = _visible_quarks(s.dark_meson_mass)
    mass2 = sum(_QUARK_MASSES[q] ** 2 for q in quarks)
    visible = 1.0 - s.rinv
    for meson, stand_in, share in (
        (4900111, 51, {q: _QUARK_MASSES[q] ** 2 / mass2 for q in quarks}),
        (4900211, 51, {q: _QUARK_MASSES[q] ** 2 / mass2 for q in quarks}),
        (4900113, 53, {q: 1 / len(quarks) for q in quarks}),
        (4900213, 53, {q: 1 / len(quarks) for q in quarks}),
    ):
        channels = [(s.rinv, f"0 {stand_in} -{stand_in}")]
        channels += [(visible * frac, f"91 {q} -{q}") for q, frac in share.items()]
        channels = [(br, rest) for br, rest in channels if br > 0]
        for i, (br, rest) in enumerate(channels):
            verb = "oneChannel" if i == 0 else "addChannel"
            cmds.append(f"{meson}:{verb} = 1 {br:.6g} {rest}")
    return cmds


# ---------------------------------------------------------------------------------------------
# One block of events


def generate_events(kind: str, generator: str, n_events: int, settings: GenerationSettings,
                    seed_key: str) -> EventChunk:
    """Generate ``n_events`` selected events in this process (event ids 0..n-1).

    ``kind`` is ``"qcd"`` or ``"svj"``; ``seed_key`` names the block, and with ``settings.seed``
    fixes the Pythia seed and the b-tagging random stream.
    """
    pythia8mc, fastjet = _import_extras()
    seed = derive_seed(settings.seed, seed_key)
    pythia = _make_pythia(pythia8mc, pythia_commands(kind, generator, settings, seed))
    visibility = _Visibility(pythia.particleData)
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, settings.jet_r)

    parts: list[_Selected] = []
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
        selected = _select(batch, visibility, settings, jet_def, fastjet, remaining)
        parts.append(selected)
        accepted += selected.n_events

    rng = np.random.default_rng(derive_seed(settings.seed, f"{seed_key}/btag"))
    return _to_chunk(parts, rng)


def _import_extras() -> tuple[ModuleType, ModuleType]:
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


class _Visibility:
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
class _Selected:
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


def _select(batch: Any, visibility: _Visibility, settings: GenerationSettings, jet_def: Any,
            fastjet: ModuleType, limit: int) -> _Selected:
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

    return _Selected(
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


def _to_chunk(parts: list[_Selected], rng: np.random.Generator) -> EventChunk:
    joined = {f.name: np.concatenate([getattr(p, f.name) for p in parts])
              for f in fields(_Selected)}
    tag_prob = joined.pop("jet_tag_prob")
    weight = joined.pop("weight")
    return EventChunk(
        evt_id=np.arange(len(weight), dtype=np.int64),
        evt_weight=weight,
        jet_btag=(rng.random(len(tag_prob)) < tag_prob).astype(np.int64),
        **joined,
    )


# ---------------------------------------------------------------------------------------------
# Whole samples, in parallel


def _sample_plan(settings: GenerationSettings) -> list[_Sample]:
    """The samples ``generate_samples`` writes, in order (event-count-zero ones left out)."""
    plan = []
    for generator in settings.generators:
        plan.append(_Sample(f"bkg_train_{generator}", "qcd", generator,
                            settings.bkg_train_events))
        plan.append(_Sample(f"bkg_test_{generator}", "qcd", generator,
                            settings.bkg_test_events))
    plan.append(_Sample(f"sig_test_svj_{signal_tag(settings)}", "svj", SIGNAL_GENERATOR,
                        settings.sig_events))
    return [s for s in plan if s.n_events > 0]


def generate_samples(settings: GenerationSettings, csv_dir: Path, workers: int = 1,
                     progress: bool = True) -> list[GeneratedSample]:
    """Generate every sample of ``settings`` into ``csv_dir`` as BEAD CSVs.

    Blocks run in ``workers`` processes; files are identical whatever the number of workers.
    """
    if workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    _import_extras()  # fail here, in one clear line, rather than inside a worker
    csv_dir = Path(csv_dir)
    csv_dir.mkdir(parents=True, exist_ok=True)
    executor = (ProcessPoolExecutor(max_workers=workers,
                                    mp_context=multiprocessing.get_context("spawn"))
                if workers > 1 else None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("blocks"), TimeRemainingColumn())
    results = []
    try:
        t0 = time.perf_counter()
        plan = [(sample, _blocks(sample, settings)) for sample in _sample_plan(settings)]
        # Every block of every sample is queued at once, so workers never idle while one
        # sample's last block finishes; files are still written sample by sample, in order.
        queued = [[executor.submit(_run_block, b) for b in blocks] if executor else None
                  for _, blocks in plan]
        with Progress(*columns, disable=not progress) as bar:
            for (sample, blocks), futures in zip(plan, queued, strict=True):
                task = bar.add_task(sample.name, total=len(blocks))
                start = time.perf_counter()
                path = csv_dir / f"{sample.name}.csv"
                chunks = _block_results(blocks, futures, lambda t=task: bar.advance(t))
                n_written = write_bead_csv(path, chunks)
                seconds = time.perf_counter() - start
                rate = n_written / seconds if seconds > 0 else float("inf")
                logger.info("%s: %d events", path.name, n_written)
                results.append(GeneratedSample(path, n_written, seconds, rate))
        total = sum(r.n_events for r in results)
        wall = time.perf_counter() - t0
        logger.info("generated %d events in %.1f s: %.1f events/s with %d worker(s)", total,
                    wall, total / wall if wall > 0 else float("inf"), workers)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return results


def _blocks(sample: _Sample, settings: GenerationSettings) -> list[_Block]:
    sizes = [min(settings.block_size, sample.n_events - start)
             for start in range(0, sample.n_events, settings.block_size)]
    return [_Block(sample.kind, sample.generator, size, settings, f"{sample.name}/{k}")
            for k, size in enumerate(sizes)]


def _run_block(block: _Block) -> EventChunk:
    """Worker entry point (top level, so spawned processes can import it)."""
    return generate_events(block.kind, block.generator, block.n_events, block.settings,
                           block.seed_key)


def _block_results(blocks: list[_Block], futures: list[Future[EventChunk]] | None,
                   advance: Callable[[], None]) -> Iterator[EventChunk]:
    """Chunks of ``blocks`` in block order (from ``futures`` when running in workers), with
    event ids continuing across blocks."""
    first_id = 0
    for k, block in enumerate(blocks):
        try:
            chunk = futures[k].result() if futures is not None else _run_block(block)
        except BrokenProcessPool as exc:
            raise BeadError(f"a generation worker died while running block {block.seed_key}; "
                            "rerun with workers = 1 to see why") from exc
        yield replace(chunk, evt_id=chunk.evt_id + first_id)
        first_id += chunk.n_events
        advance()
