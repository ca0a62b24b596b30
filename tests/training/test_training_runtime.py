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
from bead.training.runtime import amp_dtype_for, make_runtime, select_device


def test_auto_device_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_usage_error():
    with pytest.raises(UsageError, match="no CUDA device"):
        select_device("cuda:0")


def test_amp_runs_bf16_on_cpu(caplog):
    with caplog.at_level(logging.INFO, logger="bead.training.runtime"):
        runtime = make_runtime(small_config(use_amp=True))
    assert runtime.amp_dtype == torch.bfloat16 and not runtime.use_grad_scaler
    assert "mixed precision on cpu: bfloat16" in caplog.text
    assert runtime.is_main and runtime.world_size == 1
    assert make_runtime(small_config()).amp_dtype is None


@pytest.mark.parametrize(("bf16", "capability", "expected"), [
    (True, (8, 0), torch.bfloat16), (False, (7, 5), torch.float16), (False, (5, 0), None)])
def test_amp_on_cuda_prefers_bf16_then_fp16_then_says_why_not(monkeypatch, bf16, capability,
                                                              expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Old GPU")
    if expected is None:
        with pytest.raises(UsageError, match=r"Old GPU \(compute capability 5\.0\) computes "
                                             r"in neither bfloat16 nor float16; set use_amp"):
            amp_dtype_for(torch.device("cuda", 0))
    else:
        assert amp_dtype_for(torch.device("cuda", 0)) == expected


def test_amp_on_an_unsupported_device_is_one_clear_line():
    with pytest.raises(UsageError, match="use_amp = true is not supported on mps"):
        amp_dtype_for(torch.device("mps"))


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
