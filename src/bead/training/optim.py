"""Optimizers and the learning-rate scheduler, by their config names (SPEC §3, §8)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from bead.config import Config
from bead.errors import UsageError

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "radam", "adagrad")
PLATEAU_FACTOR = 0.5


def build_optimizer(name: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimizer called ``name`` (SGD with momentum 0.9, the others with torch defaults)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    raise UsageError(f"optimizer = '{name}' is unknown; valid: {', '.join(OPTIMIZERS)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: Config
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """ReduceLROnPlateau on the validation loss when ``lr_scheduler`` is on, else None."""
    if not config.lr_scheduler:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=PLATEAU_FACTOR, patience=config.lr_scheduler_patience)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
