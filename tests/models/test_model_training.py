"""A short training of every model on a toy set lowers its loss."""

from __future__ import annotations

import pytest
import torch

from bead.losses.registry import build_loss
from bead.models.registry import MODELS, build_model
from bead.names import compatible

S, F, L = 6, 3, 4


def toy_set(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Events on a low-dimensional manifold (2 hidden factors) with ragged multiplicity."""
    gen = torch.Generator().manual_seed(0)
    factors = torch.randn(n, 2, generator=gen)
    basis = torch.randn(2, S * F, generator=gen)
    x = torch.tanh(factors @ basis).view(n, S, F)
    n_real = torch.randint(2, S + 1, (n,), generator=gen)
    mask = torch.arange(S) < n_real.unsqueeze(1)
    return x * mask.unsqueeze(-1), mask


@pytest.mark.parametrize("name", list(MODELS))
def test_short_training_reduces_loss(name: str) -> None:
    torch.manual_seed(0)
    x, mask = toy_set()
    model = build_model(name, S, F, L)
    loss = build_loss("VAEFlowLoss" if compatible(name, "VAEFlowLoss") else "AELoss")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            value = loss(x, mask, model(x, mask)).total.item()
        model.train()
        return value

    before = eval_loss()
    for _ in range(8):
        for idx in torch.randperm(len(x)).split(64):
            result = loss(x[idx], mask[idx], model(x[idx], mask[idx]))
            opt.zero_grad()
            result.total.backward()
            opt.step()
    assert eval_loss() < 0.6 * before
