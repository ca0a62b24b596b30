"""The model and loss catalogs: the only place names are declared, checked against the real
models they build (a model is tested by being registered)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from toy_models import LAYOUT, build, default_levels, toy_batch

from bead.config import make_config
from bead.errors import DataError, UsageError
from bead.losses.catalog import LOSSES, check_compatible, compatible, loss_entry
from bead.models.base import ModelOutput
from bead.models.catalog import MODELS, check_model_params, model_entry
from bead.models.registry import build_model

PARTS = tuple(f.name for f in dataclasses.fields(ModelOutput))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_entry_builds_and_returns_what_the_catalog_says(name: str) -> None:
    levels = default_levels(name)
    model = build(name, levels)
    out = model(toy_batch(levels=levels))
    assert isinstance(out, ModelOutput)
    produced = {part for part in PARTS if getattr(out, part) is not None}
    assert produced == set(MODELS[name].provides), name
    if out.recon is not None:
        assert set(out.recon) <= set(levels)
        for level, recon in out.recon.items():
            assert recon.shape == toy_batch(levels=levels)[level].x.shape
    if out.log_prob is not None:
        assert out.log_prob.shape == (6,)
    assert out.latent is not None and out.latent.shape[0] == 6


@pytest.mark.parametrize("name", list(MODELS))
def test_every_entry_has_a_fitting_loss_and_valid_defaults(name: str) -> None:
    assert any(compatible(name, loss) for loss in LOSSES)
    assert check_model_params(name, {}) == dict(MODELS[name].params)


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(UsageError, match=r"model_name = 'Planar_ConvVea' is unknown \(did you "
                                         r"mean 'Planar_ConvVAE'\?\)"):
        model_entry("Planar_ConvVea")
    with pytest.raises(UsageError, match="did you mean 'VAEFlowLoss'"):
        loss_entry("VAEFlowLos")


def test_model_params_are_checked_per_model() -> None:
    with pytest.raises(UsageError, match=r"model_params.hiden: not a setting of ConvVAE \(did "
                                         r"you mean 'hidden'\?\); valid: channels, hidden"):
        check_model_params("ConvVAE", {"hiden": 64})
    with pytest.raises(UsageError, match=r"model_params\.hidden = 'big': ConvVAE expects int"):
        check_model_params("ConvVAE", {"hidden": "big"})
    assert check_model_params("ConvVAE", {"hidden": 64})["hidden"] == 64
    wide = build("ConvVAE", hidden=48)
    assert wide.to_mu.in_features == 48


def test_pairs_and_levels_are_checked_when_the_config_loads() -> None:
    assert compatible("AE", "AELoss") and not compatible("AE", "VAELoss")
    assert compatible("Planar_ConvVAE", "VAEFlowLoss") and compatible("ConvVAE", "VAEFlowLoss")
    with pytest.raises(UsageError, match=r"model_name = 'AE' cannot be used with loss_function "
                                         r"= 'VAEFlowLoss'.*losses that fit it: AELoss"):
        check_compatible("AE", "VAEFlowLoss")
    with pytest.raises(UsageError, match=r"model_name = 'ConvVAE' cannot read input_level = "
                                         r"'event\+jet'.*models that read it: .*SetVAE"):
        make_config({"model_name": "ConvVAE", "input_level": "event+jet"})
    with pytest.raises(UsageError, match=r"input_level.*'jet' is given twice"):
        make_config({"input_level": "jet+jet"})
    with pytest.raises(UsageError, match="unknown input level 'jets'"):
        make_config({"input_level": "event+jets"})
    config = make_config({"model_name": "SetVAE", "loss_function": "VAELoss",
                          "input_level": "constituent+event+jet"})
    assert config.input_level == "constituent+event+jet"  # any order, read canonically


def test_a_model_built_for_other_inputs_says_which() -> None:
    model = build("ConvVAE", ("jet",))
    batch = toy_batch(levels=("jet",))
    batch.levels["jet"].x = torch.zeros(6, 3, 4)
    with pytest.raises(DataError, match=r"expects jet inputs \[B, 3, 5\]"):
        model(batch)
    with pytest.raises(DataError, match="no constituent level"):
        build_model("ConvVAE", {"jet": LAYOUT["jet"]}, ("constituent",), 3)


def test_loading_a_config_does_not_import_torch() -> None:
    code = ("import sys; from bead.config import make_config; "
            "make_config({'model_name': 'NSF_Density', 'loss_function': 'FlowNLLLoss', "
            "'input_level': 'event+jet', 'model_params': {'transforms': 2}}); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
