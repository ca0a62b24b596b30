"""Pythia 8 settings ("cards") for one block of events: QCD per generator, SVJ signal."""

from __future__ import annotations

import hashlib

from bead.errors import UsageError
from bead.generate.settings import (
    DARK_NCOLOUR,
    DARK_NFLAV,
    GENERATORS,
    KINDS,
    QUARK_MASSES,
    GenerationSettings,
    SignalPoint,
    check_generator,
    dark_lambda,
    visible_quarks,
)

_SEED_RANGE = 900_000_000  # Pythia's Random:seed accepts 1..900000000


def derive_seed(base_seed: int, key: str) -> int:
    """A Pythia seed (1..900000000) derived from the run seed and a block's key."""
    digest = hashlib.sha256(f"bead-generate/{base_seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _SEED_RANGE + 1


def pythia_commands(kind: str, generator: str, settings: GenerationSettings,
                    seed: int, point: SignalPoint | None = None) -> list[str]:
    """The Pythia ``readString`` commands for one sample kind and generator (and, for the
    signal, one model point: the first of ``settings.points()`` unless given)."""
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
        process = _svj_commands(point or settings.points()[0])
    else:
        raise UsageError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
    return common + list(GENERATORS[generator]) + process


def _svj_commands(s: SignalPoint) -> list[str]:
    """Hidden Valley s-channel Z' -> dark quarks with the CMS SVJ model's dark sector.

    r_inv is the branching ratio of every dark meson to a pair of invisible stand-ins (PDG 51
    for the pseudoscalars, 53 for the vectors); the rest decays to SM quark pairs that
    hadronise: vectors democratically (equally to every flavour the meson mass allows),
    pseudoscalars in proportion to m_q^2 (``decay = "mass_insertion"``, the CMS model) or
    democratically too (``decay = "democratic"``).
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
        f"HiddenValley:Ngauge = {DARK_NCOLOUR}",
        f"HiddenValley:nFlav = {DARK_NFLAV}",
        "HiddenValley:spinFv = 0",
        "HiddenValley:FSR = on",
        "HiddenValley:fragment = on",
        "HiddenValley:alphaOrder = 1",
        "HiddenValley:setLambda = on",
        f"HiddenValley:Lambda = {lam:.6g}",
        f"HiddenValley:pTminFSR = {max(quark_mass, 1.1 * lam):.6g}",
        "HiddenValley:probVector = 0.75",
    ]
    quarks = visible_quarks(s.dark_meson_mass)
    mass2 = sum(QUARK_MASSES[q] ** 2 for q in quarks)
    democratic = {q: 1 / len(quarks) for q in quarks}
    pseudoscalar = (democratic if s.decay == "democratic"
                    else {q: QUARK_MASSES[q] ** 2 / mass2 for q in quarks})
    visible = 1.0 - s.rinv
    for meson, stand_in, share in (
        (4900111, 51, pseudoscalar),
        (4900211, 51, pseudoscalar),
        (4900113, 53, democratic),
        (4900213, 53, democratic),
    ):
        channels = [(s.rinv, f"0 {stand_in} -{stand_in}")]
        channels += [(visible * frac, f"91 {q} -{q}") for q, frac in share.items()]
        channels = [(br, rest) for br, rest in channels if br > 0]
        for i, (br, rest) in enumerate(channels):
            verb = "oneChannel" if i == 0 else "addChannel"
            cmds.append(f"{meson}:{verb} = 1 {br:.6g} {rest}")
    return cmds
