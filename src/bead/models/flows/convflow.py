"""Convolutional normalising flows (Zheng, Yang & Cao 2017, arXiv:1711.02255), the original
BEAD's CNN_Flow, with its log-det returned and used.

A layer is ``z' = z + s ⊙ act(w ⋆ z + c)``: a 1-D convolution over the latent coordinates whose
output i reads ``z_i, z_{i+d}, z_{i+2d}, ...`` (kernel ``kernel_size``, dilation d, zero
padding on the right), leaky ReLU (slope 0.01) and a learned per-coordinate rescale s. The
Jacobian is upper triangular with diagonal ``1 + s_i act'_i w_0``, so
``log|det J| = Σ_i log(1 + s_i act'_i w_0)``. A block stacks layers of dilation 1, 2, 4, ...
while ``2^i <= D``; the coordinates are reversed after every block.

Invertibility needs ``s_i w_0 > −1``. The paper's rescale ``s = −1/w_0 ± softplus(λ)`` is
singular at ``w_0 = 0``; here ``s_i = (softplus(λ_i) − 1) w_0 / (w_0² + ε)``, for which
``s_i w_0 > −1`` holds for every w_0 and s stays bounded. The parameters are global (not
amortised), as in the original; the context is not read.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bead.models.flows import LatentFlow

NEGATIVE_SLOPE = 0.01
EPS = 1e-2


class ConvFlowLayer(nn.Module):
    """One dilated convolution layer with its own kernel, bias and rescale."""

    def __init__(self, latent_dim: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        bound = 1.0 / math.sqrt(kernel_size)
        self.kernel = nn.Parameter(torch.empty(kernel_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(1))
        self.lmbd = nn.Parameter(torch.randn(latent_dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        padded = F.pad(z.unsqueeze(1), (0, (self.kernel_size - 1) * self.dilation))
        pre = F.conv1d(padded, self.kernel.view(1, 1, -1), self.bias,
                       dilation=self.dilation).squeeze(1)
        w0 = self.kernel[0]
        scale = (F.softplus(self.lmbd) - 1.0) * w0 / (w0 * w0 + EPS)
        slope = torch.where(pre >= 0, torch.ones_like(pre), torch.full_like(pre, NEGATIVE_SLOPE))
        out = z + scale * F.leaky_relu(pre, NEGATIVE_SLOPE)
        return out, torch.log1p(scale * slope * w0).sum(-1)


class ConvFlow(LatentFlow):
    """``num_flows`` dilation blocks of ``kernel_size`` convolutions over the latent."""

    def __init__(self, latent_dim: int, context_dim: int, num_flows: int = 4,
                 kernel_size: int = 7) -> None:
        super().__init__(latent_dim, context_dim)
        dilations = [2**i for i in range(latent_dim.bit_length()) if 2**i <= latent_dim]
        self.blocks = nn.ModuleList(
            nn.ModuleList(ConvFlowLayer(latent_dim, kernel_size, d) for d in dilations)
            for _ in range(num_flows))

    def forward(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        z, ldj = z0, torch.zeros_like(z0[:, 0])
        for block in self.blocks:
            for layer in block:
                z, part = layer(z)
                ldj = ldj + part
            z = z.flip(-1)
        return z, ldj
