"""Batch-level terms (contrastive, parameter norms) in a real run: in the loss and the history,
never among the per-event scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensor_folder import make_tensor_folder, small_config

from bead.evaluation.detect import score_events
from bead.prepare.manifest import read_manifest
from bead.training.checkpoint import load_trained_model
from bead.training.data import load_training_split
from bead.training.runtime import Runtime
from bead.training.trainer import train

NAMED = {"constituent": ["pt", "eta", "dphi"], "jet": ["pt", "eta", "mass", "num_constits"],
         "event": ["met", "ht", "mt"]}


@pytest.fixture(scope="module")
def tensors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tensor_folder(tmp_path_factory.mktemp("named"), n_train=160, n_test=40,
                              n_signal=40, features=NAMED)


@pytest.mark.parametrize(("model", "loss", "term", "weight"), [
    ("Planar_ConvVAE", "NTXentVAEFlowLoss", "ntxent", "contrastive_weight"),
    ("ConvVAE", "VAESupConLoss", "supcon", "contrastive_weight"),
    ("DeepSetsVAE", "VAELossL2", "l2", "l2_weight"),
    ("Dirichlet_ConvVAE", "NTXentDVAELoss", "ntxent", "contrastive_weight"),
])
def test_a_batch_level_term_trains_and_is_logged_but_never_scored(
        tmp_path: Path, tensors: Path, model: str, loss: str, term: str, weight: str) -> None:
    config = small_config(model_name=model, loss_function=loss, epochs=2,
                          **{weight: 0.1})
    result = train(config, tensors, tmp_path / "models", tmp_path / "results", progress=False)
    history = result.history
    for split in (history.train, history.val):
        assert all(v > 0 for v in split[term])  # two generators: SupCon has positives
    per_event = [k for k in history.val if k not in ("total", term)]
    assert "reco" in per_event and "kl" in per_event
    # the history's total is the loss: the per-event part plus the weighted batch-level term
    beta = config.reg_param
    for epoch in range(2):
        val = {k: v[epoch] for k, v in history.val.items()}
        assert val["total"] == pytest.approx(val["reco"] + beta * val["kl"] + 0.1 * val[term],
                                             rel=1e-5)
    assert history.weights[weight] == [0.1, 0.1]
    trained, spec = load_trained_model(tmp_path / "models", torch.device("cpu"))
    _, val_data = load_training_split(read_manifest(tensors), ("constituent",),
                                      torch.device("cpu"))
    scores, _ = score_events(trained, spec.objective(), val_data, Runtime(torch.device("cpu")))
    assert term not in scores and {"reco", "kl", "total"} <= set(scores)
    torch.testing.assert_close(torch.from_numpy(scores["total"]),
                               torch.from_numpy(scores["reco"] + beta * scores["kl"]))
