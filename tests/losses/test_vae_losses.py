"""Losses: registry, compatibility, the flow ELBO, masking, and every model x loss pair."""

from __future__ import annotations

import math

import pytest
import torch

from bead.errors import UsageError
from bead.losses.base import LossResult
from bead.losses.registry import LOSSES, build_loss
from bead.losses.terms import kl_standard_normal
from bead.models.base import ModelOutput
from bead.models.registry import MODELS, build_model
from bead.names import check_compatible, compatible

S, F, L = 6, 3, 4
PAIRS = [(m, lo) for m in MODELS for lo in LOSSES if compatible(m, lo)]


def toy_batch(b: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    mask = torch.arange(S) < torch.randint(1, S + 1, (b, 1), generator=gen)
    return torch.randn(b, S, F, generator=gen) * mask.unsqueeze(-1), mask


def gaussian_output(n: int, mu: torch.Tensor, logvar: torch.Tensor, seed: int = 0) -> ModelOutput:
    """n posterior samples per event, stacked as n * B events, without a flow."""
    gen = torch.Generator().manual_seed(seed)
    mu_n, logvar_n = mu.repeat(n, 1), logvar.repeat(n, 1)
    z0 = mu_n + torch.randn(mu_n.shape, generator=gen, dtype=mu.dtype) * torch.exp(0.5 * logvar_n)
    return ModelOutput(recon=torch.zeros(len(z0), 1, 1), mu=mu_n, logvar=logvar_n, z0=z0, zk=z0)


def test_unknown_loss_names_key_and_suggests() -> None:
    with pytest.raises(UsageError) as err:
        build_loss("VAEFlowLos")
    msg = str(err.value)
    assert "loss_function" in msg and "did you mean 'VAEFlowLoss'" in msg and "AELoss" in msg


def test_unknown_loss_setting_is_usage_error() -> None:
    with pytest.raises(UsageError, match="'beta'"):
        build_loss("VAELoss", beta=2.0)


def test_compatibility_metadata() -> None:
    assert compatible("AE", "AELoss") and not compatible("AE", "VAELoss")
    assert not compatible("ConvAE", "VAEFlowLoss")
    assert compatible("Planar_ConvVAE", "VAEFlowLoss") and compatible("ConvVAE", "VAEFlowLoss")
    assert compatible("DeepSetsVAE", "VAELoss")
    with pytest.raises(UsageError, match="model_name = 'AE' cannot be used with loss_function"):
        check_compatible("AE", "VAEFlowLoss")


def test_loss_rejects_output_lacking_what_it_needs() -> None:
    x, mask = toy_batch()
    out = build_model("ConvAE", S, F, L)(x, mask)
    with pytest.raises(UsageError, match="'VAELoss' needs the model output logvar, mu"):
        build_loss("VAELoss")(x, mask, out)


def test_flow_elbo_without_flow_equals_vae_loss_in_expectation() -> None:
    mu = torch.tensor([[0.4, -1.2, 0.0, 2.0], [1.0, 0.1, -0.3, 0.5]], dtype=torch.float64)
    logvar = torch.tensor([[0.3, -1.0, 0.5, -0.2], [0.0, 1.0, -2.0, 0.4]], dtype=torch.float64)
    n = 200_000
    out = gaussian_output(n, mu, logvar)
    x, mask = torch.zeros(len(out.mu), 1, 1), torch.ones(len(out.mu), 1, dtype=torch.bool)
    flow = build_loss("VAEFlowLoss", reg_param=1.0)(x, mask, out)
    vae = build_loss("VAELoss", reg_param=1.0)(x, mask, out)
    assert torch.all(flow.components["neg_ldj"] == 0)
    flow_kl = flow.components["kl"].view(n, 2).mean(0)
    vae_kl = vae.components["kl"].view(n, 2).mean(0)
    torch.testing.assert_close(flow_kl, vae_kl, atol=2e-2, rtol=0)
    torch.testing.assert_close(flow.total, vae.total, atol=2e-2, rtol=0)


def test_flow_elbo_scores_the_flow_output_not_the_base_sample() -> None:
    # A linear "flow" zK = 2 z0 (ldj = D log 2) maps q0 = N(mu, s²) to N(2 mu, 4 s²): the correct
    # ELBO's KL term must average to KL(N(2 mu, 4 s²) || N(0, 1)), unlike the original shortcut
    # KL(q0) - ldj.
    mu = torch.tensor([[0.3, -0.5, 0.1, 0.2]], dtype=torch.float64)
    logvar = torch.tensor([[-1.0, -0.5, -2.0, -1.5]], dtype=torch.float64)
    base = gaussian_output(200_000, mu, logvar)
    out = ModelOutput(recon=base.recon, mu=base.mu, logvar=base.logvar, z0=base.z0,
                      zk=2.0 * base.z0, ldj=torch.full((len(base.z0),), L * math.log(2.0)))
    x, mask = torch.zeros(len(out.mu), 1, 1), torch.ones(len(out.mu), 1, dtype=torch.bool)
    kl = build_loss("VAEFlowLoss", reg_param=1.0)(x, mask, out).components["kl"].mean()
    expected = kl_standard_normal(2.0 * mu, logvar + 2 * math.log(2.0)).item()
    shortcut = (kl_standard_normal(mu, logvar) - L * math.log(2.0)).item()
    assert kl.item() == pytest.approx(expected, abs=2e-2)
    assert abs(expected - shortcut) > 1.0


def test_reg_param_weights_the_kl_and_can_change() -> None:
    x, mask = toy_batch()
    out = build_model("ConvVAE", S, F, L).eval()(x, mask)
    loss = build_loss("VAELoss", reg_param=0.5)
    comps = loss(x, mask, out).components
    torch.testing.assert_close(comps["total"], comps["reco"] + 0.5 * comps["kl"])
    loss.reg_param = 2.0
    comps = loss(x, mask, out).components
    torch.testing.assert_close(comps["total"], comps["reco"] + 2.0 * comps["kl"])


def test_weighted_total() -> None:
    x, mask = toy_batch()
    out = build_model("AE", S, F, L)(x, mask)
    weight = torch.linspace(0.1, 2.0, len(x))
    result = build_loss("AELoss")(x, mask, out, weight)
    per_event = result.components["total"]
    torch.testing.assert_close(result.total, (weight * per_event).sum() / weight.sum())


@pytest.mark.parametrize(("model_name", "loss_name"), PAIRS)
def test_every_compatible_pair_runs_forward_and_backward(model_name: str, loss_name: str) -> None:
    torch.manual_seed(0)
    x, mask = toy_batch()
    model = build_model(model_name, S, F, L)
    result = build_loss(loss_name)(x, mask, model(x, mask))
    assert isinstance(result, LossResult) and result.total.dim() == 0
    assert "total" in result.components and "reco" in result.components
    assert all(c.shape == (len(x),) for c in result.components.values())
    result.total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("model_name", "loss_name"), PAIRS)
