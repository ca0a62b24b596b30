"""Model registry, output contract, masking and eval-mode determinism."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from bead.errors import DataError, UsageError
from bead.losses.registry import LOSSES
from bead.models.base import ModelOutput
from bead.models.registry import MODELS, build_model
from bead.names import LOSS_REQUIRES, MODEL_PROVIDES

S, F, L = 7, 4, 3
VAES = [name for name, cls in MODELS.items() if "mu" in cls.provides]


def toy_batch(b: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, S, generator=gen) < 0.6
    mask[:, 0] = True
    x = torch.randn(b, S, F, generator=gen) * mask.unsqueeze(-1)
    return x, mask


def test_registry_has_the_contract_models() -> None:
    assert {"AE", "ConvAE", "ConvVAE", "Planar_ConvVAE", "DeepSetsVAE"} <= set(MODELS)


def test_unknown_model_names_key_lists_valid_and_suggests() -> None:
    with pytest.raises(UsageError) as err:
        build_model("Planar_ConvVea", S, F, L)
    msg = str(err.value)
    assert "model_name" in msg and "did you mean 'Planar_ConvVAE'" in msg
    assert all(name in msg for name in MODELS)


def test_unknown_init_is_usage_error() -> None:
    with pytest.raises(UsageError, match="model_init"):
        build_model("AE", S, F, L, init="kaiming")


def test_xavier_init_zeroes_biases_and_default_does_not() -> None:
    xav = build_model("ConvVAE", S, F, L, init="xavier")
    dflt = build_model("ConvVAE", S, F, L, init="default")
    layers = [m for m in xav.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    assert layers and all(torch.count_nonzero(m.bias) == 0 for m in layers)
    assert any(torch.count_nonzero(m.bias) > 0 for m in dflt.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("n_slots", [S, 1])
def test_output_shapes(name: str, n_slots: int) -> None:
    model = build_model(name, n_slots, F, L)
    x, mask = torch.randn(5, n_slots, F), torch.ones(5, n_slots, dtype=torch.bool)
    out = model(x, mask)
    assert isinstance(out, ModelOutput)
    assert out.recon.shape == x.shape
    assert out.latent is not None and out.latent.shape == (5, L)
    if name in VAES:
        assert out.mu.shape == out.logvar.shape == out.z0.shape == out.zk.shape == (5, L)
    else:
        assert out.mu is None and out.logvar is None and out.zk.shape == (5, L)
    if out.ldj is not None:
        assert out.ldj.shape == (5,)


@pytest.mark.parametrize("name", VAES)
def test_vae_eval_is_deterministic_and_train_samples(name: str) -> None:
    model = build_model(name, S, F, L)
    x, mask = toy_batch()
    model.eval()
    first, second = model(x, mask), model(x, mask)
    assert torch.equal(first.recon, second.recon) and torch.equal(first.latent, second.latent)
    assert torch.equal(first.z0, first.mu)
    model.train()
    assert not torch.equal(model(x, mask).z0, model(x, mask).z0)


@pytest.mark.parametrize("name", list(MODELS))
def test_padded_slot_contents_do_not_matter(name: str) -> None:
    model = build_model(name, S, F, L).eval()
    x, mask = toy_batch()
    noisy = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, 1e3))
    a, b = model(x, mask), model(noisy, mask)
    assert torch.equal(a.recon, b.recon) and torch.equal(a.latent, b.latent)


def test_deepsets_encoder_is_permutation_invariant() -> None:
    model = build_model("DeepSetsVAE", S, F, L).eval()
    x, mask = toy_batch()
    perm = torch.randperm(S)
    a, b = model(x, mask), model(x[:, perm], mask[:, perm])
    torch.testing.assert_close(a.mu, b.mu)
    torch.testing.assert_close(a.logvar, b.logvar)


def test_wrong_input_shape_is_data_error() -> None:
    model = build_model("AE", S, F, L)
    with pytest.raises(DataError, match=r"expects x \[B, 7, 4\]"):
        model(torch.zeros(2, S, F + 1), torch.ones(2, S, dtype=torch.bool))


def test_latent_prefers_flow_output() -> None:
    mu, zk = torch.zeros(2, L), torch.ones(2, L)
    assert ModelOutput(recon=mu, mu=mu, zk=zk).latent is zk
    assert ModelOutput(recon=mu, mu=mu).latent is mu


def test_the_torch_free_names_agree_with_the_registries() -> None:
    # The config checks names and pairs through bead.names so that loading it needs no torch.
    assert {name: cls.provides for name, cls in MODELS.items()} == MODEL_PROVIDES
    assert {name: cls.requires for name, cls in LOSSES.items()} == LOSS_REQUIRES


def test_loading_a_config_does_not_import_torch() -> None:
    code = ("import sys; from bead.config import make_config; "
            "make_config({'model_name': 'AE', 'loss_function': 'AELoss'}); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
