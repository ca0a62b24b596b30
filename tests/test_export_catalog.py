"""Every model of the catalog exports to ONNX, or is refused with a reason: onnxruntime gives the
scores PyTorch gives at batch sizes other than the traced one. Untrained toy models (the export
does not care about training) with the fewest flow steps and layers, so that tracing stays quick;
the trained, CLI-driven export is tests/test_export.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from toy_models import build, default_levels, default_loss, toy_batch

from bead.config import make_config
from bead.errors import BeadError
from bead.export import ATOL, RTOL, UNEXPORTABLE_TERMS, export_graph, input_names
from bead.losses.catalog import LOSSES, compatible
from bead.losses.objective import Objective
from bead.models.catalog import MODELS
from bead.models.flows import orthogonal_sylvester
from bead.training.checkpoint import WEIGHT_KEYS

ort = pytest.importorskip("onnxruntime")

# Every weight and setting a loss may read, at the config's defaults.
WEIGHTS = {key: float(getattr(make_config({}), key)) for key in WEIGHT_KEYS}
# The smallest setting of each that still has the structure (more than one step or layer).
SMALL = {"num_flows": 2, "layers": 1, "transforms": 2, "hidden_features": [16, 16]}
# Pairs beyond each model's default loss: the set losses and the EMD sort (aten::sort, which
# bead translates itself); a batch-level term (NT-Xent) is no score and stays out of the graph.
EXTRA = [("ParticleTransformerVAE", "VAEChamferLoss"), ("ConvVAE", "VAELossEMD"),
         ("ConvVAE", "NTXentVAELoss")]
REFUSED = [(name, loss) for name in MODELS for loss in LOSSES if compatible(name, loss)
           and set(LOSSES[loss].score_terms) & set(UNEXPORTABLE_TERMS)]


def small(name: str):
    return build(name, default_levels(name),
                 **{k: v for k, v in SMALL.items() if k in MODELS[name].params})


def onnx_scores(path: Path, batch, levels) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feeds = {f"{lv}_{part}": getattr(batch[lv], part).numpy()
             for lv in levels for part in ("x", "mask")}
    assert [i.name for i in session.get_inputs()] == input_names(levels)
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("name, loss", [(n, default_loss(n)) for n in MODELS] + EXTRA)
def test_every_model_exports_and_onnxruntime_gives_its_scores(name: str, loss: str,
                                                              tmp_path: Path, monkeypatch
                                                              ) -> None:
    # The orthogonalisation runs every one of its steps in a graph; 10 keep tracing short.
    monkeypatch.setattr(orthogonal_sylvester.orthogonalize, "__defaults__", (10,))
    torch.manual_seed(0)
    model, levels = small(name), default_levels(name)
    objective = Objective(loss, WEIGHTS)
    graph = export_graph(name, model, objective, toy_batch(8, seed=1, levels=levels),
                         tmp_path / "model.onnx")
    assert max(graph.worst.values()) <= RTOL
    events = toy_batch(11, seed=2, levels=levels)  # other events, another batch size
    got = onnx_scores(tmp_path / "model.onnx", events, levels)
    with torch.no_grad():
        out = model.eval()(events)
        want = {k: v.numpy() for k, v in objective.components(events, out).items()}
    want["latent"] = out.latent.numpy()
    assert set(got) == set(want)  # every component and the latent, nothing else
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=0, err_msg=f"{name} {key}",
                                   atol=ATOL + RTOL * float(np.abs(value).max()))


@pytest.mark.parametrize("name, loss", REFUSED)
def test_losses_no_graph_can_compute_are_refused_naming_model_loss_and_why(
        name: str, loss: str, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    with pytest.raises(BeadError) as err:
        export_graph(name, small(name), Objective(loss, WEIGHTS),
                     toy_batch(8, levels=default_levels(name)), path)
    message = str(err.value)
    assert f"model_name = '{name}'" in message and f"loss_function = '{loss}'" in message
    assert any(reason in message for reason in UNEXPORTABLE_TERMS.values())
    assert not path.exists()
