"""Distributed data-parallel training: 2 CPU processes with gloo under torchrun, against one
process on the same data with the same global batch size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tensor_folder import make_tensor_folder, shard_folder, small_config

from bead.config import create_project
from bead.prepare.manifest import prepared_dir, read_manifest
from bead.project import ProjectPaths
from bead.training.checkpoint import load_trained_model
from bead.training.data import load_training_split
from bead.training.runtime import Runtime
from bead.training.trainer import evaluate, train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="this torch build has no torch.distributed")

WS, PROJ = "ws", "p"
# Few epochs of the toy AE (no random draws in training, so only the float order of the
# gradient all-reduce and of the split sums differs from one process).
SETTINGS = {"epochs": 3, "batch_size": 64, "lr_scheduler_patience": 1}
# With the same global batches, DDP computes the same gradients as one process, summed in
# another order (each rank's part, then the all-reduce): float32 sums then differ by ~1e-7
# relative per step, and 3 epochs of ~10 Adam steps carry that forward without amplifying it
# much (measured: at most 2.4e-7 relative on every epoch mean). 1e-5 leaves a 40x margin and
# still catches any real difference in the optimisation: a wrong loss scale, a batch seen twice
# or a rank's part dropped changes the losses by percents.
TOLERANCE = 1e-5


def torchrun(root: Path, *mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "bead", *(mode or ("-m", "train")), "-p", WS, PROJ, "--workspaces", str(root),
         "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600)


def workspace(root: Path, **settings: object) -> ProjectPaths:
    paths = ProjectPaths(root, WS, PROJ)
    config = small_config(**{**SETTINGS, **settings})
    create_project(paths, config)
    make_tensor_folder(prepared_dir(paths.tensors_dir, config))
    return paths


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory):
    paths = workspace(tmp_path_factory.mktemp("ddp"))
    proc = torchrun(paths.root, "-m", "chain", "-o", "train_detect")  # detect: rank 0 alone
    return paths, proc


def test_two_gloo_ranks_train_like_one_process(ddp_run, tmp_path):
    paths, proc = ddp_run
    assert proc.returncode == 0, proc.stderr
    history = json.loads((paths.results_dir / "history.json").read_text())
    config = small_config(**SETTINGS)
    single = train(config, prepared_dir(paths.tensors_dir, config), tmp_path / "models",
                   tmp_path / "results", progress=False)
    assert history["epoch"] == [1, 2, 3]
    for split, values in (("train", single.history.train), ("val", single.history.val)):
        for name, expected in values.items():
            assert history[split][name] == pytest.approx(expected, rel=TOLERANCE), (split, name)
    # The checkpoint holds the bare model, so detect and resume load it in one process.
    last = torch.load(paths.models_dir / "last.pt", weights_only=True)
    assert last["model"].keys() == single.model.state_dict().keys()
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(last["model"][key], value, rtol=1e-3, atol=1e-5)
    # ... and one process continues the 2-rank run with -o resume.
    shutil.copytree(paths.models_dir, tmp_path / "resumed")
    resumed = train(small_config(**{**SETTINGS, "epochs": 4}), prepared_dir(
        paths.tensors_dir, config), tmp_path / "resumed", tmp_path / "resumed_results",
        progress=False, resume=True)
    assert resumed.history.epoch == [1, 2, 3, 4]
    assert resumed.history.val["total"][:3] == history["val"]["total"]


def test_only_rank_0_writes_and_logs(ddp_run):
    paths, proc = ddp_run
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in paths.models_dir.iterdir()) == [
        "best.pt", "last.pt", "model.json"]
    assert sorted(p.name for p in paths.results_dir.iterdir()) == [
        "history.csv", "history.json", "metrics.json", "scores.h5",
        "train_epoch_loss_data.npy", "val_epoch_loss_data.npy"]
    assert proc.stderr.count("epoch 3/3") == 1
    assert proc.stderr.count("── detect ──") == 1 and proc.stderr.count("scored ") == 3
    assert proc.stderr.count("distributed training: 2 processes, backend gloo") == 1


def test_more_ranks_than_training_events_is_one_line_and_keeps_outputs(ddp_run, tmp_path):
    shutil.copytree(ddp_run[0].root, tmp_path / "root")
    paths = ProjectPaths(tmp_path / "root", WS, PROJ)
    before = {p.name: p.read_bytes() for p in paths.models_dir.iterdir()}
    folder = prepared_dir(paths.tensors_dir, small_config(**SETTINGS))
    for generator in ("pythia", "herwig"):
        path = folder / f"bkg_train_{generator}.safetensors"
        tensors = load_file(str(path))
        tensors["is_val"] = torch.ones_like(tensors["is_val"])
        tensors["is_val"][0] = generator == "herwig"  # one training event in all
        save_file(tensors, str(path))
    proc = torchrun(paths.root)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bead:")]
    assert len(errors) == 1, proc.stderr
    assert "1 training and 799 validation events for 2 ranks" in errors[0]
    assert "start at most 1 processes" in errors[0]
    assert {p.name: p.read_bytes() for p in paths.models_dir.iterdir()} == before


def test_use_ddp_in_one_process_is_a_group_of_one(tmp_path):
    """use_ddp = true without torchrun: the same run through DDP in a world of one."""
    from bead.cli import main

    paths = workspace(tmp_path / "a", use_ddp=True)
    assert main(["-m", "train", "-p", WS, PROJ, "--workspaces", str(paths.root),
                 "--no-progress"]) == 0
    assert not torch.distributed.is_initialized()  # torn down after the run
    config = small_config(**SETTINGS)
    single = train(config, prepared_dir(paths.tensors_dir, config), tmp_path / "models",
                   tmp_path / "results", progress=False)
    history = json.loads((paths.results_dir / "history.json").read_text())
    assert history["val"] == single.history.val and history["train"] == single.history.train


def test_two_gloo_ranks_stream_their_own_shards(tmp_path):
    """data_mode = "stream" under torchrun: each rank reads its own blocks (here, shards) from
    disk and validates its own validation events. Its batches are a blocked shuffle, not the
    one-process order (and on this steep toy curve a few steps more or less change the loss by
    tens of per cent), so the exact one-process comparison is the in-memory test above; here
    the reduced validation means must be those of the saved model on every validation event,
    evaluated in one process (to 1e-5, the float order of the sums: a rank's part dropped or
    weighed wrongly moves them by percents)."""
    paths = workspace(tmp_path / "a", data_mode="stream")
    config = small_config(**{**SETTINGS, "data_mode": "stream"})
    folder = prepared_dir(paths.tensors_dir, config)
    shard_folder(folder, 2)
    proc = torchrun(paths.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("streamed from disk") == 1  # rank 0's log line
    history = json.loads((paths.results_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3] and history["best_epoch"] == 3
    val = history["val"]["total"]
    assert val[-1] < 0.5 * val[0]
    cpu = torch.device("cpu")
    model, spec = load_trained_model(paths.models_dir, cpu)
    _, val_data = load_training_split(read_manifest(folder), ("constituent",), cpu)
    means = evaluate(model, spec.objective(), val_data, Runtime(cpu), 4096)
    for name, values in history["val"].items():
        assert values[-1] == pytest.approx(means[name], rel=1e-5), name
