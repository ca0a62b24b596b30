"""The dense autoencoder on the flattened padded set."""

from __future__ import annotations

import torch
from torch import Tensor

from bead.models.base import BeadModel, ModelOutput
from bead.models.layers import mlp


class AE(BeadModel):
    """MLP autoencoder; the mask is appended to the input so real zeros differ from padding."""

    def __init__(
        self, n_slots: int, n_features: int, latent_dim: int, *, hidden: tuple[int, ...] = (128, 64)
    ) -> None:
        super().__init__(n_slots, n_features, latent_dim)
        n_in = n_slots * n_features
        self.encoder = mlp([n_in + n_slots, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), n_in])

    def forward(self, x: Tensor, mask: Tensor) -> ModelOutput:
        xm = self.masked_input(x, mask)
        inp = torch.cat([xm.flatten(1), mask.to(xm.dtype)], dim=1)
        z = self.encoder(inp)
        recon = self.decoder(z).view_as(x)
        return ModelOutput(recon=recon, zk=z)
