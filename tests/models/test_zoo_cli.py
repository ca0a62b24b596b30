"""Zoo models through the command line: ``train``, ``detect`` and ``plot`` on a tiny prepared
folder, one model of each family; and an original BEAD config, imported with
``new_project --legacy-config``, that runs as it is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tensor_folder import make_tensor_folder, small_config

from bead.cli import main
from bead.config import Config, load_config, save_config
from bead.prepare.manifest import prepared_dir

# Feature names the augmentations find their columns by (NT-Xent needs some to act on).
NAMED = {"constituent": ["pt", "eta", "dphi"], "jet": ["pt", "eta", "mass", "num_constits"],
         "event": ["met", "ht", "mt"]}


def run_modes(root: Path, config: Config | None, modes: tuple[str, ...]) -> Path:
    """new_project (unless ``config`` is None: the project exists), the tensors the config
    asks for, then ``modes``; returns the project folder."""
    base = ["-p", "ws", "p1", "--workspaces", str(root), "--no-progress"]
    project = root / "ws" / "p1"
    if config is not None:
        assert main(["-m", "new_project", *base]) == 0
        save_config(config, project / "config" / "p1_config.toml")
    config = load_config(project / "config" / "p1_config.toml")
    make_tensor_folder(prepared_dir(root / "ws" / "data" / "h5" / "tensors" / "processed",
                                    config), n_train=160, n_test=40, n_signal=40,
                       features=NAMED)
    for mode in modes:
        assert main(["-m", mode, *base]) == 0, mode
    return project


def check_outputs(project: Path, model: str, loss: str, plotted: bool) -> dict:
    """The metrics of ``detect``, after checking the model it records and the plots."""
    results = project / "output" / "results"
    metrics = json.loads((results / "metrics.json").read_text())
    spec = json.loads((project / "output" / "models" / "model.json").read_text())
    assert spec["model_name"] == model and spec["loss_function"] == loss
    auc = metrics["per_signal"]["total"]["all_signals"]["auc"]
    assert 0.0 <= auc <= 1.0
    plots = project / "output" / "plots"
    assert (plots / "report.html").is_file() == plotted
    if plotted:  # the loss curves, the ROC and the report of this model
        drawn = {p.name for p in plots.rglob("*.png")}
        assert {"loss_total.png", "roc_total.png"} <= drawn, drawn
        assert model in (plots / "report.html").read_text(encoding="utf-8")
    return metrics


# One model of each family (ae, vae with a flow, Dirichlet, set, density); plot reads only the
# results, whatever model wrote them, and costs the most, so two of the runs (and the original
# config below) draw the plots.
@pytest.mark.parametrize(("model", "loss", "level", "scores", "modes"), [
    ("AE_Dropout_BN", "ReconstructionLoss", "constituent", {"reco", "total"},
     ("train", "detect")),
    ("IAF_ConvVAE", "VAEFlowLoss", "constituent",
     {"reco", "log_q0", "neg_ldj", "nll_pk", "kl", "total"}, ("train", "detect", "plot")),
    ("Dirichlet_ConvVAE", "DVAELoss", "constituent", {"reco", "kl", "total"},
     ("train", "detect")),
    ("ParticleTransformerVAE", "VAEChamferLoss", "constituent",
     {"chamfer", "chamfer_constituent", "multiplicity_constituent", "kl", "total"},
     ("train", "detect")),
    ("MAF_Density", "FlowNLLLoss", "event+jet", {"nll", "total"}, ("train", "detect", "plot")),
])
def test_train_detect_and_plot_from_the_cli(tmp_path: Path, model: str, loss: str, level: str,
                                            scores: set[str], modes: tuple[str, ...]) -> None:
    config = small_config(model_name=model, loss_function=loss, input_level=level, epochs=2)
    project = run_modes(tmp_path, config, modes)
    metrics = check_outputs(project, model, loss, plotted="plot" in modes)
    assert set(metrics["scores"]) == scores


# An original BEAD config (the keys and spelling of its project template), naming a zoo model
# and a CRVSTAL loss, with the contrastive settings and an annealing schedule.
ORIGINAL = '''
def set_config(c):
    c.workspace_name               = "ws"
    c.project_name                 = "p1"
    c.num_jets                     = 2
    c.num_constits                 = 3
    c.input_level                  = "constituent"
    c.model_name                   = "NSFAR_ConvVAE"
    c.loss_function                = "NTXentVAEFlowLoss"
    c.latent_space_size            = 4
    c.epochs                       = 2
    c.batch_size                   = 64
    c.train_size                   = 0.75
    c.reg_param                    = 0.001
    c.contrastive_temperature      = 0.1
    c.contrastive_weight           = 0.005
    c.ntxent_sigma                 = 0.2
    c.annealing_params = {
        "contrastive_weight": {"strategy": "SCHEDULED", "schedule": {0: 0.0, 1: 0.05}},
    }
'''


def test_an_original_config_naming_zoo_names_runs_through_the_cli(tmp_path: Path) -> None:
    legacy = tmp_path / "p1_config.py"
    legacy.write_text(ORIGINAL)
    assert main(["-m", "new_project", "-p", "ws", "p1", "--workspaces", str(tmp_path),
                 "--legacy-config", str(legacy)]) == 0
    project = run_modes(tmp_path, None, ("train", "detect", "plot"))
    check_outputs(project, "NSFAR_ConvVAE", "NTXentVAEFlowLoss", plotted=True)
    history = json.loads((project / "output" / "results" / "history.json").read_text())
    # the carried-over schedule (epochs counted from 0 there, from 1 here) really applied,
    # the carried-over temperature and sigma were the ones in force
    assert history["weights"]["contrastive_weight"] == [0.0, 0.05]
    assert history["weights"]["contrastive_temperature"] == [0.1, 0.1]
    assert history["weights"]["ntxent_sigma"] == [0.2, 0.2]
    assert all(v > 0 for v in history["train"]["ntxent"])  # the contrastive term is not 0
