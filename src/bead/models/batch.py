"""The multi-level batch every model reads (DESIGN: Batches).

Each input level is a padded set ``x [B, S, F]`` with its real-slot ``mask [B, S]``; the event
level is one slot per event (``x[:, 0]`` is the event vector). Beside the levels a batch carries
the event weight, the background-generator label (-1 for signal or unknown, for contrastive
terms on the generators) and the event id. Batches are cut from whole-sample tensors by index,
so no loop ever touches single events in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Level:
    x: Tensor  # [B, S, F]
    mask: Tensor  # [B, S] bool

    def select(self, index: Tensor) -> Level:
        return Level(self.x[index], self.mask[index])

    def to(self, device: torch.device) -> Level:
        return Level(self.x.to(device, non_blocking=True), self.mask.to(device, non_blocking=True))


@dataclass
class Batch:
    levels: dict[str, Level]
    weight: Tensor  # [B]
    generator: Tensor  # [B] int64: index into the manifest's generators, -1 for none
    evt_id: Tensor  # [B] int64

    def __len__(self) -> int:
        return self.weight.shape[0]

    def __getitem__(self, level: str) -> Level:
        return self.levels[level]

    def select(self, index: Tensor) -> Batch:
        return Batch({k: v.select(index) for k, v in self.levels.items()}, self.weight[index],
                     self.generator[index], self.evt_id[index])

    def to(self, device: torch.device) -> Batch:
        return Batch({k: v.to(device) for k, v in self.levels.items()},
                     self.weight.to(device), self.generator.to(device), self.evt_id.to(device))

    def with_weight(self, weight: Tensor) -> Batch:
        return Batch(self.levels, weight, self.generator, self.evt_id)

    def with_levels(self, levels: dict[str, Level]) -> Batch:
        return Batch(levels, self.weight, self.generator, self.evt_id)

    @staticmethod
    def cat(parts: list[Batch]) -> Batch:
        levels = {name: Level(torch.cat([p.levels[name].x for p in parts]),
                              torch.cat([p.levels[name].mask for p in parts]))
                  for name in parts[0].levels}
        return Batch(levels, *(torch.cat([getattr(p, k) for p in parts])
                               for k in ("weight", "generator", "evt_id")))
