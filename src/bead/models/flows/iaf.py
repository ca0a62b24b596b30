"""Inverse autoregressive flows (Kingma et al. 2016, arXiv:1606.04934).

Each step runs a MADE network (Germain et al. 2015) over z with the encoder's hidden vector h as
context, giving per coordinate a shift ``m_i`` and a gate ``σ_i = sigmoid(s_i + forget_bias)``
that depend on ``z_<i`` only, and updates ``z ← σ ⊙ z + (1 − σ) ⊙ m``. The Jacobian is
triangular with diagonal σ, so ``log|det J| = Σ_i log σ_i``. The coordinates are reversed
before every odd step so that each one is conditioned on the others in turn.

Degrees follow MADE: input i has degree i + 1, hidden unit k degree ``k mod D`` (degree 0 units
see only the context, so the first coordinate's update is amortised too), output i reads hidden
units of degree <= i. The masks are buffers, so ``.to(device)`` moves them with the weights.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bead.errors import UsageError
from bead.models.flows import LatentFlow


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask [out, in]."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask.to(self.weight.dtype), self.bias)


class IAFStep(nn.Module):
    """One autoregressive gated update, MADE over z plus the context projection."""

    def __init__(self, latent_dim: int, context_dim: int, hidden: list[int]) -> None:
        super().__init__()
        inputs = torch.arange(1, latent_dim + 1)
        degrees = [torch.arange(width) % latent_dim for width in hidden]
        self.first = MaskedLinear(degrees[0][:, None] >= inputs[None, :])
        self.context = nn.Linear(context_dim, hidden[0])
        self.hidden = nn.ModuleList(
            MaskedLinear(d_out[:, None] >= d_in[None, :])
            for d_in, d_out in itertools.pairwise(degrees))
        out_mask = torch.arange(latent_dim)[:, None] >= degrees[-1][None, :]
        self.shift = MaskedLinear(out_mask)
        self.gate = MaskedLinear(out_mask)

    def forward(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        x = F.elu(self.first(z) + self.context(h))
        for layer in self.hidden:
            x = F.elu(layer(x))
        return self.shift(x), self.gate(x)


class IAFFlow(LatentFlow):
    """``num_flows`` IAF steps with MADE hidden widths ``flow_hidden``."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int = 4,
                 flow_hidden: list[int] | None = None, forget_bias: float = 1.0) -> None:
        super().__init__(latent_dim, context_dim)
        hidden = [60, 60] if flow_hidden is None else list(flow_hidden)
        if not hidden or min(hidden) < 1:
            raise UsageError("model_params.flow_hidden: give at least one positive layer width")
        self.forget_bias = forget_bias
        self.steps = nn.ModuleList(IAFStep(latent_dim, context_dim, hidden)
                                   for _ in range(num_flows))

    def forward(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        z, ldj = z0, torch.zeros_like(z0[:, 0])
        for i, step in enumerate(self.steps):
            if i % 2 == 1:
                z = z.flip(-1)
            shift, gate_logit = step(z, h)
            gate_logit = gate_logit + self.forget_bias
            gate = torch.sigmoid(gate_logit)
            z = gate * z + (1.0 - gate) * shift
            ldj = ldj + F.logsigmoid(gate_logit).sum(-1)
        return z, ldj
