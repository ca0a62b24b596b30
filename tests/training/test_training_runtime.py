"""Device, precision and input loading of a training run."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from tensor_folder import make_tensor_folder, small_config

from bead.errors import DataError, UsageError
from bead.prepare.manifest import read_manifest
from bead.training.data import load_sample, load_training_split
from bead.training.optim import build_optimizer
from bead.training.runtime import make_runtime, select_device


def test_auto_device_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_usage_error():
    with pytest.raises(UsageError, match="no CUDA device"):
        select_device("cuda:0")


def test_amp_is_ignored_on_cpu(caplog):
    with caplog.at_level(logging.INFO, logger="bead.training.runtime"):
        runtime = make_runtime(small_config(use_amp=True))
    assert runtime.amp_dtype is None and not runtime.use_grad_scaler
    assert "ignored" in caplog.text
    assert runtime.is_main and runtime.world_size == 1


def test_unknown_optimizer_is_a_usage_error():
    with pytest.raises(UsageError, match="optimizer = 'lion'"):
        build_optimizer("lion", [torch.nn.Parameter(torch.zeros(1))], 1e-3)


def test_training_split_follows_is_val(tmp_path):
    folder = make_tensor_folder(tmp_path, n_train=50)
    is_val = torch.cat([load_file(str(folder / f"bkg_train_{g}.safetensors"))["is_val"]
                        for g in ("pythia", "herwig")])
    train, val = load_training_split(read_manifest(folder), ("constituent",), torch.device("cpu"))
    assert len(val) == int(is_val.sum()) and len(train) + len(val) == 100
    assert train["constituent"].x.shape[1:] == (6, 3)
    assert train["constituent"].mask.dtype == torch.bool
    assert set(train.generator.tolist()) == {0, 1}  # each event carries its generator


def test_event_level_input_has_one_real_slot(tmp_path):
    folder = make_tensor_folder(tmp_path, n_train=20)
    entry = read_manifest(folder).of_flag("bkg_test")[0]
    inputs, _ = load_sample(folder, entry, ("event", "jet"))
    assert inputs["event"].x.shape == (200, 1, 3) and bool(inputs["event"].mask.all())
    assert inputs["jet"].x.shape == (200, 2, 4)


def test_bad_tensor_folders_are_data_errors(tmp_path):
    folder = make_tensor_folder(tmp_path, n_train=20)
    path = folder / "bkg_train_pythia.safetensors"
    tensors = load_file(str(path))
    del tensors["is_val"]
    save_file(tensors, str(path))
    with pytest.raises(DataError, match=r"missing tensor\(s\) is_val"):
        load_training_split(read_manifest(folder), ("constituent",), torch.device("cpu"))
    path.unlink()
    with pytest.raises(DataError, match="tensor file of sample 'bkg_train_pythia' not found"):
        load_training_split(read_manifest(folder), ("constituent",), torch.device("cpu"))
    (folder / "manifest.json").write_text(json.dumps({"samples": []}))
    with pytest.raises(DataError, match="malformed manifest"):
        read_manifest(folder)
