"""The output every model returns and the base class every model derives from.

One typed output for all families (DESIGN: no guessing a model's kind from a tuple length):
absent parts are None, and losses check for the parts they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from bead.errors import DataError


@dataclass
class ModelOutput:
    """What a forward pass produced.

    ``recon`` has the shape of the input; ``ldj`` is the per-event [B] sum of log|det J| over the
    flow steps; ``z0`` is the base-distribution sample and ``zk`` the flow output (for a plain
    autoencoder the code is ``zk`` and ``mu``/``logvar`` are None).
    """

    recon: Tensor
    mu: Tensor | None = None
    logvar: Tensor | None = None
    ldj: Tensor | None = None
    z0: Tensor | None = None
    zk: Tensor | None = None

    @property
    def latent(self) -> Tensor | None:
        """The representation to score and plot: the flow output, else the posterior mean."""
        return self.zk if self.zk is not None else self.mu


class BeadModel(nn.Module):
    """A model of a padded set ``x [B, S, F]`` with its real-slot ``mask [B, S]``.

    ``provides`` names the optional ModelOutput parts a model fills, so losses and the registry
    can tell which model/loss pairs make sense without running anything.
    """

    provides: ClassVar[frozenset[str]] = frozenset({"zk"})

    def __init__(self, n_slots: int, n_features: int, latent_dim: int) -> None:
        super().__init__()
        self.n_slots = n_slots
        self.n_features = n_features
        self.latent_dim = latent_dim

    def forward(self, x: Tensor, mask: Tensor) -> ModelOutput:
        raise NotImplementedError

    def masked_input(self, x: Tensor, mask: Tensor) -> Tensor:
        """Zero the padded slots so nothing downstream can depend on what they hold."""
        expected = (self.n_slots, self.n_features)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected or tuple(mask.shape) != x.shape[:2]:
            raise DataError(
                f"{type(self).__name__} expects x [B, {expected[0]}, {expected[1]}] and mask "
                f"[B, {expected[0]}], got x {list(x.shape)} and mask {list(mask.shape)}"
            )
        return torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))

    def sample_z0(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """Reparameterised sample in training; the mean in eval mode (deterministic scoring)."""
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
