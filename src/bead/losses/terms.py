"""Loss terms as small pure functions. Per-event ones return a [B] tensor, so each can serve
as an anomaly score; batch-level ones (the contrastive terms, the parameter norms) return one
scalar per batch and are training terms only.

Terms compute in at least float32 whatever the autocast dtype, since sums of squares and
log-densities lose too much in half precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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


def level_sum(name: str, parts: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """The per-event sum of per-level ``parts`` as ``name``, with the parts themselves when
    there are several (a term's value and its components)."""
    total = torch.stack(list(parts.values())).sum(0)
    components = {name: total}
    if len(parts) > 1:
        components.update(parts)
    return total, components


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


# --- EMD, contrastive and parameter-norm terms -------------------------------------------------

def masked_emd(x: Tensor, recon: Tensor, mask: Tensor) -> Tensor:
    """Per event, the 1-D Wasserstein-1 distance between the input's and the reconstruction's
    distributions of each feature over the event's real slots, averaged over the features.

    Both distributions have the same number n of real slots, so W1 is exactly the mean absolute
    difference of the sorted values, (1/n) sum_k |x_(k) - recon_(k)|. Unlike the masked MSE it
    does not care which slot a value sits in: a decoder that gets the set right in the wrong
    order is not penalised. On the event level (one slot) it is the mean absolute error. Padded
    slots are sorted to the end and never compared; an event with no real slot scores 0.
    """
    x, recon = _wide(x), _wide(recon)
    fill = torch.finfo(x.dtype).max
    real = mask.unsqueeze(-1)
    xs = torch.where(real, x, fill).sort(dim=1).values
    rs = torch.where(real, recon, fill).sort(dim=1).values
    n_real = mask.sum(1, keepdim=True)  # [B, 1]
    first_n = (torch.arange(x.shape[1], device=x.device).unsqueeze(0) < n_real).unsqueeze(-1)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    diff = torch.where(first_n, xs - rs, zero).abs()
    return diff.sum(1).mean(-1) / n_real.squeeze(1).clamp(min=1).to(x.dtype)


def _unit_similarities(z: Tensor, temperature: float) -> Tensor:
    """Cosine similarities / temperature of every pair of rows, in at least float32."""
    z = torch.nn.functional.normalize(_wide(z), dim=1)
    return z @ z.T / temperature


def _masked_log_softmax(logits: Tensor, allowed: Tensor) -> Tensor:
    """Row-wise log-softmax over the ``allowed`` entries only. Entries left out get a large
    finite negative logit, not -inf, so a row with nothing allowed stays finite (and so do the
    gradients, which -inf would turn into NaN)."""
    low = torch.finfo(logits.dtype).min / 4
    logits = torch.where(allowed, logits, low)
    return logits - torch.logsumexp(logits, dim=1, keepdim=True)


def _weighted_anchor_mean(per_anchor: Tensor, anchors: Tensor, weight: Tensor | None) -> Tensor:
    """Mean over the anchors (normalised by sum |w| as ``weighted_mean``); 0 when there is none,
    still attached to the graph."""
    w = torch.ones_like(per_anchor) if weight is None else weight.to(per_anchor.dtype)
    w = torch.where(anchors, w, torch.zeros_like(w))
    zero = torch.zeros((), dtype=per_anchor.dtype, device=per_anchor.device)
    norm = w.abs().sum().clamp(min=torch.finfo(w.dtype).tiny)
    return (w * torch.where(anchors, per_anchor, zero)).sum() / norm


def supervised_contrastive(z: Tensor, labels: Tensor, temperature: float,
                           weight: Tensor | None = None) -> Tensor:
    """SupCon (Khosla et al. 2020, L_out) of the L2-normalised rows of ``z`` [B, D]: each
    labelled event is pulled towards the other events of its label and pushed from the rest.

    Events with label -1 (no generator) are left out entirely: as anchors, as positives and as
    negatives (an unlabelled event may well be of the same generator). Anchors without any
    positive in the batch are skipped, so with fewer than two labelled events of every label the
    term is 0, not NaN.
    """
    sim = _unit_similarities(z, temperature)
    labelled = labels >= 0
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    others = labelled.unsqueeze(0) & labelled.unsqueeze(1) & ~eye
    positives = others & (labels.unsqueeze(0) == labels.unsqueeze(1))
    log_prob = _masked_log_softmax(sim, others)
    n_pos = positives.sum(1)
    zero = torch.zeros((), dtype=sim.dtype, device=sim.device)
    mean_pos = torch.where(positives, log_prob, zero).sum(1) / n_pos.clamp(min=1)
    return _weighted_anchor_mean(-mean_pos, labelled & (n_pos > 0), weight)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float, weight: Tensor | None = None) -> Tensor:
    """NT-Xent (SimCLR, Chen et al. 2020) of two views ``z1``, ``z2`` [B, D] of the same events:
    over the 2B rows, each row's positive is the other view of its event and every other row of
    either view is a negative (cosine similarity / temperature, self excluded)."""
    b = len(z1)
    sim = _unit_similarities(torch.cat([z1, z2]), temperature)
    idx = torch.arange(2 * b, device=sim.device)
    not_self = idx.unsqueeze(0) != idx.unsqueeze(1)
    log_prob = _masked_log_softmax(sim, not_self)
    positive = (idx + b) % (2 * b)
    per_row = -log_prob[idx, positive]
    rows_weight = None if weight is None else torch.cat([weight, weight])
    return _weighted_anchor_mean(per_row, torch.ones_like(per_row, dtype=torch.bool),
                                 rows_weight)


def parameter_norm(parameters: Iterable[Tensor], power: int) -> Tensor:
    """sum |theta| (power 1) or sum theta^2 (power 2) over every trainable parameter."""
    parts = [_wide(p).abs().sum() if power == 1 else _wide(p).pow(2).sum()
             for p in parameters if p.requires_grad]
    return torch.stack(parts).sum()
