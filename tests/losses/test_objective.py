"""Objectives: the catalog's losses as weighted named terms over a model's output."""

from __future__ import annotations

import math

import pytest
import torch
from toy_models import LATENT, build, default_levels, toy_batch

from bead.config import Config
from bead.errors import UsageError
from bead.losses.catalog import LOSSES, compatible
from bead.losses.objective import Objective
from bead.losses.terms import kl_standard_normal
from bead.models.base import ModelOutput
from bead.models.batch import Batch, Level
from bead.models.catalog import MODELS
from bead.training.checkpoint import WEIGHT_KEYS

PAIRS = [(m, lo) for m in MODELS for lo in LOSSES if compatible(m, lo)]
WEIGHTS = {k: float(getattr(Config(), k)) for k in WEIGHT_KEYS}  # reg_param = 1e-3, ...


def _one_level_batch(n: int) -> Batch:
    return Batch({"event": Level(torch.zeros(n, 1, 1), torch.ones(n, 1, dtype=torch.bool))},
                 torch.ones(n), torch.zeros(n, dtype=torch.long), torch.arange(n))


def gaussian_output(n: int, mu: torch.Tensor, logvar: torch.Tensor, seed: int = 0) -> ModelOutput:
    """n posterior samples per event, stacked as n * B events, without a flow."""
    gen = torch.Generator().manual_seed(seed)
    mu_n, logvar_n = mu.repeat(n, 1), logvar.repeat(n, 1)
    z0 = mu_n + torch.randn(mu_n.shape, generator=gen, dtype=mu.dtype) * torch.exp(0.5 * logvar_n)
    recon = {"event": torch.zeros(len(z0), 1, 1)}
    return ModelOutput(recon=recon, mu=mu_n, logvar=logvar_n, z0=z0, zk=z0)


@pytest.mark.parametrize(("model_name", "loss_name"), PAIRS)
def test_every_compatible_pair_runs_forward_and_backward(model_name: str, loss_name: str) -> None:
    torch.manual_seed(0)
    levels = default_levels(model_name)
    batch = toy_batch(levels=levels)
    model = build(model_name, levels)
    result = Objective(loss_name, WEIGHTS).step(model, batch)
    assert result.total.dim() == 0 and "total" in result.components
    assert LOSSES[loss_name].primary_score in result.components
    assert all(c.shape == (len(batch),) for c in result.components.values())
    # batch-level terms are scalars beside the scores, never among them
    assert set(result.batch_terms) == set(LOSSES[loss_name].batch_terms)
    assert not set(result.batch_terms) & set(result.components)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in result.batch_terms.values())
    result.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("model_name", "loss_name"), PAIRS)
def test_padded_slots_change_neither_loss_nor_gradients(model_name: str, loss_name: str) -> None:
    levels = default_levels(model_name)
    batch = toy_batch(levels=levels)
    noisy = batch.with_levels({k: Level(torch.where(v.mask.unsqueeze(-1), v.x,
                                                    torch.randn_like(v.x) * 100), v.mask)
                               for k, v in batch.levels.items()})
    model = build(model_name, levels)
    objective = Objective(loss_name, WEIGHTS)
    results = []
    for inputs in (batch, noisy):
        model.zero_grad()
        torch.manual_seed(1)  # same posterior sample and training noise in both passes
        result = objective.step(model, inputs)
        result.total.backward()
        results.append((result, [p.grad.clone() for p in model.parameters()
                                 if p.grad is not None]))
    (a, grads_a), (b, grads_b) = results
    for name in a.components:
        torch.testing.assert_close(a.components[name], b.components[name])
    for name in a.batch_terms:  # the augmented views too: padded slots stay out of them
        torch.testing.assert_close(a.batch_terms[name], b.batch_terms[name])
    torch.testing.assert_close(a.total, b.total)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb)


def test_a_loss_rejects_an_output_lacking_what_it_needs() -> None:
    batch = toy_batch(levels=("constituent",))
    with pytest.raises(UsageError, match="'VAELoss' needs the model output logvar, mu"):
        Objective("VAELoss", WEIGHTS).step(build("ConvAE", ("constituent",)), batch)


