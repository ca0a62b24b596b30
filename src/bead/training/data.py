"""Model-ready tensors on disk (written by prepare_inputs) to in-memory model inputs.

Everything stays a tensor: samples are concatenated once and later batched by index, so the
training and scoring loops never touch single events in Python.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from bead.errors import DataError, UsageError
from bead.levels import LevelLayout
from bead.models.batch import Batch, Level
from bead.prepare.manifest import Manifest, SampleEntry
from bead.stats import effective_count

log = logging.getLogger(__name__)

_LEVEL_KEYS = {"constituent": ("constituents", "constituent_mask"), "jet": ("jets", "jet_mask"),
               "event": ("events", None)}
_COMMON_KEYS = ("weight", "evt_id")


def _require(tensors: dict[str, Tensor], keys: tuple[str, ...], path: Path) -> None:
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise DataError(f"{path}: missing tensor(s) {', '.join(missing)} "
                        "(rerun prepare_inputs)")


def load_sample(
    tensors_dir: Path, entry: SampleEntry, levels: tuple[str, ...], generator: int = -1
) -> tuple[Batch, dict[str, Tensor]]:
    """One sample's inputs at ``levels`` (every event carrying the label ``generator``), and
    every raw tensor of its file."""
    path = Path(tensors_dir) / entry.file
    if not path.is_file():
        raise DataError(f"{path}: tensor file of sample '{entry.stem}' not found "
                        "(rerun prepare_inputs)")
    tensors = load_file(str(path), device="cpu")
    _require(tensors, _COMMON_KEYS, path)
    n = len(tensors["weight"])
    out: dict[str, Level] = {}
    for level in levels:
        x_key, mask_key = _LEVEL_KEYS[level]
        _require(tensors, (x_key, *([mask_key] if mask_key else [])), path)
        x = tensors[x_key].to(torch.float32)
        if mask_key is None:  # the event vector: one slot per event
            x = x[:, None, :]
            mask = torch.ones(x.shape[:2], dtype=torch.bool)
        else:
            mask = tensors[mask_key].to(torch.bool)
        if x.dim() != 3 or mask.shape != x.shape[:2] or len(x) != n:
            raise DataError(f"{path}: inconsistent {level} shapes: x {list(x.shape)}, mask "
                            f"{list(mask.shape)}, {n} events")
        out[level] = Level(x, mask)
    batch = Batch(out, tensors["weight"].to(torch.float32),
                  torch.full((n,), generator, dtype=torch.int64),
                  tensors["evt_id"].to(torch.int64))
    return batch, tensors


def sample_layout(manifest: Manifest, batch: Batch) -> dict[str, LevelLayout]:
    """The layout a model is built for: slots from the tensors, feature names from the
    manifest (their count checked against the tensors)."""
    layout = {}
    for level, lv in batch.levels.items():
        names = tuple(manifest.features.get(level, ()))
        if len(names) != lv.x.shape[-1]:
            raise DataError(f"{manifest.path}: {len(names)} {level} feature names for "
                            f"{lv.x.shape[-1]} columns (rerun prepare_inputs)")
        layout[level] = LevelLayout(lv.x.shape[1], names)
    return layout


def _training_weights(data: Batch, weighted: bool, source: Path) -> Batch:
    """Unit weights, or the event weights once they are fit to train on.

    A negative weight would make the optimiser maximise that event's loss, so weighted training
    refuses them; a sample dominated by a few weights trains on those few, so it is reported.
    """
    if not weighted:
        return data.with_weight(torch.ones_like(data.weight))
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


def holdout_generators(text: str) -> tuple[str, ...]:
    """The generators named by ``holdout_generator`` ("a" or "a+b"; empty: none)."""
    return tuple(g for g in text.split("+") if g)


def _held_out(entries: list[SampleEntry], holdout: tuple[str, ...],
              path: Path) -> list[SampleEntry]:
    """The bkg_train samples left once the ``holdout`` generators are skipped (the enrichment
    test). The scalers stay as prepared: fitted on every bkg_train sample, the held-out ones
    included, so only their feature scaling, never the model, has seen them."""
    present = sorted({e.generator for e in entries})
    unknown = [g for g in holdout if g not in present]
    if unknown:
        raise UsageError(f"holdout_generator = '{'+'.join(holdout)}': {unknown[0]!r} is not "
                         f"among the prepared bkg_train generators ({', '.join(present)}) of "
                         f"{path}")
    kept = [e for e in entries if e.generator not in holdout]
    if not kept:
        raise UsageError(f"holdout_generator = '{'+'.join(holdout)}' holds out every bkg_train "
                         f"generator ({', '.join(present)}): nothing is left to train on")
    if holdout:
        skipped = sum(e.n_events for e in entries if e.generator in holdout)
        log.info("holding out %s: %d bkg_train events not trained on (the scalers were fitted "
                 "on them too)", ", ".join(holdout), skipped)
    return kept


def load_training_split(
    manifest: Manifest, levels: tuple[str, ...], device: torch.device, weighted: bool = False,
    holdout: tuple[str, ...] = (),
) -> tuple[Batch, Batch]:
    """All ``bkg_train`` samples of ``manifest`` except those of the ``holdout`` generators,
    concatenated and split by ``is_val``, on ``device``; unit weights unless ``weighted``;
    each event labelled with its generator."""
    tensors_dir = manifest.path.parent
    entries = manifest.of_flag("bkg_train")
    if not entries:
        raise DataError(f"{manifest.path}: no bkg_train sample to train on")
    entries = _held_out(entries, holdout, manifest.path)
    parts, flags = [], []
    for entry in entries:
        label = manifest.generators.index(entry.generator) \
            if entry.generator in manifest.generators else -1
        batch, tensors = load_sample(tensors_dir, entry, levels, label)
        _require(tensors, ("is_val",), Path(tensors_dir) / entry.file)
        parts.append(batch)
        flags.append(tensors["is_val"].to(torch.bool))
    for level in levels:
        shapes = {tuple(p[level].x.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise DataError(f"{manifest.path}: bkg_train samples have different {level} "
                            f"input shapes {sorted(shapes)} (rerun prepare_inputs)")
    data = _training_weights(Batch.cat(parts), weighted, manifest.path)
    is_val = torch.cat(flags)
    train, val = data.select(~is_val), data.select(is_val)
    for name, split in (("training", train), ("validation", val)):
        if len(split) == 0:
            raise DataError(f"{manifest.path}: the bkg_train samples have no {name} events "
                            "(more events or another train_size needed)")
    return train.to(device), val.to(device)
