"""Results record the model and inputs they were computed from, and are refused when stale."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tensor_folder import make_tensor_folder, small_config

from bead.errors import DataError
from bead.evaluation import provenance
from bead.evaluation.detect import detect
from bead.evaluation.scores import read_scores
from bead.fileio import file_sha256
from bead.training import checkpoint
from bead.training.trainer import train

CONFIG = small_config(model_name="Planar_ConvVAE", loss_function="VAEFlowLoss")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tensors/, models/ and results/ of a trained and scored flow VAE."""
    root = tmp_path_factory.mktemp("project")
    tensors = make_tensor_folder(root / "tensors")
    train(CONFIG, tensors, root / "models", root / "results", progress=False)
    detect(CONFIG, tensors, root / "models", root / "results", progress=False)
    return root


def test_file_names_agree_with_the_checkpoint_module() -> None:
    assert (provenance.BEST, provenance.MODEL_JSON) == (checkpoint.BEST, checkpoint.MODEL_JSON)


def test_detect_records_model_and_inputs_in_scores_and_metrics(project: Path) -> None:
    table = read_scores(project / "results" / "scores.h5")
    metrics = json.loads((project / "results" / "metrics.json").read_text())
    assert table.provenance == metrics["provenance"]
    record = metrics["provenance"]
    assert record["model_sha256"] == file_sha256(project / "models" / "best.pt")
    assert record["model_spec"] == json.loads((project / "models" / "model.json").read_text())
    assert record["scalers_sha256"] == "toy-0" and record["prepared_folder"] == "tensors"
    assert "prepared_key" in record
    assert provenance.stale_reason(project / "results", project / "models") is None


def test_detect_stores_every_latent_view_of_the_model(project: Path) -> None:
    table = read_scores(project / "results" / "scores.h5")
    assert set(table.latents) == {"z0", "zk", "mu", "logvar"}
    assert all(v.shape == table.latent.shape for v in table.latents.values())
    assert (table.latent == table.latents["zk"]).all()  # the flow output stays the latent
    assert (table.latents["z0"] == table.latents["mu"]).all()  # eval mode: z0 is the mean


def test_retraining_without_detect_makes_the_results_stale(project: Path,
                                                           tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(project / "models", models)
    assert provenance.stale_reason(project / "results", models) is None
    train(small_config(model_name="Planar_ConvVAE", loss_function="VAEFlowLoss", lr=3e-3),
          project / "tensors", models, tmp_path / "results", progress=False)
    reason = provenance.stale_reason(project / "results", models)
    assert reason is not None and "scored another best.pt" in reason
    assert reason.endswith("run detect")


def test_detect_refuses_a_best_pt_that_does_not_fit_model_json(project: Path,
                                                               tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(project / "models", models)
    spec = json.loads((models / "model.json").read_text())
    spec["latent_dim"] += 1
    (models / "model.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"best\.pt: weights do not fit model\.json"):
        detect(CONFIG, project / "tensors", models, tmp_path / "results", progress=False)
    state = torch.load(project / "models" / "best.pt", weights_only=True)
    assert state  # the original stays usable
    assert not (tmp_path / "results").exists()
