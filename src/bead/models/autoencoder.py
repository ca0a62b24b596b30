"""Autoencoders and VAEs assembled from a body, a posterior and an optional latent flow.

One class serves every AE/VAE entry of the catalog: ``ConvVAE`` is the conv body with a
Gaussian posterior, ``Planar_ConvVAE`` the same with planar flows, ``SetVAE`` the multi-level
body with a Gaussian posterior, ``Dirichlet_ConvVAE`` the conv body whose decoder reads
``softmax(zK)`` and whose output carries the Laplace-bridge Dirichlet ``alpha`` of (mu, logvar).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from bead.errors import UsageError
from bead.levels import Layout
from bead.models.base import BeadModel, ModelOutput
from bead.models.batch import Batch
from bead.models.bodies import Body, ConvBody, DeepSetsBody, MLPBody, MultiLevelBody
from bead.models.catalog import ModelEntry
from bead.models.dirichlet import laplace_bridge
from bead.models.flows import build_flow
from bead.models.transformer import ParticleTransformerBody, TransformerBody

_SINGLE_LEVEL = {"mlp": MLPBody, "conv": ConvBody, "deepsets": DeepSetsBody,
                 "transformer": TransformerBody, "particle_transformer": ParticleTransformerBody}


def _kwargs(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in params.items() if k in accepted}


def build_body(body: str, layout: Layout, levels: tuple[str, ...], latent_dim: int,
               params: dict[str, Any]) -> Body:
    if body == "multi":
        return MultiLevelBody(levels, dict(layout), latent_dim,
                              **_kwargs(MultiLevelBody, params))
    if len(levels) != 1:
        raise UsageError(f"the {body} body reads one input level, got {'+'.join(levels)}")
    cls = _SINGLE_LEVEL[body]
    return cls(levels[0], layout[levels[0]], latent_dim, **_kwargs(cls, params))


class Autoencoder(BeadModel):
    """Body encoder -> latent (a code, or a Gaussian posterior sample, through an optional
    latent flow) -> body decoder."""

    def __init__(self, entry: ModelEntry, layout: Layout, levels: tuple[str, ...],
                 latent_dim: int, params: dict[str, Any]) -> None:
        super().__init__(layout, levels, latent_dim)
        assert entry.body is not None, "an autoencoder entry names its body"
        self.variational = entry.family == "vae"
        self.dirichlet = entry.posterior == "dirichlet"
        if self.dirichlet and latent_dim < 2:
            raise UsageError("a Dirichlet posterior needs latent_space_size >= 2 (the number "
                             "of categories of the simplex)")
        self.body = build_body(entry.body, layout, levels, latent_dim, params)
        hidden = self.body.hidden
        if self.variational:
            self.to_mu = nn.Linear(hidden, latent_dim)
            self.to_logvar = nn.Linear(hidden, latent_dim)
        else:
            self.to_latent = nn.Linear(hidden, latent_dim)
        self.flow = (build_flow(entry.flow, latent_dim, hidden, params)
                     if entry.flow is not None else None)

    def encode(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor | None]:
        """(hidden vector, posterior mean or code, log-variance or None)."""
        for level in self.levels:
            self.masked(batch, level)  # checks the shapes the model was built for
        h = self.body.encode(batch)
        if self.variational:
            return h, self.to_mu(h), self.to_logvar(h)
        return h, self.to_latent(h), None

    def forward(self, batch: Batch) -> ModelOutput:
        h, mu, logvar = self.encode(batch)
        if logvar is None:
            recon, occupancy = self.body.decode(mu)
            return ModelOutput(recon=recon, occupancy=occupancy, zk=mu)
        z0 = self.sample_z0(mu, logvar)
        zk, ldj = (z0, None) if self.flow is None else self.flow(z0, h)
        recon, occupancy = self.body.decode(torch.softmax(zk, dim=-1) if self.dirichlet else zk)
        alpha = laplace_bridge(mu, logvar) if self.dirichlet else None
        return ModelOutput(recon=recon, occupancy=occupancy, mu=mu, logvar=logvar, ldj=ldj,
                           z0=z0, zk=zk, alpha=alpha)
