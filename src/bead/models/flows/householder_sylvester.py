"""Householder Sylvester flows (van den Berg et al. 2018, arXiv:1803.05649, §4.2).

Q [D, D] is the product of ``num_householder`` reflections ``I − 2 v vᵀ / ‖v‖²`` with the
vectors v amortised per event: orthogonal by construction, no iteration needed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bead.models.flows.sylvester import SylvesterFlow


def householder_product(v: Tensor) -> Tensor:
    """Π_i (I − 2 v_i v_iᵀ / ‖v_i‖²) for v [..., n, D]; returns [..., D, D]."""
    d = v.shape[-1]
    q = torch.eye(d, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], d, d)
    unit = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp(min=1e-12)
    for i in range(v.shape[-2]):
        u = unit[..., i, :]
        q = q - 2.0 * (q @ u.unsqueeze(-1)) * u.unsqueeze(-2)
    return q


class HouseholderSylvesterFlow(SylvesterFlow):
    """``num_flows`` steps, each with Q a product of ``num_householder`` reflections."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int = 4,
                 num_householder: int = 8) -> None:
        super().__init__(latent_dim, context_dim, num_flows, latent_dim)
        self.num_householder = num_householder
        self.amor_v = nn.Linear(context_dim, num_flows * num_householder * latent_dim)

    def q(self, h: Tensor) -> Tensor:
        v = self.amor_v(h).view(h.shape[0], self.num_flows, self.num_householder,
                                self.latent_dim)
        return householder_product(v)
