"""The zoo's bodies and posteriors: AE_Dropout_BN, the Dirichlet VAE, the transformers."""

from __future__ import annotations

import pytest
import torch
from toy_models import LAYOUT, build, toy_batch

from bead.errors import UsageError
from bead.losses.objective import Objective
from bead.models.autoencoder import Autoencoder
from bead.models.batch import Level
from bead.models.catalog import MODELS, ModelEntry
from bead.models.dirichlet import bridged_prior_logvar, laplace_bridge
from bead.models.registry import build_model

CONST = ("constituent",)


def _permuted(batch, level: str, perm: torch.Tensor):
    lv = batch[level]
    return batch.with_levels({**batch.levels, level: Level(lv.x[:, perm], lv.mask[:, perm])})


def test_ae_dropout_bn_has_its_own_batch_norms_and_the_original_dropouts() -> None:
    model = build("AE_Dropout_BN", CONST)
    body = model.body
    enc_bn = [m for m in body.encoder.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    dec_bn = [m for m in body.decoder.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(enc_bn) == len(dec_bn) == 3 and not {id(m) for m in enc_bn} & {id(m) for m in dec_bn}
    drops = [m.p for m in body.encoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.5, 0.4, 0.3] and body.code_dropout.p == 0.2
    batch = toy_batch(levels=CONST)
    model.train()
    assert not torch.equal(model(batch).recon["constituent"], model(batch).recon["constituent"])
    model.eval()
    torch.testing.assert_close(model(batch).recon["constituent"],
                               model(batch).recon["constituent"], rtol=0, atol=0)
    with pytest.raises(UsageError, match=r"model_params.dropout: give 4 probabilities"):
        build("AE_Dropout_BN", CONST, dropout=[0.5, 0.2])


def test_batch_statistics_in_training_ignore_padded_slots() -> None:
    model = build("AE_Dropout_BN", CONST).train()
    batch = toy_batch(levels=CONST)
    lv = batch["constituent"]
    spoiled = batch.with_levels({"constituent": Level(
        torch.where(lv.mask.unsqueeze(-1), lv.x, torch.full_like(lv.x, 1e3)), lv.mask)})
    torch.manual_seed(3)
    a = model(batch).recon["constituent"]
    torch.manual_seed(3)
    b = model(spoiled).recon["constituent"]
    torch.testing.assert_close(a, b)


def test_dirichlet_vae_decodes_the_softmax_and_reports_the_laplace_bridge() -> None:
    model = build("Dirichlet_ConvVAE", CONST).eval()
    batch = toy_batch(levels=CONST)
    out = model(batch)
    recon, _ = model.body.decode(torch.softmax(out.mu, dim=-1))
    torch.testing.assert_close(out.recon["constituent"], recon["constituent"])
    mu, var = out.mu, out.logvar.exp()
    k = mu.shape[1]
    by_hand = (1 - 2 / k + mu.exp() * (-mu).exp().sum(1, keepdim=True) / k**2) / var
    torch.testing.assert_close(out.alpha, by_hand)
    assert torch.all(out.alpha > 0)
    with pytest.raises(UsageError, match="latent_space_size >= 2"):
        build_model("Dirichlet_ConvVAE", LAYOUT, CONST, 1)


def test_a_flow_on_the_dirichlet_logits_composes_with_dvae_flow_loss() -> None:
    entry = ModelEntry("bead.models.autoencoder:Autoencoder", "vae", "test", body="conv",
                       flow="planar", posterior="dirichlet", params=MODELS["Planar_ConvVAE"].params)
    assert {"alpha", "ldj"} <= entry.provides
    model = Autoencoder(entry, LAYOUT, CONST, 3, dict(entry.params)).eval()
    batch = toy_batch(levels=CONST)
    out = model(batch)
    recon, _ = model.body.decode(torch.softmax(out.zk, dim=-1))  # the flowed logits
    torch.testing.assert_close(out.recon["constituent"], recon["constituent"])
    comps = Objective("DVAEFlowLoss", {"reg_param": 1.0}).components(batch, out)
    torch.testing.assert_close(comps["neg_ldj"], -out.ldj)
    torch.testing.assert_close(comps["kl"], comps["log_q0"] + comps["neg_ldj"] + comps["nll_pk"])
    with pytest.raises(ValueError, match="posterior"):
        ModelEntry("x:Y", "ae", "test", body="conv", posterior="dirichlet")


def test_laplace_bridge_of_the_bridged_prior_is_the_prior() -> None:
    for k in (2, 3, 15):
        logvar = torch.full((1, k), bridged_prior_logvar(k, 5.0))
        torch.testing.assert_close(laplace_bridge(torch.zeros(1, k), logvar),
                                   torch.full((1, k), 5.0))
    # Half precision in, float32 out, finite for large logits.
    alpha = laplace_bridge(torch.tensor([[30.0, -30.0, 0.0]], dtype=torch.bfloat16),
                           torch.zeros(1, 3, dtype=torch.bfloat16))
    assert alpha.dtype == torch.float32 and torch.isfinite(alpha).all()


@pytest.mark.parametrize("name", ["ParticleTransformerAE", "ParticleTransformerVAE"])
def test_particle_transformer_code_is_invariant_to_the_order_of_particles(name: str) -> None:
    model = build(name, CONST).eval()
    batch = toy_batch(levels=CONST)
    shuffled = _permuted(batch, "constituent", torch.randperm(6, generator=torch.Generator()
                                                              .manual_seed(1)))
    torch.testing.assert_close(model(batch).latent, model(shuffled).latent)
    ordered = build("TransformerAE", CONST).eval()  # slot positions embedded: order matters
    assert not torch.allclose(ordered(batch).latent, ordered(shuffled).latent)


def test_attention_pooling_reads_the_particles() -> None:
    # The original's class token attended only to itself: its pooled vector was a constant.
    model = build("ParticleTransformerAE", CONST).eval()
    encoder = model.body.encoder
    d = encoder.query.shape[-1]
    batch = toy_batch(levels=CONST)
    x, mask = batch["constituent"].x, batch["constituent"].mask
    pooled = encoder(x, mask)[:, d : 2 * d]  # the learned-query attention part
    assert not torch.allclose(pooled, encoder(x + 1.0 * mask.unsqueeze(-1), mask)[:, d : 2 * d])
    assert pooled.std(0).mean() > 1e-3  # differs between events
    perm = torch.randperm(6)
    torch.testing.assert_close(pooled, encoder(x[:, perm], mask[:, perm])[:, d : 2 * d])


def test_particle_transformer_decodes_a_set_with_occupancy_and_handles_empty_events() -> None:
    model = build("ParticleTransformerVAE", CONST).eval()
    batch = toy_batch(levels=CONST)
    lv = batch["constituent"]
    empty = torch.zeros_like(lv.mask)
    empty[1:] = lv.mask[1:]
    out = model(batch.with_levels({"constituent": Level(lv.x * empty.unsqueeze(-1), empty)}))
    assert out.occupancy["constituent"].shape == (6, 6)
    assert all(torch.isfinite(t).all() for t in (out.mu, out.recon["constituent"]))
    with pytest.raises(UsageError, match="multiple of heads"):
        build("ParticleTransformerAE", CONST, d_model=30, heads=4)
