"""The engine on one device: a real SIGKILL and resume, torch.compile's fallback, bf16 on CPU."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensor_folder import make_tensor_folder, small_config

from bead.config import create_project
from bead.prepare.manifest import prepared_dir
from bead.project import ProjectPaths
from bead.training import compile as compile_module
from bead.training.runtime import Runtime
from bead.training.trainer import train

WS, PROJ = "ws", "p"
# Enough steps per epoch (2,000 training events, batches of 8) that the kill lands mid-run.
KILL_SETTINGS = {"epochs": 12, "batch_size": 8, "early_stopping": False,
                 "lr_scheduler_patience": 1, "deterministic_algorithm": True}


def bead_train(root: Path, *options: str) -> subprocess.Popen:
    # One thread: the two runs must compute alike, and two processes with two OpenMP threads
    # each spin against each other on a small machine.
    return subprocess.Popen(
        [sys.executable, "-m", "bead", "-m", "train", "-p", WS, PROJ, "--workspaces", str(root),
         "--no-progress", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})


def workspace(root: Path) -> ProjectPaths:
    paths = ProjectPaths(root, WS, PROJ)
    config = small_config(**KILL_SETTINGS)
    create_project(paths, config)
    make_tensor_folder(prepared_dir(paths.tensors_dir, config), bkg_generators=("pythia",),
                       n_train=2700, n_test=20, n_signal=20)
    return paths


def epochs_done(models_dir: Path) -> int:
    try:
        return int(torch.load(models_dir / "last.pt", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_resume_after_sigkill_reaches_the_weights_of_an_uninterrupted_run(tmp_path):
    whole = workspace(tmp_path / "whole")
    uninterrupted = bead_train(whole.root)
    killed = workspace(tmp_path / "killed")
    proc = bead_train(killed.root)
    deadline = time.monotonic() + 600
    while epochs_done(killed.models_dir) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = epochs_done(killed.models_dir)
    assert 2 <= done < KILL_SETTINGS["epochs"], "the kill came after the run ended"

    resumed = bead_train(killed.root, "-o", "resume")
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert f"resuming from {killed.models_dir / 'last.pt'} after epoch" in err
    _, err = uninterrupted.communicate(timeout=900)
    assert uninterrupted.returncode == 0, err

    a = torch.load(whole.models_dir / "last.pt", weights_only=True)
    b = torch.load(killed.models_dir / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == KILL_SETTINGS["epochs"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["history"]["val"] == b["history"]["val"]
    leftovers = [p.name for p in killed.models_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # a temporary file of the killed write was cleaned


def test_a_failing_compile_warns_once_and_trains_in_eager_mode(tmp_path, monkeypatch, caplog):
    tensors = make_tensor_folder(tmp_path / "t")
    eager = train(small_config(epochs=2), tensors, tmp_path / "a/models", tmp_path / "a/results",
                  progress=False)

    def broken(module):
        def call(*args, **kwargs):
            raise RuntimeError("backend compiler failed\nlong details")
        return call

    monkeypatch.setattr(compile_module.torch, "compile", broken)
    with caplog.at_level(logging.WARNING):
        fallback = train(small_config(epochs=2, compile=True), tensors, tmp_path / "b/models",
                         tmp_path / "b/results", progress=False)
    warnings = [r.message for r in caplog.records if "torch.compile failed" in r.message]
    assert warnings == ["compile = true: torch.compile failed (RuntimeError: backend compiler "
                        "failed); training in eager mode"]
    assert fallback.history.val == eager.history.val


def test_compile_true_trains_through_the_compiled_module(tmp_path, monkeypatch):
    calls = []

    def traced(module):
        def call(*args, **kwargs):
            calls.append(1)
            return module(*args, **kwargs)
        return call

    monkeypatch.setattr(compile_module.torch, "compile", traced)
    tensors = make_tensor_folder(tmp_path / "t")
    result = train(small_config(epochs=1, compile=True), tensors, tmp_path / "models",
                   tmp_path / "results", progress=False)
    assert len(calls) == 10 and result.last_epoch == 1  # 600 events in batches of 64


def test_bf16_autocast_trains_on_cpu(tmp_path):
    tensors = make_tensor_folder(tmp_path / "t")
    config = small_config(model_name="ConvVAE", loss_function="VAELoss", epochs=3, use_amp=True)
    result = train(config, tensors, tmp_path / "models", tmp_path / "results", progress=False)
    val = result.history.val["total"]
    assert val[-1] < val[0]
    # the same as an explicit bf16 runtime: use_amp chose bfloat16 on the CPU
    again = train(config, tensors, tmp_path / "m2", tmp_path / "r2", progress=False,
                  runtime=Runtime(torch.device("cpu"), amp_dtype=torch.bfloat16))
    assert again.history.val == result.history.val
