"""Config names (``loss_function``, as in the original BEAD) to loss classes."""

from __future__ import annotations

import inspect

from bead.errors import UsageError
from bead.losses.base import BeadLoss
from bead.losses.vae import AELoss, VAEFlowLoss, VAELoss
from bead.names import unknown_name_error

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
