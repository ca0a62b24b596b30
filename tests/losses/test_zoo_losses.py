"""The zoo's terms: the Dirichlet KL (closed form vs Monte Carlo), the Dirichlet flow ELBO, and
the order-free set distances (Chamfer, Sinkhorn) with the multiplicity term."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from toy_models import LATENT, LAYOUT, build, toy_batch

from bead.losses.catalog import compatible
from bead.losses.objective import DIRICHLET_PRIOR, Objective
from bead.losses.sets import masked_chamfer, multiplicity_bce, sinkhorn_distance, top_slots
from bead.losses.terms import kl_standard_normal
from bead.models.base import ModelOutput
from bead.models.batch import Batch, Level
from bead.models.dirichlet import bridged_prior_logvar, dirichlet_kl
from bead.models.registry import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from test_model_training import structured_sample, two_epoch_losses

ZOO_LOSSES = ("DVAELoss", "DVAEFlowLoss", "ChamferLoss", "SinkhornLoss", "VAEChamferLoss",
              "VAESinkhornLoss")
ZOO_MODELS = ("Dirichlet_ConvVAE", "ParticleTransformerAE", "ParticleTransformerVAE")


def test_dirichlet_kl_matches_monte_carlo_and_torch() -> None:
    alpha = torch.tensor([[0.7, 2.0, 9.0], [5.0, 5.0, 5.0], [30.0, 1.2, 0.4]],
                         dtype=torch.float64)
    prior = torch.distributions.Dirichlet(torch.full((3,), DIRICHLET_PRIOR, dtype=torch.float64))
    q = torch.distributions.Dirichlet(alpha)
    torch.manual_seed(0)
    sample = q.sample((200_000,))
    log_ratio = q.log_prob(sample) - prior.log_prob(sample)
    closed = dirichlet_kl(alpha, DIRICHLET_PRIOR)
    standard_error = log_ratio.std(0) / math.sqrt(len(log_ratio))
    assert torch.all((closed - log_ratio.mean(0)).abs() < 4 * standard_error + 1e-9)
    torch.testing.assert_close(closed, torch.distributions.kl_divergence(q, prior))
    assert closed[1].abs() < 1e-12  # the prior itself
    assert dirichlet_kl(alpha.to(torch.bfloat16), 5.0).dtype == torch.float32


def test_dvae_loss_is_reco_plus_beta_dirichlet_kl() -> None:
    batch = toy_batch(levels=("constituent",))
    out = build("Dirichlet_ConvVAE", ("constituent",)).eval()(batch)
    comps = Objective("DVAELoss", {"reg_param": 0.5}).components(batch, out)
    torch.testing.assert_close(comps["kl"], dirichlet_kl(out.alpha, 5.0))
    torch.testing.assert_close(comps["total"], comps["reco"] + 0.5 * comps["kl"])


def test_dirichlet_flow_kl_without_flow_is_the_kl_to_the_bridged_prior() -> None:
    mu = torch.tensor([[0.4, -1.2, 0.3]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, -1.0, -2.0]], dtype=torch.float64)
    n = 200_000
    gen = torch.Generator().manual_seed(0)
    z0 = mu + torch.randn(n, 3, generator=gen, dtype=torch.float64) * (0.5 * logvar).exp()
    out = ModelOutput(recon={"event": torch.zeros(n, 1, 1)}, mu=mu.repeat(n, 1),
                      logvar=logvar.repeat(n, 1), z0=z0, zk=z0, alpha=torch.ones(n, 3))
    batch = Batch({"event": Level(torch.zeros(n, 1, 1), torch.ones(n, 1, dtype=torch.bool))},
                  torch.ones(n), torch.zeros(n, dtype=torch.long), torch.arange(n))
    kl = Objective("DVAEFlowLoss", {"reg_param": 1.0}).components(batch, out)["kl"].mean()
    prior_logvar = bridged_prior_logvar(3, DIRICHLET_PRIOR)
    # KL(N(mu, s²) || N(0, p²)) = KL(N(mu/p, s²/p²) || N(0, 1))
    expected = kl_standard_normal(mu / math.exp(0.5 * prior_logvar), logvar - prior_logvar)
    assert kl.item() == pytest.approx(expected.item(), abs=2e-2)


def _sets(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 6, 3, generator=gen, dtype=torch.float64)
    mask = torch.rand(5, 6, generator=gen) < 0.6
    mask[:, 0] = True
    return x, mask


@pytest.mark.parametrize("distance", [masked_chamfer, sinkhorn_distance])
def test_set_distances_are_zero_for_the_same_set_in_any_order(distance) -> None:
    x, mask = _sets()
    xm = x * mask.unsqueeze(-1)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(2))
    same = distance(xm, mask, xm[:, perm], mask[:, perm])
    torch.testing.assert_close(same, torch.zeros(5, dtype=torch.float64), atol=1e-6, rtol=0)
    other = xm + 0.3 * mask.unsqueeze(-1)
    shifted = distance(xm, mask, other, mask)
    assert torch.all(shifted > 0.05)
    torch.testing.assert_close(distance(xm, mask, other[:, perm], mask[:, perm]), shifted)
    torch.testing.assert_close(distance(xm[:, perm], mask[:, perm], other, mask), shifted)


def test_sinkhorn_approaches_the_optimal_matching() -> None:
    x, mask = _sets(1)
    mask[:] = True
    y = x[:, torch.randperm(6)] + 0.2 * torch.randn_like(x)
    value = sinkhorn_distance(x, mask, y, mask)
    for b in range(5):
        cost = ((x[b, :, None] - y[b, None]) ** 2).mean(-1).numpy()
        rows, cols = linear_sum_assignment(cost)
        assert value[b].item() == pytest.approx(float(np.mean(cost[rows, cols])), rel=0.15)


def test_set_terms_ignore_padded_and_unchosen_slots_and_learn_the_multiplicity() -> None:
    x, mask = _sets(3)
    n = mask.sum(1)
    logits = torch.where(mask, 5.0, -5.0).double()
    batch = Batch({"constituent": Level(x * mask.unsqueeze(-1), mask)}, torch.ones(5),
                  torch.zeros(5, dtype=torch.long), torch.arange(5))
    recon = torch.where(mask.unsqueeze(-1), x, 1e3 * torch.randn_like(x))
    for loss in ("ChamferLoss", "SinkhornLoss"):
        out = ModelOutput(recon={"constituent": recon}, occupancy={"constituent": logits})
        comps = Objective(loss, {}).components(batch, out)
        name = loss.removesuffix("Loss").lower()
        assert set(comps) == {name, f"{name}_constituent", "multiplicity_constituent", "total"}
        torch.testing.assert_close(comps[f"{name}_constituent"],
                                   torch.zeros(5, dtype=torch.float64), atol=1e-6, rtol=0)
        assert torch.all(comps["multiplicity_constituent"] < 0.01)
        spoiled = batch.with_levels({"constituent": Level(
            torch.where(mask.unsqueeze(-1), x, torch.tensor(float("nan"))), mask)})
        again = Objective(loss, {}).components(spoiled, out)
        torch.testing.assert_close(again["total"], comps["total"])
    assert torch.equal(top_slots(logits, n), mask)
    wrong = multiplicity_bce(-logits, mask)
    assert torch.all(wrong > multiplicity_bce(logits, mask))
    # Sorted on both sides: which slots carry the occupancy does not matter, only how many.
    torch.testing.assert_close(multiplicity_bce(logits.flip(1), mask), multiplicity_bce(logits,
                                                                                         mask))


def test_set_losses_under_bf16_autocast_are_float32() -> None:
    batch = toy_batch(levels=("constituent",))
    model = build("ParticleTransformerVAE", ("constituent",))
    for loss in ("VAEChamferLoss", "VAESinkhornLoss"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            result = Objective(loss, {"reg_param": 1e-3}).step(model, batch)
        assert all(c.dtype == torch.float32 for c in result.components.values())
        result.total.backward()


@pytest.mark.parametrize("loss", ZOO_LOSSES)
def test_zoo_losses_train_their_models_two_epochs(loss: str) -> None:
    torch.manual_seed(0)
    name = next(m for m in ZOO_MODELS if compatible(m, loss))
    model = build_model(name, LAYOUT, ("constituent",), LATENT, {})
    losses = two_epoch_losses(model, Objective(loss, {"reg_param": 1e-3}),
                              structured_sample(256))
    assert all(math.isfinite(v) for v in losses) and losses[2] < losses[1] < losses[0], losses
