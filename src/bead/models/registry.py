"""Config names (``model_name``, as in the original BEAD) to model classes."""

from __future__ import annotations

from torch import nn

from bead.errors import UsageError
from bead.models.autoencoders import AE
from bead.models.base import BeadModel
from bead.models.conv import ConvAE, ConvVAE
from bead.models.flows import Planar_ConvVAE
from bead.models.sets import DeepSetsVAE
from bead.names import unknown_name_error

MODELS: dict[str, type[BeadModel]] = {
    "AE": AE,
    "ConvAE": ConvAE,
    "ConvVAE": ConvVAE,
    "Planar_ConvVAE": Planar_ConvVAE,
    "DeepSetsVAE": DeepSetsVAE,
}

INITS = ("xavier", "default")


def model_class(name: str) -> type[BeadModel]:
    """The class registered under ``name``; UsageError (key ``model_name``) if none is."""
    if name not in MODELS:
        raise unknown_name_error("model_name", name, list(MODELS))
    return MODELS[name]


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and convolution layer."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_model(
    name: str, n_slots: int, n_features: int, latent_dim: int, init: str = "xavier"
) -> BeadModel:
    """Instantiate the model ``name`` for sets of ``n_slots`` x ``n_features``."""
    cls = model_class(name)
    if init not in INITS:
        raise unknown_name_error("model_init", init, list(INITS))
    for key, value in (("n_slots", n_slots), ("n_features", n_features),
                       ("latent_space_size", latent_dim)):
        if value < 1:
            raise UsageError(f"{key} must be at least 1 for model_name = '{name}', got {value}")
    model = cls(n_slots, n_features, latent_dim)
    if init == "xavier":
        xavier_init(model)
    return model
