"""Issue 9's contract, checked against the catalogs: every model and loss name of SPEC §7 is
declared and accepted by the config (also from an original BEAD config), and no model moves
itself to a GPU at construction or keeps a tensor outside its parameters and buffers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from toy_models import build, default_levels, default_loss

from bead.config import make_config, read_legacy_config
from bead.losses.catalog import LOSSES, compatible
from bead.models.catalog import MODELS

# The names SPEC §7 promises, as the original BEAD spelled them (so its configs carry over).
SPEC_MODELS = ("AE", "AE_Dropout_BN", "ConvAE", "ConvVAE", "Dirichlet_ConvVAE", "Planar_ConvVAE",
               "OrthogonalSylvester_ConvVAE", "HouseholderSylvester_ConvVAE",
               "TriangularSylvester_ConvVAE", "IAF_ConvVAE", "ConvFlow_ConvVAE", "NSFAR_ConvVAE",
               "TransformerAE")
SPEC_LOSSES = ("ReconstructionLoss", "VAELoss", "VAEFlowLoss", "DVAELoss", "DVAEFlowLoss",
               "VAESupConLoss", "VAEFlowSupConLoss", "VAELossEMD", "VAELossL1", "VAELossL2",
               "VAEFlowLossEMD", "VAEFlowLossL1", "VAEFlowLossL2", "NTXentVAELoss",
               "NTXentVAEFlowLoss", "NTXentDVAELoss", "NTXentDVAEFlowLoss")


def test_every_name_of_the_spec_is_in_the_catalogs() -> None:
    assert set(SPEC_MODELS) <= set(MODELS), set(SPEC_MODELS) - set(MODELS)
    assert set(SPEC_LOSSES) <= set(LOSSES), set(SPEC_LOSSES) - set(LOSSES)
    # the new ones: a masked permutation-invariant set encoder in AE and VAE form, with set
    # losses (Chamfer, particle EMD) that fit it; density models scored by -log p(x)
    sets = {e.family for e in MODELS.values() if e.body == "particle_transformer"}
    assert sets == {"ae", "vae"}
    for loss in ("ChamferLoss", "SinkhornLoss"):
        assert compatible("ParticleTransformerAE", loss)
    assert {e.family for e in MODELS.values() if e.levels == "event+jet"} == {"density"}
    assert all(compatible(n, "FlowNLLLoss") for n, e in MODELS.items() if e.family == "density")


def _partner_model(loss: str) -> str:
    return next(m for m in MODELS if compatible(m, loss))


def _names() -> list[tuple[str, str]]:
    """(model, loss): every model with its default loss, every loss with a model that fits."""
    pairs = [(m, default_loss(m)) for m in MODELS] + [(_partner_model(lo), lo) for lo in LOSSES]
    return list(dict.fromkeys(pairs))


@pytest.mark.parametrize(("model", "loss"), _names())
def test_every_name_is_accepted_by_the_config_and_the_legacy_import(
        tmp_path: Path, model: str, loss: str) -> None:
    level = "+".join(default_levels(model))
    config = make_config({"model_name": model, "loss_function": loss, "input_level": level})
    assert (config.model_name, config.loss_function) == (model, loss)
    legacy = tmp_path / "old_config.py"
    legacy.write_text("def set_config(c):\n"
                      f"    c.model_name = {model!r}\n"
                      f"    c.loss_function = {loss!r}\n"
                      f"    c.input_level = {level!r}\n"
                      "    c.contrastive_weight = 0.01\n")
    converted, ignored = read_legacy_config(legacy)
    assert (converted.model_name, converted.loss_function, converted.input_level) == (
        model, loss, level)
    assert converted.contrastive_weight == 0.01 and ignored == []


def _unregistered(value: object) -> bool:
    """A tensor, or a list/tuple/dict holding tensors or modules, kept as a plain attribute:
    ``.to(device)`` and ``state_dict`` would not see it."""
    if isinstance(value, torch.Tensor):
        return True
    items = value.values() if isinstance(value, dict) else value
    return isinstance(value, list | tuple | dict) and any(
        isinstance(v, torch.Tensor | torch.nn.Module) for v in items)


@pytest.mark.parametrize("name", list(MODELS))
def test_no_model_moves_to_a_gpu_at_construction_and_every_tensor_is_registered(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} calls .cuda() at construction")

    monkeypatch.setattr(torch.Tensor, "cuda", refuse)
    monkeypatch.setattr(torch.nn.Module, "cuda", refuse)
    model = build(name)
    plain = [f"{module_name or name}.{attr}" for module_name, module in model.named_modules()
             for attr, value in vars(module).items()
             if not attr.startswith("_") and _unregistered(value)]
    assert plain == [], f"tensors/modules outside parameters and buffers: {plain}"
    masks = [b for b, _ in model.named_buffers() if b.endswith("mask")]
    if MODELS[name].flow == "iaf":  # the original kept its masks as plain attributes
        assert masks and all(b in model.state_dict() for b in masks)