def test_flow_elbo_without_flow_equals_vae_loss_in_expectation() -> None:
    mu = torch.tensor([[0.4, -1.2, 0.0, 2.0], [1.0, 0.1, -0.3, 0.5]], dtype=torch.float64)
    logvar = torch.tensor([[0.3, -1.0, 0.5, -0.2], [0.0, 1.0, -2.0, 0.4]], dtype=torch.float64)
    n = 200_000
    out = gaussian_output(n, mu, logvar)
    batch = _one_level_batch(len(out.mu))
    flow = Objective("VAEFlowLoss", {"reg_param": 1.0}).components(batch, out)
    vae = Objective("VAELoss", {"reg_param": 1.0}).components(batch, out)
    assert torch.all(flow["neg_ldj"] == 0)
    torch.testing.assert_close(flow["kl"].view(n, 2).mean(0), vae["kl"].view(n, 2).mean(0),
                               atol=2e-2, rtol=0)


def test_flow_elbo_scores_the_flow_output_not_the_base_sample() -> None:
    # A linear "flow" zK = 2 z0 (ldj = D log 2) maps q0 = N(mu, s²) to N(2 mu, 4 s²): the correct
    # ELBO's KL term must average to KL(N(2 mu, 4 s²) || N(0, 1)), unlike the original shortcut
    # KL(q0) - ldj.
    mu = torch.tensor([[0.3, -0.5, 0.1, 0.2]], dtype=torch.float64)
    logvar = torch.tensor([[-1.0, -0.5, -2.0, -1.5]], dtype=torch.float64)
    base = gaussian_output(200_000, mu, logvar)
    out = ModelOutput(recon=base.recon, mu=base.mu, logvar=base.logvar, z0=base.z0,
                      zk=2.0 * base.z0, ldj=torch.full((len(base.z0),), 4 * math.log(2.0)))
    kl = Objective("VAEFlowLoss", {"reg_param": 1.0}).components(
        _one_level_batch(len(out.mu)), out)["kl"].mean()
    expected = kl_standard_normal(2.0 * mu, logvar + 2 * math.log(2.0)).item()
    shortcut = (kl_standard_normal(mu, logvar) - 4 * math.log(2.0)).item()
    assert kl.item() == pytest.approx(expected, abs=2e-2)
    assert abs(expected - shortcut) > 1.0


def test_named_weights_are_read_at_every_step() -> None:
    batch = toy_batch(levels=("constituent",))
    out = build("ConvVAE", ("constituent",)).eval()(batch)
    objective = Objective("VAELoss", {"reg_param": 0.5})
    comps = objective.components(batch, out)
    torch.testing.assert_close(comps["total"], comps["reco"] + 0.5 * comps["kl"])
    objective.weights["reg_param"] = 2.0  # what an annealing schedule does
    comps = objective.components(batch, out)
    torch.testing.assert_close(comps["total"], comps["reco"] + 2.0 * comps["kl"])


def test_weighted_total() -> None:
    batch = toy_batch(levels=("constituent",))
    batch = batch.with_weight(torch.linspace(0.1, 2.0, len(batch)))
    result = Objective("AELoss", {}).step(build("AE", ("constituent",)), batch)
    per_event = result.components["total"]
    torch.testing.assert_close(result.total, (batch.weight * per_event).sum() / batch.weight.sum())


def test_multi_level_reconstruction_sums_the_levels_and_their_multiplicities() -> None:
    batch = toy_batch()
    out = build("SetVAE").eval()(batch)
    comps = Objective("VAELoss", WEIGHTS).components(batch, out)
    parts = ["reco_event", "reco_jet", "reco_constituent", "card_jet", "card_constituent"]
    assert set(parts) <= set(comps)
    torch.testing.assert_close(comps["reco"], sum(comps[p] for p in parts))


def test_bf16_autocast_gives_float32_components() -> None:
    batch = toy_batch(levels=("constituent",))
    model = build("Planar_ConvVAE", ("constituent",))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = Objective("VAEFlowLoss", WEIGHTS).step(model, batch)
    assert all(c.dtype == torch.float32 for c in result.components.values())
    assert torch.isfinite(result.total)
    result.total.backward()


def test_flow_kl_terms_add_up_and_nll_pk_grows_away_from_the_prior() -> None:
    batch = toy_batch(levels=("constituent",))
    out = build("Planar_ConvVAE", ("constituent",)).eval()(batch)
    objective = Objective("VAEFlowLoss", {"reg_param": 1.0})
    comps = objective.components(batch, out)
    torch.testing.assert_close(comps["kl"], comps["log_q0"] + comps["neg_ldj"] + comps["nll_pk"])
    far = ModelOutput(recon=out.recon, mu=out.mu, logvar=out.logvar, z0=out.z0,
                      zk=out.zk + 5.0, ldj=out.ldj)
    assert torch.all(objective.components(batch, far)["nll_pk"] > comps["nll_pk"])
    assert out.zk.shape[1] == LATENT
