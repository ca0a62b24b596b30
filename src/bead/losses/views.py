"""CRVSTAL augmentations: random views of an event that keep its physics, for NT-Xent.

They act on the prepared (scaled) features and find their columns through the feature names of
the layout preparation recorded (``LevelLayout.features``), never by importing preparation code.
Working in the scaled space is exact for some augmentations and an approximation for others:

- ``rotate_phi``: one angle per event, uniform in [0, 2 pi), rotates every azimuth pair
  (``phi_sin``/``phi_cos``, ``met_phi_sin``/``met_phi_cos``, ``j1_phi_sin``/...) of every level
  by the same amount. Exact for raw sin/cos columns (``pj_custom``, or ``sincos`` after any
  rescaling step); when a later step standardised them it is exact up to their fitted means
  and the ratio of their widths (for a uniform phi: about 0 and 1). Relative angles (``dphi``)
  and everything else are left alone, as a global rotation leaves them. An azimuth prepared as
  a plain column (no ``sincos``) cannot be rotated in the scaled space: a config error.
- ``smear_eta_phi``: per object, one shift ``N(0, ntxent_sigma)`` added to its eta-like columns
  (``eta``, ``deta``, ``j1_eta``) and one to its azimuth: its sin/cos pairs are rotated by that
  many radians (which moves the point by about that distance on the unit circle) and ``dphi``
  gets the same shift. Widths are in the scaled units of each column (for standardised columns:
  standard deviations of the background), the same shift for absolute and relative columns.
- ``smear_pt``: ``N(0, ntxent_sigma)`` added to every scaled ``pt``. With pj_custom
  (``(log(1 + pt) - m) / s``) that multiplies pt by about ``exp(s * eps)``: a relative
  resolution of about ``s * ntxent_sigma``.
- ``drop_soft`` (constituents): the softer half of the event's real constituents, ranked by
  their scaled pt (any scaling but ``l2`` keeps the order of pt), are each dropped with
  probability 1/2; the mask is updated and the slot zeroed. The hardest one is never dropped.
- ``split_collinear`` (constituents): one random real constituent is split in two at the same
  position (every other feature copied) into the first free slot, with momentum fractions
  z ~ U(0.1, 0.9) and 1 - z. In the scaled space the split adds log z and log(1 - z) to the
  scaled pt, which is exact for log pt in units where its scale s is 1; with pj_custom's
  standardised log(1 + pt) the two parts carry pt * (z^s + (1 - z)^s), i.e. the momentum is
  conserved to within about 20 % for s between 0.7 and 1.5 (constituents of a few hundred GeV
  jets have s near 1), and exactly only for pt >> 1 GeV at s = 1. An event with no free slot is
  left as it is.

The other levels are not recomputed after an augmentation (a dropped constituent does not
change its jet's pt or multiplicity): each level is augmented as an independent view of the
same event. Padded slots stay zero after every augmentation (only ``split_collinear`` turns one
into a real slot). Every augmentation is applied to each event of each view with the
probability ``augmentations`` gives it, and all draws come from ``generator`` (or torch's
global generator, which training seeds and checkpoints), in shapes that depend only on the
batch shape, so views are reproducible.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor

from bead.errors import UsageError
from bead.levels import Layout, LevelLayout
from bead.losses.catalog import AUGMENTATIONS
from bead.models.batch import Batch, Level

log = logging.getLogger(__name__)

Levels = dict[str, Level]
SPLIT_RANGE = (0.1, 0.9)  # momentum fraction of one half of a collinear split


# --- columns, by the names preparation gave them ------------------------------------------------

def _is_azimuth(name: str) -> bool:
    """An absolute azimuth: phi, met_phi, j1_phi (dphi is relative to the jet)."""
    return name == "phi" or name.endswith("_phi")


def azimuth_pairs(features: tuple[str, ...]) -> list[tuple[int, int]]:
    """(sin, cos) column pairs of every azimuth prepared as ``<name>_sin``/``<name>_cos``."""
    return [(i, features.index(name[:-4] + "_cos")) for i, name in enumerate(features)
            if name.endswith("_sin") and _is_azimuth(name[:-4])
            and name[:-4] + "_cos" in features]


def _columns(features: tuple[str, ...], wanted: Callable[[str], bool]) -> list[int]:
    return [i for i, name in enumerate(features) if wanted(name)]


def _eta_like(name: str) -> bool:
    return name in ("eta", "deta") or name.endswith("_eta")


def _plain_azimuths(features: tuple[str, ...]) -> list[int]:
    return _columns(features, _is_azimuth)


def _dphi(features: tuple[str, ...]) -> list[int]:
    return _columns(features, lambda n: n == "dphi")


def _pt(features: tuple[str, ...]) -> list[int]:
    return _columns(features, lambda n: n == "pt")


def _rotate(x: Tensor, pairs: list[tuple[int, int]], angle: Tensor) -> Tensor:
    """(sin phi, cos phi) -> (sin(phi + a), cos(phi + a)) for every pair; ``angle`` [B, S]."""
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    out = x.clone()
    for i_sin, i_cos in pairs:
        s, c = x[..., i_sin], x[..., i_cos]
        out[..., i_sin] = s * cos + c * sin
        out[..., i_cos] = c * cos - s * sin
    return out


def _padded_zero(x: Tensor, mask: Tensor) -> Level:
    return Level(torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype,
                                                                device=x.device)), mask)


# --- the augmentations -------------------------------------------------------------------------

class Augmentation:
    """``targets(layout)``: the levels it changes; ``apply`` changes them for the events where
    ``apply`` [B] is True."""

    def targets(self, layout: Layout) -> list[str]:
        raise NotImplementedError

    def check(self, layout: Layout) -> None:
        """A UsageError when the inputs are prepared in a way this augmentation cannot handle."""

    def apply(self, levels: Levels, layout: Layout, apply: Tensor, sigma: float,
              generator: torch.Generator | None) -> Levels:
        raise NotImplementedError


def _draw(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None,
          normal: bool = False) -> Tensor:
    fn = torch.randn if normal else torch.rand
    return fn(shape, generator=generator, device=like.device, dtype=torch.float32)


class RotatePhi(Augmentation):
    def targets(self, layout: Layout) -> list[str]:
        return [lv for lv, lo in layout.items() if azimuth_pairs(lo.features)]

    def check(self, layout: Layout) -> None:
        for level, lo in layout.items():
            plain = [lo.features[i] for i in _plain_azimuths(lo.features)]
            if plain:
                raise UsageError(
                    f"augmentations: rotate_phi needs every azimuth as a sin/cos pair, but the "
                    f"prepared {level} features have {', '.join(plain)} as a plain column "
                    "(prepare with normalizations = 'pj_custom' or a chain with 'sincos', or "
                    "leave rotate_phi out)")

    def apply(self, levels: Levels, layout: Layout, apply: Tensor, sigma: float,
              generator: torch.Generator | None) -> Levels:
        some = next(iter(levels.values())).x
        angle = _draw((len(apply),), some, generator) * (2 * math.pi)
        angle = torch.where(apply, angle, torch.zeros_like(angle))
        out = dict(levels)
        for level in self.targets(layout):
            lv = levels[level]
            pairs = azimuth_pairs(layout[level].features)
            out[level] = _padded_zero(_rotate(lv.x, pairs, angle.unsqueeze(1).expand(
                lv.mask.shape)), lv.mask)
        return out


class SmearEtaPhi(Augmentation):
    def targets(self, layout: Layout) -> list[str]:
        return [lv for lv, lo in layout.items()
                if _columns(lo.features, _eta_like) or azimuth_pairs(lo.features)
                or _plain_azimuths(lo.features) or _dphi(lo.features)]

    def apply(self, levels: Levels, layout: Layout, apply: Tensor, sigma: float,
              generator: torch.Generator | None) -> Levels:
        out = dict(levels)
        for level in self.targets(layout):
            lv, features = levels[level], layout[level].features
            shape = tuple(lv.mask.shape)
            on = apply.unsqueeze(1).to(torch.float32)
            d_eta = _draw(shape, lv.x, generator, normal=True) * sigma * on
            d_phi = _draw(shape, lv.x, generator, normal=True) * sigma * on
            x = _rotate(lv.x, azimuth_pairs(features), d_phi)
            for i in _columns(features, _eta_like):
                x[..., i] = x[..., i] + d_eta.to(x.dtype)
            for i in _plain_azimuths(features) + _dphi(features):
                x[..., i] = x[..., i] + d_phi.to(x.dtype)
            out[level] = _padded_zero(x, lv.mask)
        return out


class SmearPt(Augmentation):
    def targets(self, layout: Layout) -> list[str]:
        return [lv for lv, lo in layout.items() if _pt(lo.features)]

    def apply(self, levels: Levels, layout: Layout, apply: Tensor, sigma: float,
              generator: torch.Generator | None) -> Levels:
        out = dict(levels)
        for level in self.targets(layout):
            lv = levels[level]
            noise = _draw(tuple(lv.mask.shape), lv.x, generator, normal=True) * sigma
            noise = noise * apply.unsqueeze(1).to(torch.float32)
            x = lv.x.clone()
            for i in _pt(layout[level].features):
                x[..., i] = x[..., i] + noise.to(x.dtype)
            out[level] = _padded_zero(x, lv.mask)
        return out


class _ConstituentPt(Augmentation):
    """Acts on the constituent level, which must have a pt column."""

    def targets(self, layout: Layout) -> list[str]:
        lo = layout.get("constituent")
        return ["constituent"] if lo is not None and _pt(lo.features) else []

    @staticmethod
    def pt_column(lo: LevelLayout) -> int:
        return _pt(lo.features)[0]


class DropSoft(_ConstituentPt):
    def apply(self, levels: Levels, layout: Layout, apply: Tensor, sigma: float,
              generator: torch.Generator | None) -> Levels:
        if not self.targets(layout):
            return levels
        lv = levels["constituent"]
        pt = lv.x[..., self.pt_column(layout["constituent"])]
        key = torch.where(lv.mask, pt, torch.full_like(pt, math.inf))  # padded sort last
        rank = key.argsort(dim=1, stable=True).argsort(dim=1, stable=True)  # 0 = softest
        n_real = lv.mask.sum(1, keepdim=True)
        softer_half = lv.mask & (rank < n_real // 2)
        coin = _draw(tuple(lv.mask.shape), lv.x, generator) < 0.5
        mask = lv.mask & ~(softer_half & coin & apply.unsqueeze(1))
        return {**levels, "constituent": _padded_zero(lv.x, mask)}


class SplitCollinear(_ConstituentPt):
    def apply(self, levels: Levels, layout: Layout, apply: Tensor, sigma: float,
              generator: torch.Generator | None) -> Levels:
        if not self.targets(layout):
            return levels
        lv = levels["constituent"]
        ipt = self.pt_column(layout["constituent"])
        b = len(apply)
        pick = torch.where(lv.mask, _draw(tuple(lv.mask.shape), lv.x, generator),
                           torch.full(lv.mask.shape, -1.0, device=lv.x.device))
        lo, hi = SPLIT_RANGE
        z = lo + (hi - lo) * _draw((b,), lv.x, generator)
        parent = pick.argmax(1)
        free = ~lv.mask
        target = free.to(torch.uint8).argmax(1)  # the first free slot
        do = apply & free.any(1) & lv.mask.any(1)
        rows = torch.arange(b, device=lv.x.device)
        x, mask = lv.x.clone(), lv.mask.clone()
        original = x[rows, parent]
        half, other = original.clone(), original.clone()
        half[:, ipt] = half[:, ipt] + torch.log(z).to(x.dtype)
        other[:, ipt] = other[:, ipt] + torch.log1p(-z).to(x.dtype)
        x[rows, parent] = torch.where(do.unsqueeze(1), half, original)
        x[rows, target] = torch.where(do.unsqueeze(1), other, x[rows, target])
        mask[rows, target] = mask[rows, target] | do
        return {**levels, "constituent": _padded_zero(x, mask)}


_IMPLEMENTATIONS: dict[str, Augmentation] = {
    "rotate_phi": RotatePhi(), "smear_eta_phi": SmearEtaPhi(), "smear_pt": SmearPt(),
    "drop_soft": DropSoft(), "split_collinear": SplitCollinear(),
}
assert tuple(_IMPLEMENTATIONS) == tuple(AUGMENTATIONS), "views and the catalog disagree"


def check_augmentations(layout: Layout, probabilities: dict[str, float]) -> None:
    """A UsageError when the augmentations cannot make two different views of these inputs
    (none acts on them, or rotate_phi meets a plain azimuth column); the ones that find
    nothing to act on are named in the log."""
    if not probabilities:
        raise UsageError("augmentations is empty: NT-Xent contrasts two augmented views of "
                         f"each event; choose some of {', '.join(AUGMENTATIONS)}")
    for name in probabilities:
        _IMPLEMENTATIONS[name].check(layout)
    idle = [n for n in probabilities if not _IMPLEMENTATIONS[n].targets(layout)]
    if len(idle) == len(probabilities):
        levels = "; ".join(f"{lv}: {', '.join(lo.features)}" for lv, lo in layout.items())
        raise UsageError(f"augmentations: none of {', '.join(probabilities)} acts on these "
                         f"inputs ({levels}), so the two views of an event would be identical")
    if idle:
        log.info("augmentations with nothing to act on in these inputs (left out): %s",
                 ", ".join(idle))


def augment(batch: Batch, layout: Layout, probabilities: dict[str, float], sigma: float,
            generator: torch.Generator | None = None) -> Batch:
    """One random view of every event of ``batch``: each augmentation of ``probabilities``
    (name -> probability per event), in the catalog's order, on the levels of ``layout``."""
    levels = {lv: batch[lv] for lv in layout}
    some = next(iter(levels.values())).x
    for name in AUGMENTATIONS:
        if name in probabilities:
            apply = _draw((len(batch),), some, generator) < probabilities[name]
            levels = _IMPLEMENTATIONS[name].apply(levels, layout, apply, sigma, generator)
    return batch.with_levels({**batch.levels, **levels})
