"""Model-ready tensors on disk (written by prepare_inputs) to in-memory model inputs.

Everything stays a tensor: samples are concatenated once and later batched by index, so the
training and scoring loops never touch single events in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from bead.errors import DataError
from bead.prepare.manifest import Manifest, SampleEntry
from bead.stats import effective_count

log = logging.getLogger(__name__)

INPUT_LEVELS = ("event", "jet", "constituent")
_LEVEL_KEYS = {"constituent": ("constituents", "constituent_mask"), "jet": ("jets", "jet_mask")}
_COMMON_KEYS = ("weight", "evt_id")


@dataclass
class ModelInputs:
    """Inputs of a set of events: ``x [N, S, F]``, ``mask [N, S]`` and per-event columns."""

    x: Tensor
    mask: Tensor
    weight: Tensor
    evt_id: Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def select(self, index: Tensor) -> ModelInputs:
        return ModelInputs(self.x[index], self.mask[index], self.weight[index],
                           self.evt_id[index])

    def to(self, device: torch.device) -> ModelInputs:
        return ModelInputs(self.x.to(device), self.mask.to(device), self.weight.to(device),
                           self.evt_id.to(device))

    @staticmethod
    def cat(parts: list[ModelInputs]) -> ModelInputs:
        return ModelInputs(*(torch.cat([getattr(p, k) for p in parts])
                             for k in ("x", "mask", "weight", "evt_id")))


def _require(tensors: dict[str, Tensor], keys: tuple[str, ...], path: Path) -> None:
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise DataError(f"{path}: missing tensor(s) {', '.join(missing)} "
                        "(rerun prepare_inputs)")


def load_sample(
    tensors_dir: Path, entry: SampleEntry, input_level: str
) -> tuple[ModelInputs, dict[str, Tensor]]:
    """Load one sample's model inputs for ``input_level``, and every raw tensor of its file."""
    if input_level not in INPUT_LEVELS:
        raise DataError(f"input_level '{input_level}' is not one of {', '.join(INPUT_LEVELS)}")
    path = Path(tensors_dir) / entry.file
    if not path.is_file():
        raise DataError(f"{path}: tensor file of sample '{entry.stem}' not found "
                        "(rerun prepare_inputs)")
    tensors = load_file(str(path), device="cpu")
    if input_level == "event":
        _require(tensors, ("events", *_COMMON_KEYS), path)
        x = tensors["events"][:, None, :]
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
    else:
        x_key, mask_key = _LEVEL_KEYS[input_level]
        _require(tensors, (x_key, mask_key, *_COMMON_KEYS), path)
        x, mask = tensors[x_key], tensors[mask_key].to(torch.bool)
    inputs = ModelInputs(x.to(torch.float32), mask, tensors["weight"].to(torch.float32),
                         tensors["evt_id"].to(torch.int64))
    if x.dim() != 3 or mask.shape != x.shape[:2] or len(inputs.weight) != len(x):
        raise DataError(f"{path}: inconsistent shapes: x {list(x.shape)}, mask "
                        f"{list(mask.shape)}, weight {list(inputs.weight.shape)}")
    return inputs, tensors


def _training_weights(data: ModelInputs, weighted: bool, source: Path) -> ModelInputs:
    """Unit weights, or the event weights once they are fit to train on.

    A negative weight would make the optimiser maximise that event's loss, so weighted training
    refuses them; a sample dominated by a few weights trains on those few, so it is reported.
    """
    if not weighted:
        return ModelInputs(data.x, data.mask, torch.ones_like(data.weight), data.evt_id)
    w = data.weight.double()
    if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
        raise DataError(
            f"{source}: weighted_training needs finite, non-negative event weights with a "
            f"positive sum; bkg_train has {int((w < 0).sum())} negative of {len(w)} "
            f"(sum {float(w.sum()):.4g}); set weighted_training = false")
    n_eff = effective_count(w.cpu().numpy())
    if n_eff < 0.1 * len(w):
        log.warning("weighted training: the bkg_train weights are as good as %.0f events of "
                    "%d (Kish N_eff); a few events will drive the model", n_eff, len(w))
    return data


def load_training_split(
    manifest: Manifest, input_level: str, device: torch.device, weighted: bool = False
) -> tuple[ModelInputs, ModelInputs]:
    """All ``bkg_train`` samples of ``manifest``, concatenated and split by ``is_val``, on
    ``device``; unit weights unless ``weighted``."""
    tensors_dir = manifest.path.parent
    entries = manifest.of_flag("bkg_train")
    if not entries:
        raise DataError(f"{manifest.path}: no bkg_train sample to train on")
    parts, flags = [], []
    for entry in entries:
        inputs, tensors = load_sample(tensors_dir, entry, input_level)
        _require(tensors, ("is_val",), Path(tensors_dir) / entry.file)
        parts.append(inputs)
        flags.append(tensors["is_val"].to(torch.bool))
    shapes = {tuple(p.x.shape[1:]) for p in parts}
    if len(shapes) > 1:
        raise DataError(f"{manifest.path}: bkg_train samples have different input shapes "
                        f"{sorted(shapes)} (rerun prepare_inputs)")
    data = _training_weights(ModelInputs.cat(parts), weighted, manifest.path)
    is_val = torch.cat(flags)
    train, val = data.select(~is_val), data.select(is_val)
    for name, split in (("training", train), ("validation", val)):
        if len(split) == 0:
            raise DataError(f"{manifest.path}: the bkg_train samples have no {name} events "
                            "(more events or another train_size needed)")
    return train.to(device), val.to(device)
