"""What to generate (SPEC §5): the settings of a generation run, checked before any event.

The background "generators" are shower/tune variants of Pythia 8; the signal is semi-visible
jets from the Hidden Valley module (the CMS s-channel Z' model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bead.errors import UsageError

# Pythia settings that make each background "generator" (SPEC §5).
GENERATORS: dict[str, tuple[str, ...]] = {
    "pythia": (),  # default simple shower, Monash tune
    "a14": ("Tune:pp = 21",),
    "vincia": ("PartonShowers:model = 2", "Vincia:sectorShower = off"),
}
KINDS = ("qcd", "svj")
SIGNAL_GENERATOR = "pythia"  # the Hidden Valley shower only runs in Pythia's simple shower

# MS-bar quark masses (GeV) for the dark-meson decays to SM quarks, as in the CMS SVJ model.
QUARK_MASSES = {1: 0.0048, 2: 0.0023, 3: 0.095, 4: 1.275, 5: 4.18}
# Dark sector of the CMS model: SU(2) with two dark flavours.
DARK_NCOLOUR, DARK_NFLAV = 2, 2
_MIN_HV_LAMBDA = 0.01  # smallest HiddenValley:Lambda Pythia accepts
# How the dark pseudoscalars decay to SM quarks: in proportion to m_q^2 (the CMS model's mass
# insertion), or equally to every flavour the meson mass allows (as the vectors always do).
DECAY_MODES = ("mass_insertion", "democratic")


@dataclass(frozen=True)
class SignalPoint:
    """One SVJ model point; several make a signal grid, one ``sig_test_*`` file each."""

    zprime_mass: float = 1500.0
    dark_meson_mass: float = 20.0
    rinv: float = 0.3
    alpha_dark: float = 0.2
    decay: str = "mass_insertion"

    def check(self, prefix: str) -> None:
        """UsageError for an impossible point, naming each value as ``<prefix><field>`` (the
        config key, e.g. ``gen_rinv`` or ``gen_signal_points[2].rinv``)."""
        for name in ("zprime_mass", "dark_meson_mass", "alpha_dark"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{prefix}{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.rinv <= 1.0:
            raise UsageError(f"{prefix}rinv must be in [0, 1], got {self.rinv}")
        if self.decay not in DECAY_MODES:
            raise UsageError(f"{prefix}decay: unknown decay mode {self.decay!r}; use one of "
                             + ", ".join(DECAY_MODES))
        if self.zprime_mass <= 2 * self.dark_meson_mass:
            raise UsageError(f"{prefix}zprime_mass = {self.zprime_mass:g} GeV must exceed twice "
                             f"{prefix}dark_meson_mass = {self.dark_meson_mass:g} GeV")
        if self.rinv < 1.0 and not visible_quarks(self.dark_meson_mass):
            raise UsageError(f"{prefix}dark_meson_mass = {self.dark_meson_mass} GeV is too "
                             "light to decay to any quark pair")
        if dark_lambda(self.alpha_dark) < _MIN_HV_LAMBDA:
            raise UsageError(f"{prefix}alpha_dark = {self.alpha_dark} gives a dark confinement "
                             f"scale below {_MIN_HV_LAMBDA} GeV; use a larger value")

    @property
    def tag(self) -> str:
        """File-name tag, e.g. ``mz1500_mdark20_rinv0p3_alpha0p2`` (+ ``_democratic``)."""
        def num(x: float) -> str:
            return f"{x:g}".replace(".", "p").replace("-", "m")
        tag = (f"mz{num(self.zprime_mass)}_mdark{num(self.dark_meson_mass)}"
               f"_rinv{num(self.rinv)}_alpha{num(self.alpha_dark)}")
        return tag if self.decay == "mass_insertion" else f"{tag}_{self.decay}"


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
    signal_points: tuple[SignalPoint, ...] = ()  # a grid; empty = the single point above
    seed: int = 1
    block_size: int = 250

    def __post_init__(self) -> None:
        object.__setattr__(self, "generators", tuple(self.generators))
        for name in ("bkg_train_events", "bkg_test_events", "sig_events"):
            if getattr(self, name) < 0:
                raise UsageError(f"gen_{name} must be >= 0, got {getattr(self, name)}")
        for name in ("pthat_min", "sqrt_s", "jet_r", "jet_eta_max", "met_eta_max"):
            if not getattr(self, name) > 0:
                raise UsageError(f"gen_{name} must be > 0, got {getattr(self, name)}")
        for name in ("min_jets", "block_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"gen_{name} must be >= 1, got {getattr(self, name)}")
        if self.jet_pt_min < 0:
            raise UsageError(f"gen_jet_pt_min must be >= 0, got {self.jet_pt_min}")
        object.__setattr__(self, "signal_points", tuple(
            p if isinstance(p, SignalPoint) else SignalPoint(**p) for p in self.signal_points))
        if self.signal_points:
            for i, point in enumerate(self.signal_points):
                point.check(f"gen_signal_points[{i}].")
            tags = [p.tag for p in self.signal_points]
            twice = sorted({t for t in tags if tags.count(t) > 1})
            if twice:
                raise UsageError(f"gen_signal_points: the point {twice[0]} is listed twice")
        else:
            self.points()[0].check("gen_")
        for name in self.generators:
            check_generator(name)
        if len(set(self.generators)) != len(self.generators):
            raise UsageError(f"gen_generators lists a generator twice: {list(self.generators)}")

    @classmethod
    def from_config(cls, config: Any) -> GenerationSettings:
        """The settings of a project config's ``gen_*`` keys (a grid entry's missing values
        take the single-point keys)."""
        values = {name.removeprefix("gen_"): getattr(config, name)
                  for name in type(config).model_fields if name.startswith("gen_")}
        single = {k: values[k] for k in ("zprime_mass", "dark_meson_mass", "rinv", "alpha_dark")}
        values["signal_points"] = tuple(
            SignalPoint(**{**single, **{k: v for k, v in entry.model_dump().items()
                                        if v is not None}})
            for entry in values["signal_points"])
        values["generators"] = tuple(values["generators"])
        return cls(**values)

    def points(self) -> tuple[SignalPoint, ...]:
        """The signal points to generate: the grid, else the single point of the scalar keys."""
        return self.signal_points or (SignalPoint(self.zprime_mass, self.dark_meson_mass,
                                                  self.rinv, self.alpha_dark),)


def check_generator(name: str) -> None:
    """Raise a usage error naming the known generators if ``name`` is not one."""
    if name not in GENERATORS:
        raise UsageError(f"gen_generators: unknown generator {name!r}; "
                         f"known: {', '.join(GENERATORS)}")


def dark_lambda(alpha_dark: float) -> float:
    """Dark confinement scale (GeV) for a one-loop running coupling alpha_dark at 1 TeV.

    alpha(Q) = pi / (b0 ln(Q / Lambda)) with b0 = 11/6 N_c - 1/3 N_f, the convention of the
    CMS model and of Pythia's first-order ``HiddenValley:alphaOrder = 1`` running.
    """
    b0 = 11.0 / 6.0 * DARK_NCOLOUR - 1.0 / 3.0 * DARK_NFLAV
    return 1000.0 * math.exp(-math.pi / (b0 * alpha_dark))


def visible_quarks(dark_meson_mass: float) -> list[int]:
    return [q for q, m in QUARK_MASSES.items() if 2 * m < dark_meson_mass]
