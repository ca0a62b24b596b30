"""Where a training run's batches come from: whole tensors in memory (the default for samples
that fit), or the prepared files read a few blocks at a time (:mod:`bead.training.stream`).

Both give the trainer the same things: the number of training events, each epoch's training
batches (this rank's part of them, with the loss factor of :func:`distributed.shard`), the
validation batches of this rank, and two events to probe the model with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor

from bead.models.batch import Batch
from bead.training import distributed
from bead.training.runtime import Runtime


def batch_slices(n: int, batch_size: int, order: Tensor | None = None,
                 max_batches: int | None = None) -> list[Tensor]:
    """Index tensors of ``ceil(n / batch_size)`` (at most ``max_batches``) near-equal batches
    (none of size 1 unless ``batch_size`` is 1), over ``order`` or over 0..n-1."""
    order = torch.arange(n) if order is None else order
    count = max(1, -(-n // batch_size))
    return list(torch.tensor_split(order, min(count, max_batches or count)))


class TrainingInputs(Protocol):
    """What the trainer reads its events from."""

    n_val: int

    def __len__(self) -> int: ...

    def probe_batch(self) -> Batch: ...

    def train_batches(self, epoch: int, seed: int,
                      batch_size: int) -> Iterator[tuple[Batch, Tensor | None]]: ...

    def val_batches(self, batch_size: int) -> Iterator[Batch]: ...


class InMemoryInputs:
    """Whole training and validation tensors on the device, batched through a shuffled index
    seeded per epoch (so a resumed run shuffles exactly as an uninterrupted one)."""

    def __init__(self, train: Batch, val: Batch, runtime: Runtime) -> None:
        self.train, self.runtime = train, runtime
        self.n_val = len(val)
        # In a process group every rank validates its share of the events.
        self.val = val if runtime.world_size == 1 else val.select(
            distributed.local_part(len(val), runtime).to(val.weight.device))
        self.shuffle = torch.Generator()

    def __len__(self) -> int:
        return len(self.train)

    def probe_batch(self) -> Batch:
        return self.train.select(torch.arange(min(2, len(self.train)),
                                              device=self.train.weight.device))

    def train_batches(self, epoch: int, seed: int,
                      batch_size: int) -> Iterator[tuple[Batch, Tensor | None]]:
        data, runtime = self.train, self.runtime
        self.shuffle.manual_seed(seed + epoch)
        order = torch.randperm(len(data), generator=self.shuffle).to(data.weight.device)
        batches = batch_slices(len(data), batch_size, order,
                               distributed.max_batches(len(data), runtime.world_size))
        for idx, scale in distributed.shard(batches, data.weight, runtime):
            yield data.select(idx), scale

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        order = torch.arange(len(self.val), device=self.val.weight.device)
        for idx in batch_slices(len(self.val), batch_size, order):
            yield self.val.select(idx)
