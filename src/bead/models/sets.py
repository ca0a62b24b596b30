"""Permutation-invariant models of the particle set (Deep Sets: Zaheer et al. 2017)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from bead.models.base import BeadModel, ModelOutput
from bead.models.layers import mlp


class DeepSetsVAE(BeadModel):
    """VAE whose encoder is a shared per-slot MLP with masked mean and max pooling.

    The encoder sees each real slot alone, so reordering the real slots (or changing the padded
    ones) does not change the posterior. Max pooling next to the mean roughly halves the
    epochs needed on toy sets; the pooled vector also carries the fraction of real slots,
    since neither pooling sees the multiplicity. The decoder emits all S slots from the
    latent plus a learned embedding per slot position (slots are pt-ordered by preparation).
    """

    provides: ClassVar[frozenset[str]] = frozenset({"mu", "logvar", "z0", "zk"})

    def __init__(
        self, n_slots: int, n_features: int, latent_dim: int, *, hidden: int = 64,
        slot_embedding: int = 16,
    ) -> None:
        super().__init__(n_slots, n_features, latent_dim)
        self.phi = mlp([n_features, hidden, hidden], final_activation=True)
        self.rho = mlp([2 * hidden + 1, hidden], final_activation=True)
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.slot_embedding = nn.Parameter(torch.randn(n_slots, slot_embedding) * 0.1)
        self.expand = mlp([latent_dim, hidden], final_activation=True)
        self.slot_decoder = mlp([hidden + slot_embedding, hidden, n_features])

    def forward(self, x: Tensor, mask: Tensor) -> ModelOutput:
        xm = self.masked_input(x, mask)
        weights = mask.to(xm.dtype).unsqueeze(-1)  # [B, S, 1]
        n_real = weights.sum(1)  # [B, 1]
        per_slot = self.phi(xm)
        mean = (per_slot * weights).sum(1) / n_real.clamp(min=1.0)
        low = torch.finfo(per_slot.dtype).min
        peak = torch.where(mask.unsqueeze(-1), per_slot, torch.full_like(per_slot, low)).amax(1)
        peak = torch.where(n_real > 0, peak, torch.zeros_like(peak))
        h = self.rho(torch.cat([mean, peak, n_real / self.n_slots], dim=1))
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z0 = self.sample_z0(mu, logvar)
        per_event = self.expand(z0).unsqueeze(1).expand(-1, self.n_slots, -1)
        slots = self.slot_embedding.to(per_event.dtype).expand(x.shape[0], -1, -1)
        recon = self.slot_decoder(torch.cat([per_event, slots], dim=-1))
        return ModelOutput(recon=recon, mu=mu, logvar=logvar, z0=z0, zk=z0)
