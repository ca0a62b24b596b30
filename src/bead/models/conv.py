"""Convolutional autoencoders over the slots x features "image", as in the original BEAD.

The set is viewed as an image ``[B, C, S, F]`` with two channels, the masked values and the mask
(so a real zero is not mistaken for padding). A first Conv2d spans all features of a slot, then
Conv1d layers mix neighbouring slots; the decoder mirrors it with a ConvTranspose2d back to F.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from bead.models.base import BeadModel, ModelOutput


class ConvEncoder(nn.Module):
    """Conv trunk to a hidden vector of size ``hidden`` (heads are added by the models)."""

    def __init__(self, n_slots: int, n_features: int, channels: tuple[int, int], hidden: int):
        super().__init__()
        c1, c2 = channels
        self.conv2d = nn.Conv2d(2, c1, kernel_size=(3, n_features), padding=(1, 0))
        self.conv1d = nn.Conv1d(c1, c2, kernel_size=3, padding=1)
        self.act = nn.LeakyReLU()
        self.linear = nn.Linear(c2 * n_slots, hidden)

    def forward(self, xm: Tensor, mask: Tensor) -> Tensor:
        image = torch.stack([xm, mask.unsqueeze(-1).expand_as(xm).to(xm.dtype)], dim=1)
        h = self.act(self.conv2d(image)).squeeze(-1)  # [B, c1, S]
        h = self.act(self.conv1d(h))  # [B, c2, S]
        return self.act(self.linear(h.flatten(1)))


class ConvDecoder(nn.Module):
    """Latent vector back to the ``[B, S, F]`` set, mirroring ConvEncoder."""

    def __init__(
        self, n_slots: int, n_features: int, latent_dim: int, channels: tuple[int, int],
        hidden: int,
    ):
        super().__init__()
        c1, c2 = channels
        self.c2 = c2
        self.linear = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, c2 * n_slots)
        )
        self.conv1d = nn.Conv1d(c2, c1, kernel_size=3, padding=1)
        self.deconv2d = nn.ConvTranspose2d(c1, 1, kernel_size=(3, n_features), padding=(1, 0))
        self.act = nn.LeakyReLU()

    def forward(self, z: Tensor) -> Tensor:
        h = self.act(self.linear(z)).view(z.shape[0], self.c2, -1)  # [B, c2, S]
        h = self.act(self.conv1d(h)).unsqueeze(-1)  # [B, c1, S, 1]
        return self.deconv2d(h).squeeze(1)  # [B, S, F]


class ConvAE(BeadModel):
    """Convolutional autoencoder: the code is returned as ``zk``."""

    def __init__(
        self, n_slots: int, n_features: int, latent_dim: int, *,
        channels: tuple[int, int] = (32, 16), hidden: int = 128,
    ) -> None:
        super().__init__(n_slots, n_features, latent_dim)
        self.encoder = ConvEncoder(n_slots, n_features, channels, hidden)
        self.to_latent = nn.Linear(hidden, latent_dim)
        self.decoder = ConvDecoder(n_slots, n_features, latent_dim, channels, hidden)

    def forward(self, x: Tensor, mask: Tensor) -> ModelOutput:
        z = self.to_latent(self.encoder(self.masked_input(x, mask), mask))
        return ModelOutput(recon=self.decoder(z), zk=z)


class ConvVAE(BeadModel):
    """Convolutional VAE with a diagonal-Gaussian posterior (no flow: ``zk = z0``)."""

    provides: ClassVar[frozenset[str]] = frozenset({"mu", "logvar", "z0", "zk"})

    def __init__(
        self, n_slots: int, n_features: int, latent_dim: int, *,
        channels: tuple[int, int] = (32, 16), hidden: int = 128,
    ) -> None:
        super().__init__(n_slots, n_features, latent_dim)
        self.hidden = hidden
        self.encoder = ConvEncoder(n_slots, n_features, channels, hidden)
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = ConvDecoder(n_slots, n_features, latent_dim, channels, hidden)

    def encode(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Hidden vector (flows amortise their parameters on it), mean and log-variance."""
        h = self.encoder(self.masked_input(x, mask), mask)
        return h, self.to_mu(h), self.to_logvar(h)

    def forward(self, x: Tensor, mask: Tensor) -> ModelOutput:
        _, mu, logvar = self.encode(x, mask)
        z0 = self.sample_z0(mu, logvar)
        return ModelOutput(recon=self.decoder(z0), mu=mu, logvar=logvar, z0=z0, zk=z0)
