"""Sylvester normalising flows (van den Berg et al. 2018, arXiv:1803.05649), the shared part.

One step is ``z' = z + Q R1 h(R2 Qᵀ z + b)`` with ``Q`` [D, M] of orthonormal columns, ``R1``,
``R2`` [M, M] upper triangular and ``h = tanh``. By Sylvester's determinant identity
``det(I_D + Q R1 diag(h') R2 Qᵀ) = det(I_M + diag(h') R2 R1)`` (QᵀQ = I), and ``R2 R1`` is upper
triangular, so ``log|det J| = Σ_j log|1 + R1_jj R2_jj h'_j|``. The diagonals are tanh-bounded
(|R1_jj R2_jj| < 1), which keeps every factor positive, so the step is invertible.

``R1``, ``R2`` and ``b`` are amortised per event from the encoder's hidden vector, as in the
paper: one full matrix per step gives the strict upper triangle of ``R1`` and, transposed, that
of ``R2``. The orthogonal, Householder and triangular kinds differ only in how ``Q`` is made.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bead.models.flows import LatentFlow


def sylvester_step(z: Tensor, q: Tensor, r1: Tensor, r2: Tensor, b: Tensor,
                   ) -> tuple[Tensor, Tensor]:
    """One Sylvester step per event. Shapes: z [B, D], q [B, D, M], r1, r2 [B, M, M], b [B, M];
    returns (z', log|det ∂z'/∂z| [B])."""
    qz = torch.einsum("bdm,bd->bm", q, z)
    pre = torch.einsum("bij,bj->bi", r2, qz) + b
    h = torch.tanh(pre)
    z_new = z + torch.einsum("bdm,bm->bd", q, torch.einsum("bij,bj->bi", r1, h))
    diag = torch.diagonal(r1, dim1=-2, dim2=-1) * torch.diagonal(r2, dim1=-2, dim2=-1)
    return z_new, torch.log(torch.abs(1.0 + diag * (1.0 - h * h))).sum(-1)


class SylvesterFlow(LatentFlow):
    """``num_flows`` Sylvester steps with ``m`` columns in Q; subclasses give ``q(h)``."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int, m: int) -> None:
        super().__init__(latent_dim, context_dim)
        self.num_flows, self.m = num_flows, m
        self.amor_d = nn.Linear(context_dim, num_flows * m * m)
        self.amor_diag1 = nn.Linear(context_dim, num_flows * m)
        self.amor_diag2 = nn.Linear(context_dim, num_flows * m)
        self.amor_b = nn.Linear(context_dim, num_flows * m)
        self.register_buffer("strict_upper", torch.ones(m, m).triu(1), persistent=False)

    def q(self, h: Tensor) -> Tensor:
        """Q of every step, [B, num_flows, D, m] with orthonormal columns."""
        raise NotImplementedError

    def forward(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        n, k, m = z0.shape[0], self.num_flows, self.m
        full = self.amor_d(h).view(n, k, m, m)
        upper = self.strict_upper.to(full.dtype)
        r1 = full * upper + torch.diag_embed(torch.tanh(self.amor_diag1(h).view(n, k, m)))
        r2 = (full.transpose(-1, -2) * upper
              + torch.diag_embed(torch.tanh(self.amor_diag2(h).view(n, k, m))))
        b = self.amor_b(h).view(n, k, m)
        q = self.q(h).to(z0.dtype)
        z, ldj = z0, torch.zeros_like(z0[:, 0])
        for step in range(k):
            z, part = sylvester_step(z, q[:, step], r1[:, step], r2[:, step], b[:, step])
            ldj = ldj + part
        return z, ldj
