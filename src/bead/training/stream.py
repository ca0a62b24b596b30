"""Training on inputs larger than memory: the prepared safetensors files, memory-mapped and read a
few blocks of events at a time (``data_mode = "stream"``, or ``"auto"`` for a large sample).

Each bkg_train file is cut into blocks of ``BLOCK_EVENTS`` consecutive events. Every epoch the
blocks are put in a seeded random order (the same on every rank; rank r takes blocks r, r+N,
...), read ``WINDOW_BLOCKS`` at a time, and the training events of a window are shuffled by a
generator seeded by (seed, epoch, rank, window) and cut into batches; what is left of a window
starts the next one. So only a window of events is in memory (plus one byte and four bytes per
event for the split and the weights), and an epoch's order is reproducible, also after a
resume. The order is a blocked shuffle, not the global permutation of the in-memory path, so
the two modes train alike but not bit for bit.

In a process group each rank trains on batches of ``batch_size / world_size`` events and every
rank takes the same number of steps (what the ranks' block shares leave over is dropped in that
epoch, a different few events each epoch); DDP's gradient average of equal-sized parts is the
gradient of the whole batch's mean.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from bead.errors import DataError
from bead.models.batch import Batch, Level
from bead.prepare.manifest import Manifest
from bead.training import distributed
from bead.training.data import LEVEL_KEYS, check_training_weights, without_holdout
from bead.training.runtime import Runtime

log = logging.getLogger(__name__)

BLOCK_EVENTS = 16384
WINDOW_BLOCKS = 2
# data_mode = "auto" streams when the training inputs would take more than this share of the
# memory available now (shared by the ranks of this node).
AUTO_MEMORY_SHARE = 0.25


@dataclass(frozen=True)
class _Block:
    file: int  # index into the sources
    start: int
    stop: int
    n_train: int
    n_val: int


@dataclass
class _Source:
    path: Path
    generator: int
    is_val: Tensor  # [N] bool, kept in memory
    weight: Tensor  # [N] float32 training weights, kept in memory


def _read_rows(path: Path, keys: list[str], start: int, stop: int) -> dict[str, Tensor]:
    """Rows ``start:stop`` of the tensors ``keys`` (only those bytes are read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_slice(key)[start:stop] for key in keys}
    except (SafetensorError, OSError, RuntimeError) as err:
        raise DataError(f"{path}: cannot read events {start}-{stop} ({err}); the file is "
                        "damaged or truncated (rerun prepare_inputs)") from None


