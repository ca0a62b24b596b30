"""Latent flows: every kind's log|det J| against autograd, planar invertibility, and the VAE
that carries a flow reporting the sum over its steps."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian
from toy_models import build, toy_batch

from bead.errors import UsageError
from bead.models.catalog import MODELS
from bead.models.flows import FLOW_KINDS, build_flow
from bead.models.flows.planar import planar_step

D, H = 4, 7


@pytest.mark.parametrize("kind", list(FLOW_KINDS))
def test_every_flow_logdet_matches_autograd(kind: str) -> None:
    torch.manual_seed(0)
    flow = build_flow(kind, D, H, {}).double().eval()
    z0 = torch.randn(5, D, dtype=torch.float64)
    h = torch.randn(5, H, dtype=torch.float64)
    zk, ldj = flow(z0, h)
    assert zk.shape == (5, D) and ldj.shape == (5,)
    # not the identity, whose log-det 0 would match trivially
    assert not torch.allclose(zk, z0) and ldj.abs().max() > 1e-3
    for i in range(5):
        def one(z: torch.Tensor, i: int = i) -> torch.Tensor:
            return flow(z[None], h[i : i + 1])[0][0]

        jac = jacobian(one, z0[i])
        torch.testing.assert_close(ldj[i], torch.linalg.slogdet(jac).logabsdet)


def test_every_flow_kind_is_a_model_and_an_unknown_kind_suggests_the_closest() -> None:
    assert {e.flow for e in MODELS.values() if e.flow is not None} == set(FLOW_KINDS)
    with pytest.raises(UsageError, match=r"latent flow kind = 'nsf-ar' is unknown \(did you "
                                         r"mean 'nsf_ar'\?\); valid: planar, "):
        build_flow("nsf-ar", D, H, {})


def test_planar_logdet_matches_autograd_jacobian() -> None:
    gen = torch.Generator().manual_seed(1)
    z, u, w = (torch.randn(6, D, generator=gen, dtype=torch.float64) for _ in range(3))
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    _, ldj = planar_step(z, u, w, b)
    for i in range(6):
        def step(zi: torch.Tensor, i: int = i) -> torch.Tensor:
            return planar_step(zi[None], u[i : i + 1], w[i : i + 1], b[i : i + 1])[0][0]

        jac = jacobian(step, z[i])
        torch.testing.assert_close(ldj[i], torch.linalg.slogdet(jac).logabsdet)


def test_constraint_keeps_the_planar_flow_invertible_where_raw_u_would_not() -> None:
    # w·u = -5 would make det J = 1 + (1 - h²) w·u negative near h = 0 without the u_hat fix.
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    u = -5.0 * w
    for shift in torch.linspace(-3, 3, 13, dtype=torch.float64):
        z = torch.zeros(1, D, dtype=torch.float64)
        b = shift.reshape(1)
        jac = jacobian(lambda zi, b=b: planar_step(zi[None], u, w, b)[0][0], z[0])
        assert torch.linalg.det(jac) > 0
        assert torch.isfinite(planar_step(z, u, w, b)[1]).all()


def test_the_planar_vae_is_the_conv_vae_body_plus_a_flow() -> None:
    model = build("Planar_ConvVAE", ("constituent",)).eval()
    batch = toy_batch(levels=("constituent",))
    out = model(batch)
    h, mu, _ = model.encode(batch)
    zk, ldj = model.flow(mu, h)
    torch.testing.assert_close(out.zk, zk)
    torch.testing.assert_close(out.ldj, ldj)
    assert model.flow.num_flows == 6 and not torch.equal(out.zk, out.z0)
    plain = build("ConvVAE", ("constituent",))
    assert type(plain.body) is type(model.body) and plain.flow is None
