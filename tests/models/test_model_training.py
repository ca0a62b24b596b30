"""Every catalog entry, with its default loss, learns a tiny structured sample: a model is
tested by being registered."""

from __future__ import annotations

import math

import pytest
import torch
from toy_models import LATENT, LAYOUT, default_levels, default_loss

from bead.losses.objective import Objective
from bead.models.base import BeadModel
from bead.models.batch import Batch, Level
from bead.models.catalog import MODELS
from bead.models.registry import build_model


def structured_sample(n: int = 384) -> Batch:
    """Every level a fixed function of two hidden factors, with ragged multiplicity."""
    gen = torch.Generator().manual_seed(0)
    factors = torch.randn(n, 2, generator=gen)
    levels = {}
    for level, lo in LAYOUT.items():
        basis = torch.randn(2, lo.n_slots * lo.n_features, generator=gen)
        x = torch.tanh(factors @ basis).view(n, lo.n_slots, lo.n_features)
        n_real = torch.randint(1, lo.n_slots + 1, (n,), generator=gen)
        mask = torch.arange(lo.n_slots) < n_real.unsqueeze(1)
        levels[level] = Level(x * mask.unsqueeze(-1), mask)
    return Batch(levels, torch.ones(n), torch.zeros(n, dtype=torch.long), torch.arange(n))


def two_epoch_losses(model: BeadModel, objective: Objective, data: Batch) -> list[float]:
    """The loss on ``data`` (eval mode) before and after each of two epochs of Adam."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            value = objective.step(model, data).total.item()
        model.train()
        return value

    losses = [eval_loss()]
    for _ in range(2):
        for idx in torch.randperm(len(data)).split(32):
            result = objective.step(model, data.select(idx))
            opt.zero_grad()
            result.total.backward()
            opt.step()
        losses.append(eval_loss())
    return losses


@pytest.mark.parametrize("name", list(MODELS))
def test_two_epochs_give_a_finite_decreasing_loss(name: str) -> None:
    torch.manual_seed(0)
    levels = default_levels(name)
    model = build_model(name, LAYOUT, levels, LATENT, {})
    losses = two_epoch_losses(model, Objective(default_loss(name), {"reg_param": 1e-3}),
                              structured_sample())
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[2] < losses[1] < losses[0], losses
