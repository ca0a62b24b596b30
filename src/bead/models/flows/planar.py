"""Planar flows (Rezende & Mohamed 2015): f(z) = z + û tanh(wᵀz + b), amortised per event."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bead.models.flows import LatentFlow


def planar_step(z: Tensor, u: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """One planar flow per event; returns (f(z), log|det ∂f/∂z|).

    Shapes: z, u, w [B, D], b [B]. û is u moved along w so that w·û >= -1, which keeps f
    invertible (Rezende & Mohamed 2015, appendix A); log|det| = log|1 + ψ(z)ᵀû| with
    ψ = h'(wᵀz + b) w.
    """
    wu = (w * u).sum(-1, keepdim=True)
    w_sq = (w * w).sum(-1, keepdim=True)
    u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / (w_sq + 1e-8)
    h = torch.tanh((w * z).sum(-1, keepdim=True) + b.unsqueeze(-1))
    z_new = z + u_hat * h
    psi_u = (1.0 - h * h).squeeze(-1) * (w * u_hat).sum(-1)
    return z_new, torch.log(torch.abs(1.0 + psi_u))


class PlanarFlow(LatentFlow):
    """``num_flows`` planar steps whose u, w, b come from the encoder's hidden vector."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int = 6) -> None:
        super().__init__(latent_dim, context_dim)
        self.num_flows = num_flows
        self.amor_u = nn.Linear(context_dim, num_flows * latent_dim)
        self.amor_w = nn.Linear(context_dim, num_flows * latent_dim)
        self.amor_b = nn.Linear(context_dim, num_flows)

    def forward(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        shape = (z0.shape[0], self.num_flows, self.latent_dim)
        u, w, b = self.amor_u(h).view(shape), self.amor_w(h).view(shape), self.amor_b(h)
        z, ldj = z0, torch.zeros_like(b[:, 0])
        for k in range(self.num_flows):
            z, step = planar_step(z, u[:, k], w[:, k], b[:, k])
            ldj = ldj + step
        return z, ldj
