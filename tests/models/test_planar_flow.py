"""Planar flow: analytic log-det against autograd Jacobians, and the invertibility constraint."""

from __future__ import annotations

import torch
from torch.autograd.functional import jacobian

from bead.models.flows import planar_step
from bead.models.registry import build_model

D = 4


def test_logdet_matches_autograd_jacobian() -> None:
    gen = torch.Generator().manual_seed(1)
    z, u, w = (torch.randn(6, D, generator=gen, dtype=torch.float64) for _ in range(3))
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    _, ldj = planar_step(z, u, w, b)
    for i in range(6):
        def step(zi: torch.Tensor, i: int = i) -> torch.Tensor:
            return planar_step(zi[None], u[i : i + 1], w[i : i + 1], b[i : i + 1])[0][0]

        jac = jacobian(step, z[i])
        torch.testing.assert_close(ldj[i], torch.linalg.slogdet(jac).logabsdet)


def test_constraint_keeps_the_flow_invertible_where_raw_u_would_not() -> None:
    # w·u = -5 would make det J = 1 + (1 - h²) w·u negative near h = 0 without the u_hat fix.
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    u = -5.0 * w
    for shift in torch.linspace(-3, 3, 13, dtype=torch.float64):
        z = torch.zeros(1, D, dtype=torch.float64)
        b = shift.reshape(1)
        jac = jacobian(lambda zi, b=b: planar_step(zi[None], u, w, b)[0][0], z[0])
        assert torch.linalg.det(jac) > 0
        assert torch.isfinite(planar_step(z, u, w, b)[1]).all()


def test_model_ldj_is_the_sum_over_steps() -> None:
    model = build_model("Planar_ConvVAE", 5, 3, D).eval()
    x, mask = torch.randn(3, 5, 3), torch.ones(3, 5, dtype=torch.bool)
    out = model(x, mask)
    h, _, _ = model.encode(x, mask)
    shape = (3, model.num_flows, D)
    u, w, b = model.amor_u(h).view(shape), model.amor_w(h).view(shape), model.amor_b(h)
    z, total = out.z0, torch.zeros(3)
    for k in range(model.num_flows):
        z, step = planar_step(z, u[:, k], w[:, k], b[:, k])
        total = total + step
    torch.testing.assert_close(out.zk, z)
    torch.testing.assert_close(out.ldj, total)
    assert model.num_flows == 6 and not torch.equal(out.zk, out.z0)
