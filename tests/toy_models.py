"""Tiny multi-level batches and layouts for model and loss tests (no preparation needed)."""

from __future__ import annotations

import torch

from bead.levels import LevelLayout, parse_levels
from bead.losses.catalog import LOSSES, compatible
from bead.models.base import BeadModel
from bead.models.batch import Batch, Level
from bead.models.catalog import MODELS
from bead.models.registry import build_model

LATENT = 3
LAYOUT = {
    "event": LevelLayout(1, ("met", "met_phi_sin", "met_phi_cos", "ht", "n_btag")),
    "jet": LevelLayout(3, ("pt", "eta", "phi_sin", "phi_cos", "mass")),
    "constituent": LevelLayout(6, ("pt", "eta", "deta", "dphi")),
}


def default_levels(name: str) -> tuple[str, ...]:
    """Levels a catalog entry can read, for tests: the richest set it accepts."""
    entry = MODELS[name]
    for text in ("event+jet+constituent", "event+jet", "constituent", "jet", "event"):
        if entry.accepts(parse_levels(text)):
            return parse_levels(text)
    raise AssertionError(f"{name} reads no level")


def default_loss(name: str) -> str:
    """The first loss of the catalog that fits ``name``, preferring the richest objective."""
    for loss in ("VAEFlowLoss", "VAELoss", "FlowNLLLoss", "AELoss"):
        if compatible(name, loss):
            return loss
    return next(lo for lo in LOSSES if compatible(name, lo))


def toy_batch(b: int = 6, seed: int = 0, levels: tuple[str, ...] = tuple(LAYOUT)) -> Batch:
    """Random inputs with ragged multiplicity (slot 0 always real); padded slots are zero."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for level in levels:
        lo = LAYOUT[level]
        mask = torch.rand(b, lo.n_slots, generator=gen) < 0.6
        mask[:, 0] = True
        x = torch.randn(b, lo.n_slots, lo.n_features, generator=gen) * mask.unsqueeze(-1)
        out[level] = Level(x, mask)
    return Batch(out, torch.ones(b), torch.randint(0, 3, (b,), generator=gen),
                 torch.arange(b))


def build(name: str, levels: tuple[str, ...] | None = None, **params: object) -> BeadModel:
    return build_model(name, LAYOUT, levels or default_levels(name), LATENT, dict(params))
