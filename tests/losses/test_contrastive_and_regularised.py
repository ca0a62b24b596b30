"""SupCon, NT-Xent (CRVSTAL), the per-event EMD and the parameter norms: against independent
reference computations, and as parts of their objectives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from toy_models import LAYOUT, build, toy_batch

from bead.config import Config
from bead.errors import UsageError
from bead.losses.catalog import check_compatible
from bead.losses.objective import Objective
from bead.losses.terms import masked_emd, masked_mse, nt_xent, supervised_contrastive
from bead.models.base import ModelOutput
from bead.models.batch import Batch
from bead.training.checkpoint import WEIGHT_KEYS

WEIGHTS = {k: float(getattr(Config(), k)) for k in WEIGHT_KEYS}


def supcon_reference(z: np.ndarray, labels: list[int], tau: float) -> float:
    """Khosla et al. (2020) eq. 2, L_out, written out loop by loop (unlabelled rows left out)."""
    keep = [i for i, lab in enumerate(labels) if lab >= 0]
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    losses = []
    for i in keep:
        others = [a for a in keep if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in others)
        losses.append(-sum(math.log(math.exp(z[i] @ z[p] / tau) / denom) for p in positives)
                      / len(positives))
    return float(np.mean(losses)) if losses else 0.0


def ntxent_reference(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """Chen et al. (2020), NT-Xent over the 2N augmented samples, loop by loop."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denom = sum(math.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        losses.append(-math.log(math.exp(z[i] @ z[j] / tau) / denom))
    return float(np.mean(losses))


def test_supcon_matches_the_paper_and_leaves_unlabelled_events_out() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    labels = [0, 1, 0, 2, 1, -1, 0, 2, -1]
    got = supervised_contrastive(z, torch.tensor(labels), 0.5)
    assert got.item() == pytest.approx(supcon_reference(z.numpy(), labels, 0.5), rel=1e-9)
    moved = z.clone()
    moved[5] += 10.0  # an unlabelled event is no anchor, positive or negative
    torch.testing.assert_close(supervised_contrastive(moved, torch.tensor(labels), 0.5), got)


def test_supcon_is_zero_not_nan_without_two_labelled_events_of_a_generator() -> None:
    z = torch.randn(5, 3, requires_grad=True)
    for labels in ([0, 1, 2, -1, -1], [-1] * 5):
        value = supervised_contrastive(z, torch.tensor(labels), 0.07)
        assert value.item() == 0.0
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(grad).all()


def test_supcon_is_lower_when_generators_cluster() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    noise = 0.1 * torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    clustered = centres[labels] + noise
    mixed = centres[torch.tensor([0, 1, 0, 1, 0, 1])] + noise
    assert supervised_contrastive(clustered, labels, 0.1) < supervised_contrastive(
        mixed, labels, 0.1)


def test_ntxent_matches_simclr_and_prefers_views_of_the_same_event() -> None:
    gen = torch.Generator().manual_seed(2)
    z1 = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(7, 5, generator=gen, dtype=torch.float64)
    assert nt_xent(z1, z2, 0.2).item() == pytest.approx(
        ntxent_reference(z1.numpy(), z2.numpy(), 0.2), rel=1e-9)
    identical = nt_xent(z1, z1, 0.2)
    others = nt_xent(z1, z1[torch.roll(torch.arange(7), 1)], 0.2)  # views of other events
    assert identical < others
    assert nt_xent(z1[:1], z2[:1], 0.2).item() == pytest.approx(0.0)  # one event: no negative


