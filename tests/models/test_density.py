"""Flow densities: a normalised density, lower -log p on the training distribution than off
it, finite scores for any input, and the inputs they read."""

from __future__ import annotations

import math

import pytest
import torch

from bead.levels import LevelLayout
from bead.models.batch import Batch, Level
from bead.models.density import is_angle
from bead.models.registry import build_model

TOY = {"event": LevelLayout(1, ("a", "b")), "jet": LevelLayout(1, ("pt",))}


def _batch(event: torch.Tensor, jet: torch.Tensor | None = None) -> Batch:
    n = len(event)
    jet = torch.zeros(n, 1, 1) if jet is None else jet
    return Batch({"event": Level(event[:, None, :], torch.ones(n, 1, dtype=torch.bool)),
                  "jet": Level(jet, torch.ones(n, 1, dtype=torch.bool))},
                 torch.ones(n), torch.zeros(n, dtype=torch.long), torch.arange(n))


def _model(kind: str, levels=("event",), layout=TOY):
    params = {"transforms": 2, "hidden_features": [32, 32], "noise": 0.0}
    return build_model(f"{kind}_Density", layout, levels, 2, params)


def _train(model, data: torch.Tensor, steps: int = 200) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (256,))
        loss = -model(_batch(data[idx])).log_prob.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("kind", ["MAF", "NSF"])
def test_the_density_integrates_to_one_and_prefers_its_training_data(kind: str) -> None:
    torch.manual_seed(0)
    data = torch.randn(4000, 2) * torch.tensor([0.5, 1.0]) + torch.tensor([0.5, -0.5])
    model = _model(kind)
    _train(model, data)
    grid = torch.linspace(-6, 6, 241)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        density = model(_batch(points)).log_prob.exp()
    cell = float(grid[1] - grid[0]) ** 2
    assert float(density.sum()) * cell == pytest.approx(1.0, abs=0.03)
    with torch.no_grad():
        nll_train = -model(_batch(data[:1000])).log_prob.mean()
        nll_shifted = -model(_batch(data[:1000] + torch.tensor([2.0, 0.0]))).log_prob.mean()
    assert nll_shifted > nll_train + 1.0


@pytest.mark.parametrize("kind", ["MAF", "NSF"])
def test_scores_are_finite_for_extreme_inputs(kind: str) -> None:
    model = _model(kind).eval()
    extreme = torch.tensor([[1e30, -1e30], [3e38, 0.0], [0.0, 1e-30], [1e4, -1e4]])
    with torch.no_grad():
        out = model(_batch(extreme))
    assert torch.isfinite(out.log_prob).all() and torch.isfinite(out.zk).all()


def test_log_prob_is_the_flows_own() -> None:
    model = _model("NSF").eval()
    x = torch.randn(8, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(_batch(x)).log_prob,
                                   model.flow().log_prob(model.features(_batch(x))))


def test_angles_are_left_out_and_jet_masks_read() -> None:
    layout = {"event": LevelLayout(1, ("met", "met_phi_sin", "met_phi_cos", "ht")),
              "jet": LevelLayout(2, ("pt", "eta", "phi", "mass"))}
    model = build_model("MAF_Density", layout, ("event", "jet"), 2, {})
    assert model.n_inputs == 2 + 2 * 3 + 2  # met, ht; pt, eta, mass per jet; two mask bits
    keep_all = build_model("MAF_Density", layout, ("event", "jet"), 2, {"drop_angles": False})
    assert keep_all.n_inputs == 4 + 2 * 4 + 2
    assert is_angle("met_phi_cos") and is_angle("phi") and not is_angle("dphi")
    one_jet = Batch(
        {"event": Level(torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool)),
         "jet": Level(torch.zeros(1, 2, 4), torch.tensor([[True, False]]))},
        torch.ones(1), torch.zeros(1, dtype=torch.long), torch.zeros(1))
    with torch.no_grad():
        assert math.isfinite(float(model.eval()(one_jet).log_prob))
