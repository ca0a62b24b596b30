"""The output every model returns and the base class every model derives from.

One typed output for all families (DESIGN: no guessing a model's kind from a tuple length):
absent parts are None, and the objective checks for the parts its terms need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bead.errors import DataError
from bead.levels import Layout
from bead.models.batch import Batch


@dataclass
class ModelOutput:
    """What a forward pass produced.

    ``recon`` holds, per reconstructed level, a tensor of that level's input shape;
    ``occupancy`` per set level the logits [B, S] of each slot being a real object (so a set
    model reconstructs its multiplicity too); ``ldj`` is the per-event [B] sum of log|det J|
    over the latent flow steps; ``z0`` is the base-distribution sample and ``zk`` the flow output
    (for a plain autoencoder the code is ``zk``); ``log_prob`` [B] is a density model's log p(x);
    ``alpha`` [B, K] says the posterior is Dirichlet: its concentrations (Laplace bridge of mu,
    logvar), with the decoder reading ``softmax(zk)``.
    """

    recon: dict[str, Tensor] | None = None
    occupancy: dict[str, Tensor] | None = None
    mu: Tensor | None = None
    logvar: Tensor | None = None
    ldj: Tensor | None = None
    z0: Tensor | None = None
    zk: Tensor | None = None
    log_prob: Tensor | None = None
    alpha: Tensor | None = None

    @property
    def latent(self) -> Tensor | None:
        """The representation to score and plot: the flow output, else the posterior mean."""
        return self.zk if self.zk is not None else self.mu


class BeadModel(nn.Module):
    """A model of the input ``levels`` of a Batch, built for ``layout`` (slots and features
    per level, as preparation wrote them)."""

    def __init__(self, layout: Layout, levels: tuple[str, ...], latent_dim: int) -> None:
        super().__init__()
        missing = [lv for lv in levels if lv not in layout]
        if missing:
            raise DataError(f"the prepared inputs have no {missing[0]} level")
        self.layout = {lv: layout[lv] for lv in levels}
        self.levels = levels
        self.latent_dim = latent_dim

    def forward(self, batch: Batch) -> ModelOutput:
        raise NotImplementedError

    def masked(self, batch: Batch, level: str) -> tuple[Tensor, Tensor]:
        """``level``'s input with padded slots zeroed (so nothing can depend on what they hold)
        and its mask, after checking the shape the model was built for."""
        lv = batch[level]
        expected = (self.layout[level].n_slots, self.layout[level].n_features)
        if lv.x.dim() != 3 or tuple(lv.x.shape[1:]) != expected or lv.mask.shape != lv.x.shape[:2]:
            raise DataError(
                f"{type(self).__name__} expects {level} inputs [B, {expected[0]}, {expected[1]}] "
                f"with mask [B, {expected[0]}], got {list(lv.x.shape)} and {list(lv.mask.shape)}")
        zero = torch.zeros((), dtype=lv.x.dtype, device=lv.x.device)
        return torch.where(lv.mask.unsqueeze(-1), lv.x, zero), lv.mask

    def sample_z0(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """Reparameterised sample in training; the mean in eval mode (deterministic scoring)."""
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
