"""Encoder/decoder pairs ("bodies") that an autoencoder or VAE is assembled from.

A body encodes a Batch to a hidden vector ``[B, hidden]`` (the VAE heads and latent flows are
added by ``bead.models.autoencoder``) and decodes a latent vector back to every level it reads:
``(recon per level, occupancy logits per set level or None)``. Single-level bodies read one
level; the multi-level body reads any combination.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bead.errors import UsageError
from bead.levels import LevelLayout
from bead.models.batch import Batch

Decoded = tuple[dict[str, Tensor], dict[str, Tensor] | None]


def mlp(sizes: list[int], final_activation: bool = False, batch_norm: bool = False,
        dropout: Sequence[float] = ()) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (and after the last one if asked); with
    ``batch_norm`` a BatchNorm1d before each activation, and ``dropout[i]`` after activation i."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(nn.LeakyReLU())
            if i < len(dropout) and dropout[i] > 0:
                layers.append(nn.Dropout(dropout[i]))
    return nn.Sequential(*layers)


def masked_level(batch: Batch, level: str) -> tuple[Tensor, Tensor]:
    """``level``'s input with padded slots zeroed, and its mask."""
    lv = batch[level]
    zero = torch.zeros((), dtype=lv.x.dtype, device=lv.x.device)
    return torch.where(lv.mask.unsqueeze(-1), lv.x, zero), lv.mask


class Body(nn.Module):
    hidden: int

    def encode(self, batch: Batch) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Decoded:
        raise NotImplementedError


class MLPBody(Body):
    """The flattened masked set (and its mask, so a real zero differs from padding) through
    an MLP; the decoder mirrors it.

    ``batch_norm`` adds a BatchNorm1d to every hidden layer, the encoder's and the decoder's
    own (the original AE_Dropout_BN shared them between the two, mixing their statistics).
    ``dropout`` (empty, or one probability per hidden layer plus one) drops units after each
    encoder layer, and the last value on the code as the decoder reads it. In eval mode both
    are fixed (running statistics, no dropout), so scoring is deterministic.
    """

    def __init__(self, level: str, layout: LevelLayout, latent_dim: int, hidden: list[int],
                 batch_norm: bool = False, dropout: Sequence[float] = ()) -> None:
        super().__init__()
        if not hidden:
            raise UsageError("model_params.hidden: give at least one layer size")
        if dropout and (len(dropout) != len(hidden) + 1 or not all(0 <= p < 1 for p in dropout)):
            raise UsageError(f"model_params.dropout: give {len(hidden) + 1} probabilities in "
                             f"[0, 1) (one per hidden layer, then the code's), got {dropout}")
        self.level, self.layout = level, layout
        n_in = layout.n_slots * layout.n_features
        self.hidden = hidden[-1]
        self.encoder = mlp([n_in + layout.n_slots, *hidden], final_activation=True,
                           batch_norm=batch_norm, dropout=dropout[:-1])
        self.code_dropout = nn.Dropout(dropout[-1] if dropout else 0.0)
        self.decoder = mlp([latent_dim, *reversed(hidden), n_in], batch_norm=batch_norm)

    def encode(self, batch: Batch) -> Tensor:
        xm, mask = masked_level(batch, self.level)
        return self.encoder(torch.cat([xm.flatten(1), mask.to(xm.dtype)], dim=1))

    def decode(self, z: Tensor) -> Decoded:
        shape = (z.shape[0], self.layout.n_slots, self.layout.n_features)
        return {self.level: self.decoder(self.code_dropout(z)).view(shape)}, None


class ConvBody(Body):
    """The set as an image ``[B, 2, S, F]`` (masked values and the mask), as in the original
    BEAD: a Conv2d spans all features of a slot, a Conv1d mixes neighbouring slots; the decoder
    mirrors it with a ConvTranspose2d back to F."""

    def __init__(self, level: str, layout: LevelLayout, latent_dim: int, channels: list[int],
                 hidden: int) -> None:
        super().__init__()
        if len(channels) != 2 or min(channels) < 1:
            raise UsageError("model_params.channels: give two positive channel counts")
        c1, c2 = channels
        n_slots, n_features = layout.n_slots, layout.n_features
        self.level, self.c2, self.hidden = level, c2, hidden
        self.conv2d = nn.Conv2d(2, c1, kernel_size=(3, n_features), padding=(1, 0))
        self.conv1d = nn.Conv1d(c1, c2, kernel_size=3, padding=1)
        self.enc_linear = nn.Linear(c2 * n_slots, hidden)
        self.dec_linear = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(),
                                        nn.Linear(hidden, c2 * n_slots))
        self.dec_conv1d = nn.Conv1d(c2, c1, kernel_size=3, padding=1)
        self.deconv2d = nn.ConvTranspose2d(c1, 1, kernel_size=(3, n_features), padding=(1, 0))
        self.act = nn.LeakyReLU()

    def encode(self, batch: Batch) -> Tensor:
        xm, mask = masked_level(batch, self.level)
        image = torch.stack([xm, mask.unsqueeze(-1).expand_as(xm).to(xm.dtype)], dim=1)
        h = self.act(self.conv2d(image)).squeeze(-1)  # [B, c1, S]
        h = self.act(self.conv1d(h))  # [B, c2, S]
        return self.act(self.enc_linear(h.flatten(1)))

    def decode(self, z: Tensor) -> Decoded:
        h = self.act(self.dec_linear(z)).view(z.shape[0], self.c2, -1)  # [B, c2, S]
        h = self.act(self.dec_conv1d(h)).unsqueeze(-1)  # [B, c1, S, 1]
        return {self.level: self.deconv2d(h).squeeze(1)}, None


