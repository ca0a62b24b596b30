"""Config names (``loss_function``, as in the original BEAD) to loss classes, and which model
and loss pairs fit together."""

from __future__ import annotations

import inspect

from bead.errors import UsageError
from bead.losses.base import BeadLoss
from bead.losses.vae import AELoss, VAEFlowLoss, VAELoss
from bead.models.registry import model_class, unknown_name_error

LOSSES: dict[str, type[BeadLoss]] = {
    "AELoss": AELoss,
    "VAELoss": VAELoss,
    "VAEFlowLoss": VAEFlowLoss,
}


def loss_class(name: str) -> type[BeadLoss]:
    """The class registered under ``name``; UsageError (key ``loss_function``) if none is."""
    if name not in LOSSES:
        raise unknown_name_error("loss_function", name, list(LOSSES))
    return LOSSES[name]


def build_loss(name: str, reg_param: float = 1e-3, **kwargs: object) -> BeadLoss:
    """Instantiate the loss ``name``; extra keyword arguments go to its constructor."""
    cls = loss_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    for key in kwargs:
        if key not in accepted:
            raise UsageError(f"loss_function = '{name}' takes no setting '{key}'")
    return cls(reg_param=reg_param, **kwargs)


def compatible(model_name: str, loss_name: str) -> bool:
    """Whether the model produces every output part the loss needs."""
    return loss_class(loss_name).requires <= model_class(model_name).provides


def check_compatible(model_name: str, loss_name: str) -> None:
    """UsageError naming both config values when the pair cannot work together."""
    if not compatible(model_name, loss_name):
        fits = [name for name in LOSSES if compatible(model_name, name)]
        raise UsageError(
            f"model_name = '{model_name}' cannot be used with loss_function = '{loss_name}' "
            f"(it does not produce {', '.join(sorted(loss_class(loss_name).requires))}); "
            f"losses that fit it: {', '.join(fits)}"
        )
