"""Transformer bodies over the slots of one level: ``TransformerAE`` (slot positions embedded,
decoded slot by slot) and the particle transformer (permutation invariant, decoded as a set).

The encoder embeds each slot, runs pre-norm ``nn.TransformerEncoderLayer``s whose attention
never reads a padded slot (key-padding mask), and pools the real slots two ways: their masked
mean and a learned query that attends to them (class attention, Touvron et al. 2021; the
original BEAD's class token attended only to itself, so its pooled output ignored the input).
With the fraction of real slots, that gives the hidden vector.

Without position embeddings nothing depends on the order of the slots, so the particle
transformer's code is invariant under any permutation of the constituents. Its decoder predicts
a set: learned slot queries plus the code, through self-attention layers (so the slots share
out the particles), each giving features and the logit of being a real particle; it is tied to
the input only through a set loss (``ChamferLoss``, ``SinkhornLoss``, ...).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bead.errors import UsageError
from bead.levels import LevelLayout
from bead.models.batch import Batch
from bead.models.bodies import Body, Decoded, masked_level, mlp


def _layers(d_model: int, heads: int, layers: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(
        nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                   activation="gelu", batch_first=True, norm_first=True)
        for _ in range(layers))


class SlotEncoder(nn.Module):
    """Masked pre-norm transformer over the slots, then masked-mean + attention pooling."""

    def __init__(self, n_slots: int, n_features: int, d_model: int, heads: int, layers: int,
                 dropout: float, ordered: bool) -> None:
        super().__init__()
        self.n_slots = n_slots
        self.embed = nn.Linear(n_features, d_model)
        self.position = nn.Parameter(torch.randn(n_slots, d_model) * 0.1) if ordered else None
        self.layers = _layers(d_model, heads, layers, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * 0.1)
        self.attention = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.out_features = 2 * d_model + 1

    def forward(self, xm: Tensor, mask: Tensor) -> Tensor:
        # An event without real slots attends to its (zeroed) first slot, not to nothing.
        first = torch.zeros_like(mask)
        first[:, 0] = True
        ignore = ~(mask | (first & ~mask.any(1, keepdim=True)))
        tokens = self.embed(xm)
        if self.position is not None:
            tokens = tokens + self.position.to(tokens.dtype)
        for layer in self.layers:
            tokens = layer(tokens, src_key_padding_mask=ignore)
        tokens = self.norm(tokens)
        weights = mask.to(tokens.dtype).unsqueeze(-1)
        n_real = weights.sum(1)
        mean = (tokens * weights).sum(1) / n_real.clamp(min=1.0)
        # shape[0], not len(): an ONNX export keeps the batch size free
        query = self.query.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        pooled, _ = self.attention(query, tokens, tokens, key_padding_mask=ignore,
                                   need_weights=False)
        return torch.cat([mean, pooled[:, 0], n_real / self.n_slots], dim=1)


class SlotQueryDecoder(nn.Module):
    """Every slot from a learned query plus the code, through self-attention layers; per slot
    the features and, if asked, the logit of the slot being real."""

    def __init__(self, n_slots: int, n_features: int, latent_dim: int, d_model: int, heads: int,
                 layers: int, dropout: float, occupancy: bool) -> None:
        super().__init__()
        self.occupancy = occupancy
        self.queries = nn.Parameter(torch.randn(n_slots, d_model))
        self.expand = nn.Linear(latent_dim, d_model)
        self.layers = _layers(d_model, heads, layers, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_features + int(occupancy))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        tokens = self.expand(z).unsqueeze(1) + self.queries.to(z.dtype)
        for layer in self.layers:
            tokens = layer(tokens)
        out = self.head(self.norm(tokens))
        if self.occupancy:
            return out[..., :-1], out[..., -1]
        return out, None


class TransformerBody(Body):
    """One level through a SlotEncoder with slot positions; decoded slot by slot."""

    ordered = True

    def __init__(self, level: str, layout: LevelLayout, latent_dim: int, d_model: int,
                 heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        if min(d_model, heads, layers) < 1 or d_model % heads or not 0 <= dropout < 1:
            raise UsageError(f"model_params: d_model ({d_model}) must be a positive multiple of "
                             f"heads ({heads}), layers >= 1 and dropout in [0, 1)")
        self.level, self.hidden = level, d_model
        self.encoder = SlotEncoder(layout.n_slots, layout.n_features, d_model, heads, layers,
                                   dropout, ordered=self.ordered)
        self.rho = mlp([self.encoder.out_features, d_model], final_activation=True)
        self.decoder = SlotQueryDecoder(layout.n_slots, layout.n_features, latent_dim, d_model,
                                        heads, layers, dropout, occupancy=not self.ordered)

    def encode(self, batch: Batch) -> Tensor:
        return self.rho(self.encoder(*masked_level(batch, self.level)))

    def decode(self, z: Tensor) -> Decoded:
        recon, occupancy = self.decoder(z)
        return {self.level: recon}, (None if occupancy is None else {self.level: occupancy})


class ParticleTransformerBody(TransformerBody):
    """The permutation-invariant form: no slot positions, a set decoder with occupancy."""

    ordered = False
