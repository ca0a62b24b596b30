"""Zoo models through the command line: ``train`` then ``detect`` on a tiny prepared folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tensor_folder import make_tensor_folder, small_config

from bead.cli import main
from bead.config import save_config
from bead.prepare.manifest import prepared_dir


@pytest.mark.parametrize(("model", "loss", "scores"), [
    ("IAF_ConvVAE", "VAEFlowLoss", {"reco", "log_q0", "neg_ldj", "nll_pk", "kl", "total"}),
    ("Dirichlet_ConvVAE", "DVAELoss", {"reco", "kl", "total"}),
    ("ParticleTransformerVAE", "VAEChamferLoss",
     {"chamfer", "chamfer_constituent", "multiplicity_constituent", "kl", "total"}),
])
def test_train_and_detect_from_the_cli(tmp_path: Path, model: str, loss: str,
                                       scores: set[str]) -> None:
    base = ["-p", "ws", "p1", "--workspaces", str(tmp_path), "--no-progress"]
    assert main(["-m", "new_project", *base]) == 0
    config = small_config(model_name=model, loss_function=loss, epochs=2)
    save_config(config, tmp_path / "ws" / "p1" / "config" / "p1_config.toml")
    make_tensor_folder(prepared_dir(tmp_path / "ws" / "data" / "h5" / "tensors" / "processed",
                                    config))
    assert main(["-m", "train", *base]) == 0
    assert main(["-m", "detect", *base]) == 0
    results = tmp_path / "ws" / "p1" / "output" / "results"
    metrics = json.loads((results / "metrics.json").read_text())
    assert set(metrics["scores"]) == scores
    spec = json.loads((tmp_path / "ws" / "p1" / "output" / "models" / "model.json").read_text())
    assert spec["model_name"] == model and spec["loss_function"] == loss
    auc = metrics["per_signal"]["total"]["all_signals"]["auc"]
    assert 0.0 <= auc <= 1.0
