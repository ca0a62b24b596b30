"""Normalising flows on the VAE latent, with parameters amortised per event by the encoder."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bead.models.base import ModelOutput
from bead.models.conv import ConvVAE


def planar_step(z: Tensor, u: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """One planar flow f(z) = z + û tanh(w·z + b) per event; returns (f(z), log|det ∂f/∂z|).

    Shapes: z, u, w [B, D], b [B]. û is u moved along w so that w·û >= -1, which keeps f
    invertible (Rezende & Mohamed 2015, appendix A).
    """
    wu = (w * u).sum(-1, keepdim=True)
    w_sq = (w * w).sum(-1, keepdim=True)
    u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / (w_sq + 1e-8)
    h = torch.tanh((w * z).sum(-1, keepdim=True) + b.unsqueeze(-1))
    z_new = z + u_hat * h
    psi_u = (1.0 - h * h).squeeze(-1) * (w * u_hat).sum(-1)
    return z_new, torch.log(torch.abs(1.0 + psi_u))


class Planar_ConvVAE(ConvVAE):
    """ConvVAE whose posterior sample passes through ``num_flows`` planar flows."""

    provides: ClassVar[frozenset[str]] = frozenset({"mu", "logvar", "ldj", "z0", "zk"})

    def __init__(
        self, n_slots: int, n_features: int, latent_dim: int, *, num_flows: int = 6,
        channels: tuple[int, int] = (32, 16), hidden: int = 128,
    ) -> None:
        super().__init__(n_slots, n_features, latent_dim, channels=channels, hidden=hidden)
        self.num_flows = num_flows
        self.amor_u = nn.Linear(hidden, num_flows * latent_dim)
        self.amor_w = nn.Linear(hidden, num_flows * latent_dim)
        self.amor_b = nn.Linear(hidden, num_flows)

    def forward(self, x: Tensor, mask: Tensor) -> ModelOutput:
        h, mu, logvar = self.encode(x, mask)
        shape = (x.shape[0], self.num_flows, self.latent_dim)
        u, w, b = self.amor_u(h).view(shape), self.amor_w(h).view(shape), self.amor_b(h)
        z0 = self.sample_z0(mu, logvar)
        z, ldj = z0, torch.zeros_like(b[:, 0])
        for k in range(self.num_flows):
            z, step_ldj = planar_step(z, u[:, k], w[:, k], b[:, k])
            ldj = ldj + step_ldj
        return ModelOutput(recon=self.decoder(z), mu=mu, logvar=logvar, ldj=ldj, z0=z0, zk=z)