def _header(path: Path) -> dict[str, list[int]]:
    """Tensor shapes of a safetensors file, from its header alone."""
    if not path.is_file():
        raise DataError(f"{path}: tensor file not found (rerun prepare_inputs)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError) as err:
        raise DataError(f"{path}: not a readable tensor file ({err}); the file is damaged or "
                        "truncated (rerun prepare_inputs)") from None


def input_bytes(manifest: Manifest, levels: tuple[str, ...]) -> int:
    """Bytes the bkg_train inputs at ``levels`` take in memory (float32 values, bool masks)."""
    total = 0
    for file in (f for entry in manifest.of_flag("bkg_train") for f in entry.shards):
        shapes = _header(manifest.path.parent / file)
        for level in levels:
            shape = shapes.get(LEVEL_KEYS[level][0], [0, 1])
            values = int(np.prod(shape))
            total += 4 * values + values // max(1, shape[-1])  # + one mask byte per slot
    return total


def should_stream(mode: str, manifest: Manifest, levels: tuple[str, ...]) -> bool:
    """``data_mode``: memory, stream, or auto (stream above AUTO_MEMORY_SHARE of the memory
    available to this node's ranks)."""
    if mode != "auto":
        return mode == "stream"
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return False
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    need = input_bytes(manifest, levels)
    stream = need * ranks_here > AUTO_MEMORY_SHARE * available
    if stream:
        log.info("streaming the training inputs (%.1f GB, more than %.0f%% of the %.1f GB "
                 "available)", need / 1e9, 100 * AUTO_MEMORY_SHARE, available / 1e9)
    return stream


class StreamedInputs:
    """bkg_train samples read from disk block by block (see the module docstring)."""

    def __init__(self, manifest: Manifest, levels: tuple[str, ...], device: torch.device,
                 runtime: Runtime, weighted: bool = False, holdout: tuple[str, ...] = (),
                 block_events: int = BLOCK_EVENTS) -> None:
        self.levels, self.device, self.runtime = levels, device, runtime
        entries = manifest.of_flag("bkg_train")
        if not entries:
            raise DataError(f"{manifest.path}: no bkg_train sample to train on")
        entries = without_holdout(entries, holdout, manifest.path)
        self.sources: list[_Source] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        for entry, file in ((e, f) for e in entries for f in e.shards):
            path = manifest.path.parent / file
            shapes = _header(path)
            self._check(path, shapes)
            label = manifest.generators.index(entry.generator) \
                if entry.generator in manifest.generators else -1
            rows = _read_rows(path, ["is_val", "weight"], 0, shapes["weight"][0])
            self.sources.append(_Source(path, label, rows["is_val"].to(torch.bool),
                                        rows["weight"].to(torch.float32)))
        weights = torch.cat([s.weight for s in self.sources])
        checked = check_training_weights(weights, weighted, manifest.path)
        offset = 0
        for source in self.sources:
            source.weight = checked[offset:offset + len(source.weight)]
            offset += len(source.weight)
        self.blocks = [
            _Block(i, start, min(start + block_events, len(s.is_val)),
                   int((~s.is_val[start:start + block_events]).sum()),
                   int(s.is_val[start:start + block_events].sum()))
            for i, s in enumerate(self.sources)
            for start in range(0, len(s.is_val), block_events)]
        self.n_train = sum(b.n_train for b in self.blocks)
        self.n_val = sum(b.n_val for b in self.blocks)
        for name, n in (("training", self.n_train), ("validation", self.n_val)):
            if n == 0:
                raise DataError(f"{manifest.path}: the bkg_train samples have no {name} events "
                                "(more events or another train_size needed)")
        world = runtime.world_size
        if sum(b.n_train > 0 for b in self.blocks) < world:
            raise DataError(f"{manifest.path}: {len(self.blocks)} blocks of up to "
                            f"{block_events} events to stream over {world} ranks; each rank "
                            "needs blocks of its own: use data_mode = 'memory' or fewer ranks")

    def _check(self, path: Path, shapes: dict[str, list[int]]) -> None:
        keys = ["weight", "evt_id", "is_val"]
        for level in self.levels:
            x_key, mask_key = LEVEL_KEYS[level]
            keys += [x_key, *([mask_key] if mask_key else [])]
        missing = [k for k in keys if k not in shapes]
        if missing:
            raise DataError(f"{path}: missing tensor(s) {', '.join(missing)} "
                            "(rerun prepare_inputs)")
        n = shapes["weight"][0]
        if any(shapes[k][0] != n for k in keys):
            raise DataError(f"{path}: tensors of different lengths (rerun prepare_inputs)")
        for level in self.levels:
            x_key, _ = LEVEL_KEYS[level]
            shape = tuple(shapes[x_key][1:]) if level != "event" else (1, shapes[x_key][1])
            if self.shapes.setdefault(level, shape) != shape:
                raise DataError(f"{path}: {level} inputs of shape {list(shape)}, other bkg_train "
                                f"samples have {list(self.shapes[level])} (rerun prepare_inputs)")

    def __len__(self) -> int:
        return self.n_train

    # --- reading -----------------------------------------------------------------------------

    def _read(self, block: _Block, want_val: bool) -> Batch:
        """The training (or validation) events of ``block``, on the device."""
        source = self.sources[block.file]
        rows = source.is_val[block.start:block.stop] == want_val
        keys = ["evt_id"]
        for level in self.levels:
            keys += [k for k in LEVEL_KEYS[level] if k is not None]
        read = _read_rows(source.path, keys, block.start, block.stop)
        out = {}
        for level in self.levels:
            x_key, mask_key = LEVEL_KEYS[level]
            x = read[x_key][rows].to(torch.float32)
            if mask_key is None:
                x = x[:, None, :]
                mask = torch.ones(x.shape[:2], dtype=torch.bool)
            else:
                mask = read[mask_key][rows].to(torch.bool)
            out[level] = Level(x, mask)
        n = int(rows.sum())
        batch = Batch(out, source.weight[block.start:block.stop][rows],
                      torch.full((n,), source.generator, dtype=torch.int64),
                      read["evt_id"][rows].to(torch.int64))
        return batch.to(self.device)

    def probe_batch(self) -> Batch:
        block = next(b for b in self.blocks if b.n_train > 0)
        batch = self._read(block, want_val=False)
        return batch.select(torch.arange(min(2, len(batch)), device=batch.weight.device))

    def train_batches(self, epoch: int, seed: int,
                      batch_size: int) -> Iterator[tuple[Batch, Tensor | None]]:
        rank, world = self.runtime.rank, self.runtime.world_size
        order = torch.randperm(len(self.blocks), generator=torch.Generator().manual_seed(
            seed + epoch)).tolist()
        local = max(1, batch_size // world)
        steps = None  # in one process the last, smaller batch of the epoch is kept
        if world > 1:
            steps = min(sum(self.blocks[i].n_train for i in order[r::world]) // local
                        for r in range(world))
        mine = [self.blocks[i] for i in order[rank::world]]
        left: Batch | None = None
        done = 0
        for w in range(0, len(mine), WINDOW_BLOCKS):
            reads = (self._read(b, want_val=False) for b in mine[w:w + WINDOW_BLOCKS])
            window = Batch.cat([*([left] if left is not None else []), *reads])
            gen = torch.Generator().manual_seed(
                int(np.random.SeedSequence([seed, epoch, rank, w]).generate_state(1)[0]))
            window = window.select(torch.randperm(len(window), generator=gen).to(self.device))
            full = len(window) // local * local
            for start in range(0, full, local):
                if steps is not None and done == steps:
                    return
                yield window.select(torch.arange(start, start + local, device=self.device)), \
                    None
                done += 1
            left = window.select(torch.arange(full, len(window), device=self.device))
        if steps is None and left is not None and len(left) > 0:
            yield left, None

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        """This rank's validation events: its share of the blocks that hold some, or, with
        fewer such blocks than ranks (a small validation set), its share of all of them."""
        rank, world = self.runtime.rank, self.runtime.world_size
        blocks = [b for b in self.blocks if b.n_val > 0]
        if len(blocks) >= world:
            parts = (self._read(b, want_val=True) for b in blocks[rank::world])
        else:
            every = Batch.cat([self._read(b, want_val=True) for b in blocks])
            parts = iter([every.select(distributed.local_part(len(every), self.runtime)
                                       .to(self.device))])
        for batch in parts:
            for start in range(0, len(batch), batch_size):
                yield batch.select(torch.arange(start, min(start + batch_size, len(batch)),
                                                device=self.device))