class SetPool(nn.Module):
    """Deep Sets encoder of one padded set (Zaheer et al. 2017): a shared per-slot MLP, then
    masked mean and max pooling and the fraction of real slots (neither pooling sees the
    multiplicity). Reordering the real slots or changing the padded ones changes nothing."""

    def __init__(self, n_slots: int, n_features: int, hidden: int) -> None:
        super().__init__()
        self.n_slots = n_slots
        self.phi = mlp([n_features, hidden, hidden], final_activation=True)
        self.out_features = 2 * hidden + 1

    def forward(self, xm: Tensor, mask: Tensor) -> Tensor:
        weights = mask.to(xm.dtype).unsqueeze(-1)  # [B, S, 1]
        n_real = weights.sum(1)  # [B, 1]
        per_slot = self.phi(xm)
        mean = (per_slot * weights).sum(1) / n_real.clamp(min=1.0)
        low = torch.finfo(per_slot.dtype).min
        peak = torch.where(mask.unsqueeze(-1), per_slot, torch.full_like(per_slot, low)).amax(1)
        peak = torch.where(n_real > 0, peak, torch.zeros_like(peak))
        return torch.cat([mean, peak, n_real / self.n_slots], dim=1)


class SlotDecoder(nn.Module):
    """Every slot of a set from one event vector plus a learned embedding per slot position
    (slots are pt-ordered by preparation); optionally the logit of each slot being real."""

    def __init__(self, n_slots: int, n_features: int, in_features: int, hidden: int,
                 slot_embedding: int, occupancy: bool) -> None:
        super().__init__()
        self.n_slots, self.occupancy = n_slots, occupancy
        self.embedding = nn.Parameter(torch.randn(n_slots, slot_embedding) * 0.1)
        self.expand = mlp([in_features, hidden], final_activation=True)
        self.slot = mlp([hidden + slot_embedding, hidden, n_features + int(occupancy)])

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        per_event = self.expand(z).unsqueeze(1).expand(-1, self.n_slots, -1)
        slots = self.embedding.to(per_event.dtype).expand(z.shape[0], -1, -1)
        out = self.slot(torch.cat([per_event, slots], dim=-1))
        if self.occupancy:
            return out[..., :-1], out[..., -1]
        return out, None


class DeepSetsBody(Body):
    """One level through SetPool and a small MLP; decoded by a SlotDecoder."""

    def __init__(self, level: str, layout: LevelLayout, latent_dim: int, hidden: int,
                 slot_embedding: int) -> None:
        super().__init__()
        self.level, self.hidden = level, hidden
        self.pool = SetPool(layout.n_slots, layout.n_features, hidden)
        self.rho = mlp([self.pool.out_features, hidden], final_activation=True)
        self.decoder = SlotDecoder(layout.n_slots, layout.n_features, latent_dim, hidden,
                                   slot_embedding, occupancy=False)

    def encode(self, batch: Batch) -> Tensor:
        return self.rho(self.pool(*masked_level(batch, self.level)))

    def decode(self, z: Tensor) -> Decoded:
        recon, _ = self.decoder(z)
        return {self.level: recon}, None


class MultiLevelBody(Body):
    """Every requested level at once: the event vector through an MLP, each set level (jets,
    constituents) through its own SetPool; the concatenation through an MLP to ``hidden``.

    The decoder rebuilds the event vector and every set with a SlotDecoder that also predicts
    which slots are real, so the loss and the score see each set's multiplicity, which masking
    alone would hide.
    """

    def __init__(self, levels: tuple[str, ...], layouts: dict[str, LevelLayout],
                 latent_dim: int, hidden: int, set_hidden: int, slot_embedding: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.event = "event" in levels
        self.sets = [lv for lv in levels if lv != "event"]
        size = 0
        if self.event:
            n_event = layouts["event"].n_features
            self.event_encoder = mlp([n_event, set_hidden], final_activation=True)
            self.event_decoder = mlp([latent_dim, hidden, n_event])
            size += set_hidden
        self.pools = nn.ModuleDict({lv: SetPool(layouts[lv].n_slots, layouts[lv].n_features,
                                                set_hidden) for lv in self.sets})
        size += sum(p.out_features for p in self.pools.values())
        self.rho = mlp([size, hidden, hidden], final_activation=True)
        self.decoders = nn.ModuleDict({
            lv: SlotDecoder(layouts[lv].n_slots, layouts[lv].n_features, latent_dim,
                            set_hidden, slot_embedding, occupancy=True) for lv in self.sets})

    def encode(self, batch: Batch) -> Tensor:
        parts = []
        if self.event:
            parts.append(self.event_encoder(batch["event"].x[:, 0]))
        parts += [self.pools[lv](*masked_level(batch, lv)) for lv in self.sets]
        return self.rho(torch.cat(parts, dim=1))

    def decode(self, z: Tensor) -> Decoded:
        recon: dict[str, Tensor] = {}
        occupancy: dict[str, Tensor] = {}
        if self.event:
            recon["event"] = self.event_decoder(z).unsqueeze(1)
        for lv in self.sets:
            recon[lv], occupancy[lv] = self.decoders[lv](z)  # type: ignore[assignment]
        return recon, occupancy
