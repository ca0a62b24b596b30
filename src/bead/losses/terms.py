"""Per-event loss terms: each returns a [B] tensor so it can serve as an anomaly score.

Terms compute in at least float32 whatever the autocast dtype, since sums of squares and
log-densities lose too much in half precision.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def _wide(t: Tensor) -> Tensor:
    """``t`` promoted to at least float32 (float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def masked_mse(x: Tensor, recon: Tensor, mask: Tensor) -> Tensor:
    """Squared error averaged over the features and the real slots of each event.

    The mean per element makes levels of different sizes (an event vector of 15 features, 30
    constituents of 12) weigh alike when a multi-level model sums them. Padded slots are
    selected away before squaring (not multiplied by zero), so even a non-finite value there
    cannot reach the loss or its gradient. An event with no real slot scores 0.
    """
    diff = _wide(recon) - _wide(x)
    zero = torch.zeros((), dtype=diff.dtype, device=diff.device)
    diff = torch.where(mask.unsqueeze(-1), diff, zero)
    n_real = mask.sum(1).clamp(min=1).to(diff.dtype) * x.shape[-1]
    return diff.pow(2).sum((1, 2)) / n_real


def occupancy_bce(logits: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of the predicted slot occupancy against the real mask, averaged
    over the slots: how badly a set model reproduces the multiplicity of an event."""
    target = mask.to(torch.promote_types(logits.dtype, torch.float32))
    per_slot = torch.nn.functional.binary_cross_entropy_with_logits(
        _wide(logits), target, reduction="none")
    return per_slot.mean(1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """Closed-form KL(N(mu, exp(logvar)) || N(0, 1)) summed over the latent dimensions."""
    mu, logvar = _wide(mu), _wide(logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the latent dimensions."""
    z, mu, logvar = _wide(z), _wide(mu), _wide(logvar)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, 1) summed over the latent dimensions."""
    z = _wide(z)
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def weighted_mean(per_event: Tensor, weight: Tensor | None) -> Tensor:
    """Batch mean of a per-event quantity, weighted by event weights when given.

    Normalised by the sum of |w|: with the signed weights of NLO generators a batch's sum of
    weights can be near zero, which would blow the loss up; sum |w| keeps its scale stable and
    equals sum w when the weights are positive.
    """
    if weight is None:
        return per_event.mean()
    weight = weight.to(per_event.dtype)
    return (weight * per_event).sum() / weight.abs().sum().clamp(min=torch.finfo(weight.dtype).tiny)
