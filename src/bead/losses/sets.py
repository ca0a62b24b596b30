"""Set reconstruction terms that do not depend on particle order: masked Chamfer distance and
a Sinkhorn (entropic optimal-transport, particle-EMD-like) distance, computed with geomloss.

A set decoder predicts S slots, each with features and an occupancy logit. The input set is its
real slots (the mask); the predicted set is the ``n`` slots with the highest occupancy logits,
``n`` the input's multiplicity. Both are compared as point clouds whatever order they come in,
with the squared distance averaged over the features (so values are on the scale of the masked
MSE). The number of real slots is learned by ``multiplicity_<level>``: the cross-entropy of the
occupancy logits sorted high to low against the mask sorted likewise (order-free too). Padded
input slots and unselected predicted slots are replaced by zeros before anything reads them.
Levels a model decodes without occupancy (the event vector) keep the per-slot masked MSE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from bead.losses.terms import _wide, level_sum, masked_mse, occupancy_bce
from bead.models.base import ModelOutput
from bead.models.batch import Batch

SINKHORN_BLUR = 0.05  # entropic smoothing length, in the units of the prepared features
SINKHORN_SCALING = 0.5  # epsilon-scaling ratio (geomloss): ~log2(diameter/blur) iterations

Distance = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def top_slots(logits: Tensor, n: Tensor) -> Tensor:
    """Mask [B, S] of the ``n[b]`` slots with the highest occupancy logits of each event."""
    order = torch.argsort(logits, dim=1, descending=True, stable=True)
    rank = torch.argsort(order, dim=1, stable=True)
    return rank < n.unsqueeze(1)


def multiplicity_bce(logits: Tensor, mask: Tensor) -> Tensor:
    """Occupancy cross-entropy with both sides sorted: the first n slots should be real."""
    ranked = torch.sort(logits, dim=1, descending=True).values
    return occupancy_bce(ranked, torch.sort(mask.to(torch.uint8), dim=1, descending=True)
                         .values.bool())


def _pairwise(x: Tensor, y: Tensor) -> Tensor:
    """Squared distances averaged over features, [B, S, T], from ‖x‖² + ‖y‖² − 2x·y."""
    cross = torch.baddbmm((x * x).sum(-1, keepdim=True), x, y.transpose(1, 2), alpha=-2.0)
    return (cross + (y * y).sum(-1).unsqueeze(1)).clamp(min=0.0) / x.shape[-1]


def masked_chamfer(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor) -> Tensor:
    """Symmetric Chamfer distance [B] between the real points of x and of y: the mean over each
    set's points of the squared distance to the nearest point of the other. 0 for empty sets."""
    dist = _pairwise(x, y)
    far = torch.finfo(dist.dtype).max
    to_y = torch.where(y_mask.unsqueeze(1), dist, far).amin(2)
    to_x = torch.where(x_mask.unsqueeze(2), dist, far).amin(1)
    zero = torch.zeros((), dtype=dist.dtype, device=dist.device)

    def mean(values: Tensor, mask: Tensor) -> Tensor:
        return torch.where(mask, values, zero).sum(1) / mask.sum(1).clamp(min=1)

    return mean(to_y, x_mask) + mean(to_x, y_mask)


@functools.cache
def _samples_loss():  # geomloss's SamplesLoss, built once
    from geomloss import SamplesLoss

    return SamplesLoss("sinkhorn", p=2, blur=SINKHORN_BLUR, scaling=SINKHORN_SCALING,
                       backend="tensorized")


def sinkhorn_distance(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor) -> Tensor:
    """Debiased Sinkhorn divergence [B] (Feydy et al. 2019) between the uniform measures on the
    real points of x and y: as the blur goes to 0, the mean squared distance of the optimal
    one-to-one matching of the two sets. 0 for empty sets."""
    n_x, n_y = x_mask.sum(1, keepdim=True), y_mask.sum(1, keepdim=True)
    empty = (n_x == 0) | (n_y == 0)
    first = torch.zeros_like(x_mask)
    first[:, 0] = True
    # Give empty events one (zero) point on each side, so the solver sees probability measures.
    x_mask, y_mask = x_mask | (first & empty), y_mask | (first & empty)
    a = x_mask.to(x.dtype) / x_mask.sum(1, keepdim=True)
    b = y_mask.to(y.dtype) / y_mask.sum(1, keepdim=True)
    # geomloss's cost is |x − y|² / 2: scaled so it is the squared distance per feature.
    scale = (2.0 / x.shape[-1]) ** 0.5
    value = _samples_loss()(a, x * scale, b, y * scale)
    return torch.where(empty.squeeze(1), torch.zeros_like(value), value)


def set_reconstruction(batch: Batch, out: ModelOutput, name: str,
                       distance: Distance) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over the reconstructed levels of the set ``distance`` and the multiplicity term
    (``<name>_<level>``, ``multiplicity_<level>``), or the masked MSE of a level decoded
    without occupancy (``reco_<level>``)."""
    assert out.recon is not None
    parts: dict[str, Tensor] = {}
    with torch.autocast(batch.weight.device.type, enabled=False):
        for level, recon in out.recon.items():
            mask = batch[level].mask
            logits = (out.occupancy or {}).get(level)
            if logits is None:
                parts[f"reco_{level}"] = masked_mse(batch[level].x, recon, mask)
                continue
            chosen = top_slots(logits.detach(), mask.sum(1))
            zero = torch.zeros((), dtype=torch.float32, device=mask.device)
            x = torch.where(mask.unsqueeze(-1), _wide(batch[level].x), zero)
            y = torch.where(chosen.unsqueeze(-1), _wide(recon), zero)
            parts[f"{name}_{level}"] = distance(x, mask, y, chosen)
            parts[f"multiplicity_{level}"] = multiplicity_bce(logits, mask)
    return level_sum(name, parts)


def chamfer(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    return set_reconstruction(batch, out, "chamfer", masked_chamfer)


def sinkhorn(batch: Batch, out: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
    return set_reconstruction(batch, out, "sinkhorn", sinkhorn_distance)
