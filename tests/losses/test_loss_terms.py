"""Per-event loss terms: masked reconstruction, KL, densities and the weighted mean."""

from __future__ import annotations

import math

import torch

from bead.losses.terms import (
    kl_standard_normal,
    log_normal_diag,
    log_standard_normal,
    masked_mse,
    occupancy_bce,
    weighted_mean,
)


def test_masked_mse_averages_features_and_real_slots() -> None:
    x = torch.zeros(2, 3, 2)
    recon = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]], [[3.0, 0.0], [0.0, 0.0], [0, 0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(masked_mse(x, recon, mask),
                               torch.tensor([(2.0 + 4.0) / 4, 9.0 / 2]))


def test_occupancy_cross_entropy_is_low_when_the_multiplicity_is_right() -> None:
    mask = torch.tensor([[True, True, False, False]])
    right = torch.tensor([[8.0, 8.0, -8.0, -8.0]])
    wrong = -right
    assert occupancy_bce(right, mask) < 1e-3 < 1.0 < occupancy_bce(wrong, mask)


def test_masked_mse_ignores_non_finite_padding_in_value_and_gradient() -> None:
    x = torch.randn(3, 4, 2)
    mask = torch.tensor([[True, True, False, False]] * 3)
    recon = torch.randn(3, 4, 2, requires_grad=True)
    base = masked_mse(x, recon, mask)
    base.sum().backward()
    grad = recon.grad.clone()
    spoiled = recon.detach().clone()
    spoiled[:, 2:] = float("inf")
    spoiled.requires_grad_(True)
    x_spoiled = x.clone()
    x_spoiled[:, 2:] = float("nan")
    again = masked_mse(x_spoiled, spoiled, mask)
    again.sum().backward()
    torch.testing.assert_close(again, base)
    torch.testing.assert_close(spoiled.grad, grad)
    assert torch.all(grad[:, 2:] == 0)


def test_event_without_real_slots_scores_zero() -> None:
    mask = torch.zeros(1, 3, dtype=torch.bool)
    assert masked_mse(torch.ones(1, 3, 2), torch.zeros(1, 3, 2), mask).item() == 0.0


def test_closed_form_kl_matches_monte_carlo() -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]], dtype=torch.float64)
    logvar = torch.tensor([[0.2, -1.5, 0.7], [1.0, 0.0, -0.4]], dtype=torch.float64)
    n = 400_000
    eps = torch.randn(n, *mu.shape, generator=gen, dtype=torch.float64)
    z = mu + eps * torch.exp(0.5 * logvar)
    mc = (log_normal_diag(z, mu, logvar) - log_standard_normal(z)).mean(0)
    torch.testing.assert_close(mc, kl_standard_normal(mu, logvar).double(), atol=2e-2, rtol=0)


def test_log_densities_match_torch_distributions() -> None:
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(log_normal_diag(z, mu, logvar), ref)
    ref0 = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(log_standard_normal(z), ref0)
    assert math.isclose(log_standard_normal(torch.zeros(1, 1)).item(), -0.5 * math.log(2 * math.pi),
                        rel_tol=1e-6)


def test_weighted_mean() -> None:
    values = torch.tensor([1.0, 2.0, 4.0])
    assert weighted_mean(values, None).item() == torch.tensor(7.0 / 3).item()
    assert weighted_mean(values, torch.tensor([1.0, 0.0, 3.0])).item() == 13.0 / 4
    # Signed weights: normalised by sum |w|, so a near-zero sum of weights cannot blow it up.
    assert weighted_mean(values, torch.tensor([1.0, 1.0, -2.0])).item() == -5.0 / 4
