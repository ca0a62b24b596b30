"""The Dirichlet posterior of ``Dirichlet_ConvVAE`` through the Laplace bridge.

The encoder gives a Gaussian ``G_z ~ N(μ, σ²)`` on K logits and the decoder reads
``D_z = softmax(G_z)``, a point of the K-simplex. The Laplace bridge (MacKay 1998; Hobbhahn,
Kristiadi & Hennig 2022, arXiv:2003.01227) maps that Gaussian in the softmax basis to the
Dirichlet of nearly the same law,

    α_k = (1 − 2/K + e^{μ_k} Σ_l e^{−μ_l} / K²) / σ_k²,

and back, ``Dir(α) → N(μ_k = log α_k − mean_l log α_l, σ_k² = (1 − 2/K)/α_k + Σ_l (1/α_l)/K²)``.
Since ``e^{μ_k} Σ_l e^{−μ_l} >= 1``, every α_k >= (1 − 1/K)²/σ_k² > 0 once K >= 2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def laplace_bridge(mu: Tensor, logvar: Tensor) -> Tensor:
    """Dirichlet concentrations [B, K] of the Gaussian N(mu, exp(logvar)) on K logits,
    computed in at least float32 (``e^{μ}`` overflows half precision)."""
    dtype = torch.promote_types(mu.dtype, torch.float32)
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    k = mu.shape[-1]
    cross = torch.exp(mu + torch.logsumexp(-mu, dim=-1, keepdim=True))  # e^{μ_k} Σ_l e^{−μ_l}
    return (1.0 - 2.0 / k + cross / k**2) * torch.exp(-logvar)


def bridged_prior_logvar(k: int, alpha0: float) -> float:
    """log σ² of the Gaussian in the softmax basis that the symmetric Dir(alpha0·1) bridges to
    (its mean is 0): ``σ² = (1 − 1/K) / alpha0``."""
    return math.log((1.0 - 1.0 / k) / alpha0)


def dirichlet_kl(alpha: Tensor, alpha0: float) -> Tensor:
    """Closed-form KL(Dir(alpha) || Dir(alpha0·1)) per event, in at least float32:
    ``lnΓ(α₀) − Σ lnΓ(α_k) − lnΓ(K a) + K lnΓ(a) + Σ (α_k − a)(ψ(α_k) − ψ(α₀))`` with
    ``α₀ = Σ α_k`` and a = alpha0."""
    alpha = alpha.to(torch.promote_types(alpha.dtype, torch.float32))
    k = alpha.shape[-1]
    total = alpha.sum(-1)
    prior = k * math.lgamma(alpha0) - math.lgamma(k * alpha0)
    spread = ((alpha - alpha0) * (torch.digamma(alpha) - torch.digamma(total).unsqueeze(-1)))
    return torch.lgamma(total) - torch.lgamma(alpha).sum(-1) + prior + spread.sum(-1)
