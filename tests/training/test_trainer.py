"""The training loop on a tiny learnable set, with the real model and loss registries."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tensor_folder import make_tensor_folder, small_config

from bead.errors import BeadError, DataError, UsageError
from bead.losses.objective import Objective
from bead.prepare.manifest import read_manifest
from bead.training.checkpoint import load_trained_model
from bead.training.data import load_training_split
from bead.training.optim import OPTIMIZERS
from bead.training.runtime import Runtime, seed_everything
from bead.training.trainer import batch_slices, evaluate, train


@pytest.fixture(scope="module")
def tensors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tensor_folder(tmp_path_factory.mktemp("tensors"))


def run(tmp: Path, tensors: Path, **overrides: object):
    config = small_config(**overrides)
    return train(config, tensors, tmp / "models", tmp / "results", progress=False)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_reduces_validation_loss(tmp_path, tensors):
    result = run(tmp_path, tensors, model_name="Planar_ConvVAE", loss_function="VAEFlowLoss",
                 epochs=6)
    val = result.history.val["total"]
    assert val[-1] < 0.5 * val[0]
    assert result.best_epoch == int(np.argmin(val)) + 1
    assert result.events_per_second > 0


def test_early_stopping_stops_and_restores_best_weights(tmp_path, tensors):
    # With a huge min_delta only the first epoch counts as an improvement.
    result = run(tmp_path / "a", tensors, early_stopping_patience=2, min_delta=1e9, epochs=10,
                 lr_scheduler=False)
    assert result.stopped_early and result.best_epoch == 1 and result.last_epoch == 3
    assert result.history.epoch == [1, 2, 3]
    one_epoch = run(tmp_path / "b", tensors, epochs=1, lr_scheduler=False)
    best = load(tmp_path / "a/models/best.pt")
    assert_same_state(best, load(tmp_path / "b/models/last.pt")["model"])
    assert_same_state(best, result.model.state_dict())
    assert_same_state(best, one_epoch.model.state_dict())
    last = load(tmp_path / "a/models/last.pt")["model"]
    assert any(not torch.equal(last[k], best[k]) for k in best)


def test_without_early_stopping_runs_every_epoch(tmp_path, tensors):
    result = run(tmp_path, tensors, early_stopping=False, min_delta=1e9, epochs=3)
    assert result.last_epoch == 3 and not result.stopped_early and result.best_epoch == 1


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains(tmp_path, tensors, name):
    result = run(tmp_path, tensors, epochs=2, optimizer=name, lr=3e-3)
    seed_everything(42)  # train() seeds before building the model: same initial weights
    untrained = result.spec.build()
    _, val = load_training_split(read_manifest(tensors), ("constituent",), torch.device("cpu"))
    initial = evaluate(untrained, Objective("AELoss", {}), val, Runtime(torch.device("cpu")))
    losses = result.history.val["total"]
    assert losses[1] < losses[0] < initial["total"]
    assert load(tmp_path / "models/last.pt")["optimizer"]["state"]


def test_history_files_hold_every_component(tmp_path, tensors):
    run(tmp_path, tensors, model_name="ConvVAE", loss_function="VAEFlowLoss", epochs=3)
    results = tmp_path / "results"
    history = json.loads((results / "history.json").read_text())
    components = {"reco", "log_q0", "neg_ldj", "nll_pk", "kl", "total"}
    assert history["epoch"] == [1, 2, 3] and len(history["lr"]) == 3
    assert set(history["train"]) == set(history["val"]) == components
    assert all(len(v) == 3 for v in [*history["train"].values(), *history["val"].values()])
    assert 1 <= history["best_epoch"] <= 3 and history["seconds"] > 0
    with open(results / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert {f"train_{c}" for c in components} | {f"val_{c}" for c in components} <= set(rows[0])
    assert float(rows[2]["val_kl"]) == history["val"]["kl"][2]
    np.testing.assert_array_equal(np.load(results / "train_epoch_loss_data.npy"),
                                  history["train"]["total"])
    np.testing.assert_array_equal(np.load(results / "val_epoch_loss_data.npy"),
                                  history["val"]["total"])


def test_validation_history_is_the_per_event_mean(tmp_path, tensors):
    run(tmp_path, tensors, model_name="ConvVAE", loss_function="VAELoss", epochs=2)
    history = json.loads((tmp_path / "results/history.json").read_text())
    model, spec = load_trained_model(tmp_path / "models", torch.device("cpu"))
    model.load_state_dict(load(tmp_path / "models/last.pt")["model"])
    loss = spec.objective()
    _, val = load_training_split(read_manifest(tensors), ("constituent",), torch.device("cpu"))
    with torch.no_grad():
        comps = loss.step(model.eval(), val).components
    for name, values in comps.items():
        assert history["val"][name][-1] == pytest.approx(values.mean().item(), rel=1e-5)
    # Batching does not change the means, and event weights weight them.
    runtime = Runtime(torch.device("cpu"))
    assert evaluate(model, loss, val, runtime, batch_size=7)["reco"] == pytest.approx(
        comps["reco"].mean().item(), rel=1e-5)
    val.weight = torch.linspace(0.5, 2.0, len(val))
    weighted = (val.weight * comps["reco"]).sum() / val.weight.sum()
    assert evaluate(model, loss, val, runtime, batch_size=7)["reco"] == pytest.approx(
        weighted.item(), rel=1e-5)


def test_checkpoints_load_with_weights_only(tmp_path, tensors):
    run(tmp_path, tensors, epochs=4, intermittent_model_saving=True,
        intermittent_saving_patience=2)
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == [
        "best.pt", "epoch_2.pt", "epoch_4.pt", "last.pt", "model.json"]
    last = load(models / "last.pt")
    assert {"model", "optimizer", "scheduler", "epoch", "best_val", "history"} <= set(last)
    assert last["epoch"] == 4 and load(models / "epoch_2.pt")["epoch"] == 2
    assert last["best_val"] == min(last["history"]["val"]["total"])
    spec = json.loads((models / "model.json").read_text())
    assert spec == {"version": 2, "model_name": "AE", "levels": ["constituent"],
                    "layout": {"constituent": {"n_slots": 6, "features": ["a", "b", "c"]}},
                    "latent_dim": 4, "model_params": {"hidden": [128, 64]},
                    "loss_function": "AELoss",
                    "weights": {"reg_param": 1e-3, "contrastive_weight": 0.005,
                                "contrastive_temperature": 0.07, "ntxent_sigma": 0.1,
                                "emd_weight": 1.0, "l1_weight": 1e-6, "l2_weight": 1e-6},
                    "model_init": "xavier", "scalers_sha256": "toy-0",
                    "prepared_key": read_manifest(tensors).key, "holdout_generator": "",
                    "augmentations": {}}


def test_resume_continues_like_an_uninterrupted_run(tmp_path, tensors):
    whole = run(tmp_path / "whole", tensors, epochs=4, lr_scheduler_patience=1)
    run(tmp_path / "split", tensors, epochs=2, lr_scheduler_patience=1)
    config = small_config(epochs=4, lr_scheduler_patience=1)
    resumed = train(config, tensors, tmp_path / "split/models", tmp_path / "split/results",
                    progress=False, resume=True)
    assert resumed.history.epoch == [1, 2, 3, 4]
    assert resumed.history.val == whole.history.val
    assert_same_state(load(tmp_path / "split/models/last.pt")["model"],
                      load(tmp_path / "whole/models/last.pt")["model"])
    history = json.loads((tmp_path / "split/results/history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4]


def test_resume_refuses_changed_model(tmp_path, tensors):
    run(tmp_path, tensors, epochs=1)
    config = small_config(epochs=2, latent_space_size=3)
    with pytest.raises(UsageError, match="latent_dim"):
        train(config, tensors, tmp_path / "models", tmp_path / "results", progress=False,
              resume=True)


def test_fresh_run_replaces_old_checkpoints(tmp_path, tensors):
    run(tmp_path, tensors, epochs=3)
    run(tmp_path, tensors, epochs=1)
    assert load(tmp_path / "models/last.pt")["epoch"] == 1


def test_input_levels(tmp_path, tensors):
    for level, slots, features in (("jet", 2, 4), ("event", 1, 3)):
        result = run(tmp_path / level, tensors, input_level=level, epochs=1)
        layout = result.spec.layout[level]
        assert (layout.n_slots, layout.n_features) == (slots, features)


def test_deterministic_algorithms_are_restored(tmp_path, tensors):
    run(tmp_path, tensors, epochs=1, deterministic_algorithm=True)
    assert not torch.are_deterministic_algorithms_enabled()


def test_incompatible_model_and_loss_is_a_usage_error(tmp_path, tensors):
    with pytest.raises(UsageError, match="cannot be used"):
        run(tmp_path, tensors, loss_function="VAELoss")


def test_missing_inputs_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="manifest"):
        run(tmp_path, tmp_path / "nothing")
    folder = make_tensor_folder(tmp_path / "t")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["samples"] = [s for s in manifest["samples"] if s["flag"] != "bkg_train"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="no bkg_train"):
        run(tmp_path, folder)


def test_diverging_training_fails_clearly(tmp_path):
    folder = make_tensor_folder(tmp_path / "t", bkg_generators=("pythia",))
    path = folder / "bkg_train_pythia.safetensors"
    tensors = load_file(str(path))
    first_train_event = int(torch.nonzero(~tensors["is_val"])[0])
    tensors["constituents"][first_train_event, 0, 0] = float("nan")  # slot 0 is always real
    save_file(tensors, str(path))
    with pytest.raises(BeadError, match=r"diverged in epoch 1.*a smaller gradient_clip"):
        run(tmp_path, folder, epochs=1)  # clipping is on by default: the hint says so
    with pytest.raises(BeadError, match=r"diverged in epoch 1.*gradient_clip > 0"):
        run(tmp_path, folder, epochs=1, gradient_clip=0.0)


def test_batch_slices_cover_every_event_without_single_event_batches():
    order = torch.randperm(257)
    batches = batch_slices(257, 256, order)
    assert [len(b) for b in batches] == [129, 128]
    assert torch.equal(torch.sort(torch.cat(batches)).values, torch.arange(257))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_trains_and_resumes(tmp_path, tensors, dtype):
    # CPU autocast runs the same code path that CUDA uses; float16 adds the gradient scaler.
    runtime = Runtime(torch.device("cpu"), amp_dtype=dtype)
    config = small_config(model_name="ConvVAE", loss_function="VAELoss", epochs=2)
    train(config, tensors, tmp_path / "models", tmp_path / "results", progress=False,
          runtime=runtime)
    assert ("scaler" in load(tmp_path / "models/last.pt")) == (dtype == torch.float16)
    result = train(small_config(model_name="ConvVAE", loss_function="VAELoss", epochs=3),
                   tensors, tmp_path / "models", tmp_path / "results", progress=False,
                   resume=True, runtime=runtime)
    val = result.history.val["total"]
    assert result.history.epoch == [1, 2, 3] and val[-1] < val[0]


def _reweight(folder: Path, stem: str, weight: torch.Tensor) -> None:
    path = folder / f"{stem}.safetensors"
    tensors = load_file(str(path))
    tensors["weight"] = weight
    save_file(tensors, str(path))


def test_training_weights_are_unit_unless_asked_and_never_negative(tmp_path):
    folder = make_tensor_folder(tmp_path / "t", n_train=40)
    signed = torch.linspace(-1.0, 3.0, 40)
    _reweight(folder, "bkg_train_pythia", signed)
    cpu = torch.device("cpu")
    train_data, val_data = load_training_split(read_manifest(folder), ("jet",), cpu)
    assert torch.all(train_data.weight == 1) and torch.all(val_data.weight == 1)
    # A negative weight would make the optimiser maximise that event's loss.
    with pytest.raises(DataError, match="negative"):
        load_training_split(read_manifest(folder), ("jet",), cpu, weighted=True)
    _reweight(folder, "bkg_train_pythia", signed.abs() + 0.5)
    train_data, val_data = load_training_split(read_manifest(folder), ("jet",), cpu, weighted=True)
    weights = torch.cat([train_data.weight, val_data.weight])
    assert sorted(weights.tolist()) == sorted((signed.abs() + 0.5).tolist() + [1.0] * 40)


def test_a_run_that_fails_in_its_first_epoch_keeps_the_previous_model(tmp_path):
    folder = make_tensor_folder(tmp_path / "t", bkg_generators=("pythia",))
    run(tmp_path, folder, epochs=2)
    before = {p.name: p.read_bytes() for p in (tmp_path / "models").iterdir()}
    path = folder / "bkg_train_pythia.safetensors"
    tensors = load_file(str(path))
    tensors["constituents"][int(torch.nonzero(~tensors["is_val"])[0]), 0, 0] = float("nan")
    save_file(tensors, str(path))
    with pytest.raises(BeadError, match="diverged in epoch 1"):
        run(tmp_path, folder, epochs=2, latent_space_size=3)
    assert {p.name: p.read_bytes() for p in (tmp_path / "models").iterdir()} == before


def test_tensors_prepared_with_other_settings_are_refused(tmp_path, tensors):
    # Projects share data/: another project's prepare_inputs may have rebuilt the tensors.
    with pytest.raises(DataError, match=r"prepared with num_constits = 3, normalizations = "
                                        r"'pj_custom', but the config has num_constits = 4, "
                                        r"normalizations = 'log\+standard'; rerun prepare"):
        run(tmp_path, tensors, num_constits=4, normalizations="log+standard")
    assert not (tmp_path / "models").exists()


def test_resume_without_a_checkpoint_warns(tmp_path, tensors, caplog):
    with caplog.at_level("WARNING"):
        train(small_config(epochs=1), tensors, tmp_path / "models", tmp_path / "results",
              progress=False, resume=True)
    assert any(r.levelname == "WARNING" and "no " in r.message and "resume" in r.message
               and "replace" in r.message for r in caplog.records)


def test_a_fresh_run_over_an_interrupted_one_says_how_to_resume(tmp_path, tensors, caplog,
                                                                 monkeypatch):
    from bead.training.trainer import Trainer

    run(tmp_path, tensors, epochs=2)  # finished: nothing to say
    with caplog.at_level("WARNING"):
        run(tmp_path, tensors, epochs=5, early_stopping=False)
    assert not any("interrupted" in r.message for r in caplog.records)
    real = Trainer.train_epoch

    def stop_in_epoch_3(self):
        if self.epoch == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_epoch", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tensors, epochs=5, early_stopping=False)
    monkeypatch.setattr(Trainer, "train_epoch", real)
    caplog.clear()
    with caplog.at_level("WARNING"):
        run(tmp_path, tensors, epochs=1)
    assert any("interrupted run (epoch 2 of 5)" in r.message and "-o resume" in r.message
               for r in caplog.records)


def test_a_multi_level_model_trains_on_several_levels(tmp_path, tensors):
    result = run(tmp_path, tensors, model_name="SetVAE", loss_function="VAELoss",
                 input_level="event+jet+constituent", epochs=2)
    assert result.spec.levels == ("event", "jet", "constituent")
    assert {"reco_event", "reco_jet", "card_constituent"} <= set(result.history.val)
    density = run(tmp_path / "d", tensors, model_name="MAF_Density",
                  loss_function="FlowNLLLoss", input_level="event+jet", epochs=2)
    assert set(density.history.val) == {"nll", "total"}
