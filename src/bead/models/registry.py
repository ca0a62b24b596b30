"""Build a model from its catalog entry (the class is imported only now, with torch)."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from bead.errors import UsageError
from bead.levels import Layout
from bead.losses.catalog import check_levels
from bead.models.base import BeadModel
from bead.models.catalog import check_model_params, model_entry, unknown_name_error

INITS = ("xavier", "default")


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and convolution layer."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_model(name: str, layout: Layout, levels: tuple[str, ...], latent_dim: int,
                params: dict[str, Any] | None = None, init: str = "xavier") -> BeadModel:
    """Instantiate ``name`` for the input ``levels`` of ``layout`` with ``params`` applied
    over the entry's defaults."""
    entry = model_entry(name)
    check_levels(name, levels, "+".join(levels))
    if init not in INITS:
        raise unknown_name_error("model_init", init, list(INITS))
    if latent_dim < 1:
        raise UsageError(f"latent_space_size must be at least 1 for model_name = '{name}'")
    for level in levels:
        if level in layout and min(layout[level].n_slots, layout[level].n_features) < 1:
            raise UsageError(f"the {level} level has no slots or no features for {name}")
    module, _, cls_name = entry.target.partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    model = cls(entry, layout, levels, latent_dim, check_model_params(name, params or {}))
    if init == "xavier" and entry.family != "density":  # zuko initialises its own flows
        xavier_init(model)
    return model