class Recording(torch.nn.Module):
    """A model that remembers the batches it was called on."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, []
        self.layout = model.layout

    def forward(self, batch: Batch) -> ModelOutput:
        self.calls.append(batch)
        return self.model(batch)


def test_ntxent_objective_encodes_two_different_views_and_its_term_has_gradients() -> None:
    torch.manual_seed(0)
    levels = ("jet",)
    batch = toy_batch(b=8, levels=levels)
    model = Recording(build("ConvVAE", levels))
    result = Objective("NTXentVAELoss", WEIGHTS).step(model, batch)  # type: ignore[arg-type]
    clean, views = model.calls
    assert clean is batch and len(views) == 2 * len(batch)
    v1, v2 = views["jet"].x[:8], views["jet"].x[8:]
    assert not torch.equal(v1, v2) and not torch.equal(v1, batch["jet"].x)
    term = result.batch_terms["ntxent"]
    assert term > 0  # the original's NT-Xent term was always 0
    assert "ntxent" not in result.components
    assert result.total.item() == pytest.approx(
        result.components["total"].mean().item() + WEIGHTS["contrastive_weight"] * term.item(),
        rel=1e-6)
    model.zero_grad()
    term.backward()
    encoder = model.model.body.conv2d.weight.grad
    assert encoder is not None and encoder.abs().sum() > 0 and torch.isfinite(encoder).all()


def test_supcon_objective_uses_the_generator_labels_of_the_batch() -> None:
    torch.manual_seed(0)
    batch = toy_batch(b=10, levels=("jet",))
    model = build("Planar_ConvVAE", ("jet",)).eval()
    objective = Objective("VAEFlowSupConLoss", WEIGHTS)
    with torch.no_grad():
        labelled = objective.step(model, batch).batch_terms["supcon"]
        none = objective.step(model, Batch(batch.levels, batch.weight,
                                           torch.full_like(batch.generator, -1),
                                           batch.evt_id)).batch_terms["supcon"]
    assert labelled > 0 and none == 0
    # the flow term is the flow ELBO, not beta * mean(labels) as in the original
    flow = Objective("VAEFlowLoss", WEIGHTS).components(batch, model(batch))
    with torch.no_grad():
        comps = objective.step(model, batch).components
    torch.testing.assert_close(comps["kl"], flow["kl"])


def test_emd_is_the_1d_wasserstein_distance_of_each_feature_over_the_real_slots() -> None:
    batch = toy_batch(b=5, levels=("constituent",))
    x, mask = batch["constituent"].x.double(), batch["constituent"].mask
    recon = torch.randn_like(x)
    got = masked_emd(x, recon, mask)
    for b in range(5):
        real = mask[b]
        expected = np.mean([wasserstein_distance(x[b, real, f].numpy(), recon[b, real, f].numpy())
                            for f in range(x.shape[-1])])
        assert got[b].item() == pytest.approx(expected, rel=1e-9)
    # the order of the reconstructed slots does not matter to the EMD, unlike the MSE
    perm = torch.randperm(x.shape[1])
    full = torch.ones_like(mask)
    assert masked_emd(x, x[:, perm], full).abs().max() < 1e-12
    assert masked_mse(x, x[:, perm], full).min() > 0
    # one slot (the event level): the mean absolute error
    one = torch.ones(5, 1, dtype=torch.bool)
    torch.testing.assert_close(masked_emd(x[:, :1], recon[:, :1], one),
                               (x[:, 0] - recon[:, 0]).abs().mean(-1))


def test_emd_loss_adds_a_per_event_score() -> None:
    batch = toy_batch(levels=("constituent",))
    out = build("ConvVAE", ("constituent",)).eval()(batch)
    comps = Objective("VAELossEMD", {**WEIGHTS, "emd_weight": 0.5}).components(batch, out)
    torch.testing.assert_close(comps["total"],
                               comps["reco"] + 1e-3 * comps["kl"] + 0.5 * comps["emd"])
    assert comps["emd"].shape == (len(batch),) and torch.all(comps["emd"] > 0)


@pytest.mark.parametrize(("loss", "key", "power"), [("VAELossL1", "l1_weight", 1),
                                                     ("VAEFlowLossL2", "l2_weight", 2)])
def test_parameter_norms_are_weighted_once_and_are_no_score(loss: str, key: str,
                                                            power: int) -> None:
    batch = toy_batch(levels=("constituent",))
    model = build("Planar_ConvVAE", ("constituent",)).eval()
    weights = {**WEIGHTS, key: 0.01}
    with torch.no_grad():
        result = Objective(loss, weights).step(model, batch)
    norm = sum(p.abs().sum() if power == 1 else p.pow(2).sum() for p in model.parameters())
    name = f"l{power}"
    assert result.batch_terms[name].item() == pytest.approx(norm.item(), rel=1e-5)
    assert name not in result.components
    assert result.total.item() == pytest.approx(
        result.components["total"].mean().item() + 0.01 * norm.item(), rel=1e-5)


def test_batch_level_terms_can_be_skipped_when_only_scores_are_needed() -> None:
    batch = toy_batch(levels=("jet",))
    model = build("ConvVAE", ("jet",)).eval()
    objective = Objective("NTXentVAELoss", WEIGHTS)
    with torch.no_grad():
        full, scores = objective.step(model, batch), objective.step(model, batch, False)
    assert scores.batch_terms == {} and set(full.batch_terms) == {"ntxent"}
    torch.testing.assert_close(full.components["total"], scores.components["total"])


def test_pairs_that_cannot_work_say_why_and_what_fits() -> None:
    with pytest.raises(UsageError, match=r"model_name = 'ConvAE' cannot be used with "
                                         r"loss_function = 'NTXentVAELoss' \(its kl term needs "
                                         r"logvar, mu, which the model does not produce\); "
                                         r"losses that fit it: AELoss, ReconstructionLoss$"):
        check_compatible("ConvAE", "NTXentVAELoss")
    with pytest.raises(UsageError, match=r"its reco term needs recon; its kl term needs "
                                         r"logvar, mu"):
        check_compatible("MAF_Density", "VAESupConLoss")


def test_ntxent_needs_augmentations_that_act_on_the_inputs() -> None:
    with pytest.raises(UsageError, match="augmentations is empty"):
        Objective("NTXentVAELoss", WEIGHTS, augmentations={}, layout=LAYOUT)
    only_event = {"event": LAYOUT["event"]}
    with pytest.raises(UsageError, match="none of drop_soft acts on these inputs"):
        Objective("NTXentVAELoss", WEIGHTS, ["drop_soft"], layout=only_event)
    Objective("VAELoss", WEIGHTS, augmentations={}, layout=only_event)  # no views: no check
