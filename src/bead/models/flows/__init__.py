"""Latent flows: transforms ``(z0, h) -> (zK, log|det dzK/dz0|)`` that any VAE body carries
(DESIGN rule 2: ``Planar_ConvVAE`` is ConvVAE + the planar flow, not a class of its own).

``h`` is the encoder's hidden vector, from which a flow may amortise its parameters per event.
Each kind lives in its own module and is imported only when a model uses it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import Tensor, nn

from bead.models.catalog import unknown_name_error

FLOW_KINDS: dict[str, str] = {
    "planar": "bead.models.flows.planar:PlanarFlow",
    "orthogonal_sylvester": "bead.models.flows.orthogonal_sylvester:OrthogonalSylvesterFlow",
    "householder_sylvester": "bead.models.flows.householder_sylvester:HouseholderSylvesterFlow",
    "triangular_sylvester": "bead.models.flows.triangular_sylvester:TriangularSylvesterFlow",
    "iaf": "bead.models.flows.iaf:IAFFlow",
    "convflow": "bead.models.flows.convflow:ConvFlow",
    "nsf_ar": "bead.models.flows.nsf_ar:NSFARFlow",
}


class LatentFlow(nn.Module):
    """Base class: ``forward(z0 [B, D], h [B, H]) -> (zK [B, D], ldj [B])``."""

    def __init__(self, latent_dim: int, context_dim: int) -> None:
        super().__init__()
        self.latent_dim, self.context_dim = latent_dim, context_dim

    def forward(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def build_flow(kind: str, latent_dim: int, context_dim: int,
               params: dict[str, Any]) -> LatentFlow:
    """The flow ``kind`` with the settings of ``params`` that it takes (others are the body's)."""
    if kind not in FLOW_KINDS:
        raise unknown_name_error("latent flow kind", kind, list(FLOW_KINDS))
    module, _, name = FLOW_KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    accepted = inspect.signature(cls.__init__).parameters
    return cls(latent_dim, context_dim, **{k: v for k, v in params.items() if k in accepted})
