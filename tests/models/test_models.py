"""Behaviour every model must have: masking, eval determinism, set symmetry."""

from __future__ import annotations

import pytest
import torch
from toy_models import build, default_levels, toy_batch

from bead.models.base import ModelOutput
from bead.models.batch import Level
from bead.models.catalog import MODELS

VAES = [name for name, e in MODELS.items() if e.family == "vae"]


def _spoil_padding(batch):
    """The same batch with huge values in every padded slot."""
    return batch.with_levels({
        name: Level(torch.where(lv.mask.unsqueeze(-1), lv.x, torch.full_like(lv.x, 1e3)),
                    lv.mask) for name, lv in batch.levels.items()})


@pytest.mark.parametrize("name", VAES)
def test_vae_eval_is_deterministic_and_train_samples(name: str) -> None:
    model = build(name)
    batch = toy_batch(levels=default_levels(name))
    model.eval()
    first, second = model(batch), model(batch)
    assert torch.equal(first.latent, second.latent) and torch.equal(first.z0, first.mu)
    for level in first.recon:
        assert torch.equal(first.recon[level], second.recon[level])
    model.train()
    assert not torch.equal(model(batch).z0, model(batch).z0)


@pytest.mark.parametrize("name", list(MODELS))
def test_padded_slot_contents_do_not_matter(name: str) -> None:
    model = build(name).eval()
    batch = toy_batch(levels=default_levels(name))
    a, b = model(batch), model(_spoil_padding(batch))
    torch.testing.assert_close(a.latent, b.latent)
    for level in a.recon or {}:
        torch.testing.assert_close(a.recon[level], b.recon[level])
    if a.log_prob is not None:
        torch.testing.assert_close(a.log_prob, b.log_prob)


@pytest.mark.parametrize("name", ["DeepSetsVAE", "SetVAE"])
def test_set_encoders_are_permutation_invariant(name: str) -> None:
    model = build(name).eval()
    batch = toy_batch(levels=default_levels(name))
    level = "constituent"
    perm = torch.randperm(batch[level].x.shape[1])
    shuffled = batch.with_levels({**batch.levels, level: Level(batch[level].x[:, perm],
                                                               batch[level].mask[:, perm])})
    torch.testing.assert_close(model(batch).mu, model(shuffled).mu)


def test_the_multi_level_vae_reconstructs_every_level_and_its_multiplicity() -> None:
    out = build("SetVAE").eval()(toy_batch())
    assert set(out.recon) == {"event", "jet", "constituent"}
    assert set(out.occupancy) == {"jet", "constituent"}
    assert out.occupancy["constituent"].shape == (6, 6)


def test_latent_prefers_flow_output() -> None:
    mu, zk = torch.zeros(2, 3), torch.ones(2, 3)
    assert ModelOutput(mu=mu, zk=zk).latent is zk
    assert ModelOutput(mu=mu).latent is mu
