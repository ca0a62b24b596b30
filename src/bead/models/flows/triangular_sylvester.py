"""Triangular Sylvester flows (van den Berg et al. 2018, arXiv:1803.05649, §4.3).

Q is the identity on even steps and the reversal permutation on odd ones, so consecutive steps
triangularise in opposite directions; nothing is amortised for Q.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bead.models.flows.sylvester import SylvesterFlow


class TriangularSylvesterFlow(SylvesterFlow):
    """``num_flows`` steps with Q = I or the reversal permutation, alternately."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int = 4) -> None:
        super().__init__(latent_dim, context_dim, num_flows, latent_dim)
        eye = torch.eye(latent_dim)
        q = torch.stack([eye if step % 2 == 0 else eye.flip(0) for step in range(num_flows)])
        self.register_buffer("permutations", q, persistent=False)

    def q(self, h: Tensor) -> Tensor:
        return self.permutations.to(h.dtype).expand(h.shape[0], -1, -1, -1)
