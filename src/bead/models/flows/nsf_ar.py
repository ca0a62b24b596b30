"""Autoregressive rational-quadratic spline flows (Durkan et al. 2019, arXiv:1906.04032) on the
latent, built from zuko's transforms (no hand-written splines).

Each step is zuko's ``MaskedAutoregressiveTransform`` with a ``MonotonicRQSTransform`` per
coordinate: ``z'_i = RQS(z_i; θ_i(z_<i, h))``, a monotonic spline of ``bins`` bins on
``[-B, B]`` (B = 3, as in the original) and the identity outside, whose knots come from a masked
MLP (MADE) that reads the lower coordinates and the encoder's hidden vector h as context. The
Jacobian is triangular, ``log|det J| = Σ_i log RQS'(z_i)``. The order is reversed every other
step, as in zuko's MAF. One forward pass per step (the inverse, not needed here, takes D).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from zuko.flows.autoregressive import MaskedAutoregressiveTransform
from zuko.transforms import MonotonicRQSTransform

from bead.errors import UsageError
from bead.models.flows import LatentFlow

TAIL_BOUND = 3.0


class NSFARFlow(LatentFlow):
    """``num_flows`` spline steps of ``bins`` bins, conditioner widths ``flow_hidden``."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int = 4, bins: int = 8,
                 flow_hidden: list[int] | None = None) -> None:
        super().__init__(latent_dim, context_dim)
        hidden = [64, 64] if flow_hidden is None else list(flow_hidden)
        if bins < 2 or not hidden or min(hidden) < 1:
            raise UsageError("model_params: NSF-AR needs bins >= 2 and positive flow_hidden")
        order = torch.arange(latent_dim)
        self.steps = nn.ModuleList(
            MaskedAutoregressiveTransform(
                latent_dim, context_dim, order=order if i % 2 == 0 else order.flip(0),
                univariate=partial(MonotonicRQSTransform, bound=TAIL_BOUND),
                shapes=[(bins,), (bins,), (bins - 1,)], hidden_features=hidden)
            for i in range(num_flows))

    def forward(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        z, ldj = z0, torch.zeros_like(z0[:, 0])
        for step in self.steps:
            z, part = step(h).call_and_ladj(z)
            ldj = ldj + part
        return z, ldj
