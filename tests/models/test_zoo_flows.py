"""The latent flows of the original BEAD's zoo (Sylvester, IAF, ConvFlow, NSF-AR) beyond the
log-det check every flow kind gets (test_flows.py): what makes each one correct."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian
from toy_models import build, toy_batch
from zuko.flows.autoregressive import MaskedAutoregressiveTransform

from bead.losses.objective import Objective
from bead.models.flows import FLOW_KINDS, build_flow
from bead.models.flows.householder_sylvester import householder_product
from bead.models.flows.orthogonal_sylvester import orthogonalize


def _logdet_by_autograd(flow, z0: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.stack([
        torch.linalg.slogdet(jacobian(lambda z, i=i: flow(z[None], h[i : i + 1])[0][0],
                                      z0[i])).logabsdet for i in range(len(z0))])


def test_orthogonalisation_converges_to_the_polar_factor_silently(capsys) -> None:
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(7, 3, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    # Singular values 10, 1 and 1e-4: badly conditioned, far from orthonormal.
    raw = u @ torch.diag(torch.tensor([10.0, 1.0, 1e-4], dtype=torch.float64)) @ v.T
    q = orthogonalize(raw)
    torch.testing.assert_close(q.T @ q, torch.eye(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(q, u @ v.T)  # the nearest orthonormal matrix
    q32 = orthogonalize(torch.randn(64, 4, 15, 5, generator=gen))
    eye = torch.eye(5).expand(64, 4, 5, 5)
    torch.testing.assert_close(q32.transpose(-1, -2) @ q32, eye, atol=1e-5, rtol=0)
    assert capsys.readouterr() == ("", "")


def test_orthogonal_sylvester_with_fewer_vectors_than_dimensions() -> None:
    torch.manual_seed(0)
    flow = build_flow("orthogonal_sylvester", 6, 5, {"num_ortho_vecs": 3}).double()
    assert flow.m == 3
    z0, h = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(flow(z0, h)[1], _logdet_by_autograd(flow, z0, h))
    assert build_flow("orthogonal_sylvester", 3, 5, {}).m == 3  # M = 5 capped at D


def test_householder_q_is_orthogonal_and_triangular_q_permutes() -> None:
    v = torch.randn(10, 8, 5, dtype=torch.float64)
    q = householder_product(v)
    torch.testing.assert_close(q.transpose(-1, -2) @ q, torch.eye(5, dtype=torch.float64)
                               .expand(10, 5, 5))
    tri = build_flow("triangular_sylvester", 4, 3, {})
    q = tri.q(torch.zeros(2, 3))
    assert torch.equal(q[0, 0], torch.eye(4)) and torch.equal(q[0, 1], torch.eye(4).flip(0))


def test_iaf_masks_are_buffers_and_each_step_is_autoregressive() -> None:
    flow = build_flow("iaf", 5, 3, {"flow_hidden": [12, 12]})
    buffers = dict(flow.named_buffers())
    assert len(buffers) == 4 * 4 and all(name.endswith("mask") for name in buffers)
    assert all(name.endswith("mask") for name in flow.state_dict() if name in buffers)
    flow.double()  # buffers follow the module, as they would to a GPU
    assert all(b.dtype == torch.float64 for b in flow.buffers())
    step = flow.steps[0]
    z, h = torch.randn(5, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
    for output in (0, 1):  # shift and gate of coordinate i read only the coordinates below i
        jac = jacobian(lambda x, o=output: step(x[None], h)[o][0], z)
        assert torch.all(jac.triu() == 0)
    z0 = torch.randn(8, 5, dtype=torch.float64)
    _, ldj = flow(z0, torch.randn(8, 3, dtype=torch.float64))
    assert torch.all(ldj < 0)  # sum of log sigmoid
    with pytest.raises(Exception, match="flow_hidden"):
        build_flow("iaf", 5, 3, {"flow_hidden": []})


def test_convflow_logdet_is_nonzero_and_enters_the_loss() -> None:
    torch.manual_seed(0)
    model = build("ConvFlow_ConvVAE", ("constituent",)).eval()
    batch = toy_batch(levels=("constituent",))
    out = model(batch)
    assert torch.all(out.ldj.abs() > 1e-3)
    comps = Objective("VAEFlowLoss", {"reg_param": 1.0}).components(batch, out)
    torch.testing.assert_close(comps["neg_ldj"], -out.ldj)
    lmbd = model.flow.blocks[0][0].lmbd
    comps["total"].sum().backward()
    assert lmbd.grad is not None and lmbd.grad.abs().sum() > 0


@pytest.mark.parametrize("w0", [0.0, 1e-9, -1e-9, 1e-3, -2.0])
def test_convflow_stays_invertible_for_any_first_tap(w0: float) -> None:
    flow = build_flow("convflow", 4, 2, {}).double()
    with torch.no_grad():
        for block in flow.blocks:
            for layer in block:
                layer.kernel[0] = w0
                layer.lmbd.fill_(-20.0)  # the most contracting rescale
    z0, h = torch.randn(3, 4, dtype=torch.float64) * 3, torch.zeros(3, 2, dtype=torch.float64)
    zk, ldj = flow(z0, h)
    assert torch.isfinite(zk).all() and torch.isfinite(ldj).all()
    for i in range(3):
        assert torch.linalg.det(jacobian(lambda z: flow(z[None], h[:1])[0][0], z0[i])) > 0


def test_nsf_ar_is_zukos_spline_with_linear_tails_beyond_three() -> None:
    flow = build_flow("nsf_ar", 4, 3, {"bins": 5, "num_flows": 2})
    assert all(isinstance(step, MaskedAutoregressiveTransform) for step in flow.steps)
    z0 = torch.full((2, 4), 7.0) * torch.tensor([[1.0], [-1.0]])
    zk, ldj = flow(z0, torch.randn(2, 3))
    torch.testing.assert_close(zk, z0)
    torch.testing.assert_close(ldj, torch.zeros(2))
    inside = torch.rand(16, 4) * 2 - 1
    zk, ldj = flow(inside, torch.randn(16, 3))
    assert not torch.allclose(zk, inside) and torch.all(zk.abs() < 3)


@pytest.mark.parametrize("kind", [k for k in FLOW_KINDS if k != "planar"])
def test_flow_settings_come_from_model_params(kind: str) -> None:
    name = {"orthogonal_sylvester": "OrthogonalSylvester_ConvVAE",
            "householder_sylvester": "HouseholderSylvester_ConvVAE",
            "triangular_sylvester": "TriangularSylvester_ConvVAE", "iaf": "IAF_ConvVAE",
            "convflow": "ConvFlow_ConvVAE", "nsf_ar": "NSFAR_ConvVAE"}[kind]
    default = build(name, ("jet",))
    two = build(name, ("jet",), num_flows=2)

    def size(flow: torch.nn.Module) -> int:
        return sum(p.numel() for p in flow.parameters())

    assert 2 * size(two.flow) == size(default.flow)  # four steps by default, as in the original
    out = two.eval()(toy_batch(levels=("jet",)))
    assert out.ldj.shape == (6,) and torch.isfinite(out.ldj).all()