def test_padded_slots_change_neither_loss_nor_gradients(model_name: str, loss_name: str) -> None:
    x, mask = toy_batch()
    noisy = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x) * 100)
    model = build_model(model_name, S, F, L)
    loss = build_loss(loss_name)
    results = []
    for inputs in (x, noisy):
        model.zero_grad()
        torch.manual_seed(1)  # same posterior sample in both passes
        result = loss(inputs, mask, model(inputs, mask))
        result.total.backward()
        results.append((result, [p.grad.clone() for p in model.parameters()]))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(a.total, b.total)
    for name in a.components:
        torch.testing.assert_close(a.components[name], b.components[name])
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb)


def test_perturbed_padded_recon_does_not_change_loss() -> None:
    x, mask = toy_batch()
    out = build_model("ConvVAE", S, F, L).eval()(x, mask)
    spoiled = torch.where(mask.unsqueeze(-1), out.recon, torch.full_like(out.recon, -7.0))
    loss = build_loss("VAEFlowLoss")
    a = loss(x, mask, out)
    b = loss(x, mask, ModelOutput(recon=spoiled, mu=out.mu, logvar=out.logvar, z0=out.z0,
                                  zk=out.zk))
    torch.testing.assert_close(a.components["reco"], b.components["reco"])


def test_bf16_autocast_gives_float32_components() -> None:
    x, mask = toy_batch()
    model = build_model("Planar_ConvVAE", S, F, L)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = build_loss("VAEFlowLoss")(x, mask, model(x, mask))
    assert all(c.dtype == torch.float32 for c in result.components.values())
    assert torch.isfinite(result.total)
    result.total.backward()


def test_flow_kl_terms_add_up_and_nll_pk_grows_away_from_the_prior() -> None:
    x, mask = toy_batch()
    out = build_model("Planar_ConvVAE", S, F, L).eval()(x, mask)
    comps = build_loss("VAEFlowLoss", reg_param=1.0)(x, mask, out).components
    torch.testing.assert_close(comps["kl"], comps["log_q0"] + comps["neg_ldj"] + comps["nll_pk"])
    far = ModelOutput(recon=out.recon, mu=out.mu, logvar=out.logvar, z0=out.z0,
                      zk=out.zk + 5.0, ldj=out.ldj)
    far_comps = build_loss("VAEFlowLoss", reg_param=1.0)(x, mask, far).components
    assert torch.all(far_comps["nll_pk"] > comps["nll_pk"])
