"""Training inputs streamed from disk a few blocks at a time (data_mode = "stream")."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensor_folder import make_tensor_folder, shard_folder, small_config

from bead.errors import DataError
from bead.prepare.manifest import read_manifest
from bead.training import stream
from bead.training.data import load_training_split
from bead.training.runtime import Runtime
from bead.training.stream import StreamedInputs, should_stream
from bead.training.trainer import train

CPU = torch.device("cpu")
LEVELS = ("constituent",)


@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    return make_tensor_folder(tmp_path_factory.mktemp("tensors"))


def ids(batch) -> list[tuple[int, int]]:
    return list(zip(batch.generator.tolist(), batch.evt_id.tolist(), strict=True))


def test_an_epoch_sees_every_training_event_once_in_a_reproducible_order(tensors):
    manifest = read_manifest(tensors)
    inputs = StreamedInputs(manifest, LEVELS, CPU, Runtime(CPU), block_events=64)
    train_data, val_data = load_training_split(manifest, LEVELS, CPU)
    assert len(inputs) == len(train_data) and inputs.n_val == len(val_data)
    epoch = [b for b, scale in inputs.train_batches(1, 42, 50)]
    assert [len(b) for b in epoch[:-1]] == [50] * (len(epoch) - 1) and 0 < len(epoch[-1]) <= 50
    seen = [e for b in epoch for e in ids(b)]
    assert Counter(seen) == Counter(ids(train_data))  # each training event exactly once
    again = [e for b, _ in inputs.train_batches(1, 42, 50) for e in ids(b)]
    other = [e for b, _ in inputs.train_batches(2, 42, 50) for e in ids(b)]
    assert again == seen and other != seen and sorted(other) == sorted(seen)
    val = [e for b in inputs.val_batches(7) for e in ids(b)]
    assert sorted(val) == sorted(ids(val_data))
    # the inputs are those of the files, event by event
    first = epoch[0]
    position = {e: i for i, e in enumerate(ids(train_data))}
    rows = torch.tensor([position[e] for e in ids(first)])
    assert torch.equal(first["constituent"].x, train_data["constituent"].x[rows])
    assert torch.equal(first["constituent"].mask, train_data["constituent"].mask[rows])


def test_ranks_stream_disjoint_blocks_in_equal_steps(tensors):
    manifest = read_manifest(tensors)
    ranks = [StreamedInputs(manifest, LEVELS, CPU, Runtime(CPU, rank=r, world_size=2),
                            block_events=64) for r in (0, 1)]
    epochs = [[b for b, _ in r.train_batches(3, 42, 40)] for r in ranks]
    assert len(epochs[0]) == len(epochs[1]) > 0
    assert all(len(b) == 20 for e in epochs for b in e)  # batch_size / world each
    seen = [set(e for b in epoch for e in ids(b)) for epoch in epochs]
    assert not seen[0] & seen[1]
    val = [set(e for b in r.val_batches(1000) for e in ids(b)) for r in ranks]
    assert not val[0] & val[1] and len(val[0] | val[1]) == ranks[0].n_val


def test_streamed_training_learns_and_resumes_exactly(tmp_path, tensors):
    config = small_config(data_mode="stream", epochs=4, lr_scheduler_patience=1)
    whole = train(config, tensors, tmp_path / "a/models", tmp_path / "a/results", progress=False)
    val = whole.history.val["total"]
    assert val[-1] < 0.7 * val[0]
    half = small_config(data_mode="stream", epochs=2, lr_scheduler_patience=1)
    train(half, tensors, tmp_path / "b/models", tmp_path / "b/results", progress=False)
    resumed = train(config, tensors, tmp_path / "b/models", tmp_path / "b/results",
                    progress=False, resume=True)
    assert resumed.history.val == whole.history.val
    history = json.loads((tmp_path / "b/results/history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4]


def test_a_missing_or_truncated_file_is_one_clear_error(tmp_path):
    folder = make_tensor_folder(tmp_path / "t", n_train=50)
    path = folder / "bkg_train_pythia.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"bkg_train_pythia\.safetensors: .*damaged or "
                                        r"truncated \(rerun prepare_inputs\)"):
        StreamedInputs(read_manifest(folder), LEVELS, CPU, Runtime(CPU))
    path.unlink()
    with pytest.raises(DataError, match=r"bkg_train_pythia\.safetensors: tensor file not found"):
        StreamedInputs(read_manifest(folder), LEVELS, CPU, Runtime(CPU))


def test_more_ranks_than_blocks_is_refused(tensors):
    with pytest.raises(DataError, match=r"to stream over 4 ranks.*data_mode = 'memory'"):
        StreamedInputs(read_manifest(tensors), LEVELS, CPU, Runtime(CPU, world_size=4))


def test_auto_streams_when_the_inputs_outgrow_the_free_memory(tensors, monkeypatch):
    manifest = read_manifest(tensors)
    need = stream.input_bytes(manifest, LEVELS)
    x = load_file(str(tensors / "bkg_train_pythia.safetensors"))["constituents"]
    assert need == 2 * (x.numel() * 4 + x.shape[0] * x.shape[1])  # two bkg_train files
    assert not should_stream("auto", manifest, LEVELS)  # a toy sample fits
    assert should_stream("stream", manifest, LEVELS) and not should_stream("memory", manifest,
                                                                           LEVELS)
    pages = {"SC_AVPHYS_PAGES": need // 4096, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(stream.os, "sysconf", pages.__getitem__)
    assert should_stream("auto", manifest, LEVELS)


def test_shards_stream_and_load_as_one_file(tmp_path, tensors):
    """A sample prepared in several shards trains on the same events as one file would."""
    sharded = shard_folder(Path(shutil.copytree(tensors, tmp_path / "t")), 3)
    manifest = read_manifest(sharded)
    assert all(len(e.shards) == 3 for e in manifest.samples)
    train_data, val_data = load_training_split(read_manifest(tensors), LEVELS, CPU)
    split = load_training_split(manifest, LEVELS, CPU)
    for whole, parts in zip((train_data, val_data), split, strict=True):
        assert ids(parts) == ids(whole)
        assert torch.equal(parts["constituent"].x, whole["constituent"].x)
    inputs = StreamedInputs(manifest, LEVELS, CPU, Runtime(CPU), block_events=64)
    seen = [e for b, _ in inputs.train_batches(1, 42, 50) for e in ids(b)]
    assert Counter(seen) == Counter(ids(train_data))
