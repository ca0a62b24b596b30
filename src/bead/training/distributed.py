"""Distributed data-parallel training under torchrun (SPEC §8), on torch.distributed itself.

``torchrun --nproc_per_node=N -m bead -m train ...`` starts N processes with RANK, WORLD_SIZE
and LOCAL_RANK set; any process that finds them joins a process group (NCCL on CUDA, gloo on
CPUs), as does a plain run with ``use_ddp = true`` (a group of one). In the group:

* every rank trains on its share of each global batch: the same seeded permutation of the
  training events on every rank, each batch of ``batch_size`` events cut into ``world_size``
  parts (:func:`local_batches`), so the optimisation is that of one process with the same
  ``batch_size``, up to the order of float sums;
* epoch means are summed over ranks and rank 0's result is broadcast
  (:func:`reduce_sums`), so early stopping, the LR schedule and annealing decide alike
  everywhere;
* modes other than ``train`` run on rank 0 while the others wait (:func:`step_runner`), and
  only rank 0 writes files, logs and shows progress.

Torch is imported inside the functions: the CLI asks :func:`env_rank` before torch is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bead.errors import BeadError, DataError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from bead.config import Config
    from bead.training.runtime import Runtime

log = logging.getLogger(__name__)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
DEFAULT_TIMEOUT_S = 1800.0  # torch's own default for collectives
# Modes that every rank runs together; any other mode of a chain runs on rank 0 alone.
DISTRIBUTED_MODES = frozenset({"train"})


def launched_by_torchrun() -> bool:
    """Whether torchrun (or an equivalent launcher) set this process's rank variables."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def env_rank() -> int:
    """This process's rank from the launcher's environment (0 outside torchrun)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def wanted(config: Config | None) -> bool:
    """torchrun's environment always turns DDP on (N processes must not train N copies side by
    side); ``use_ddp = true`` turns it on for a single process too."""
    return launched_by_torchrun() or (config is not None and config.use_ddp)


def is_active() -> bool:
    """Whether this process is in a process group (torch already imported by the caller)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class Group:
    """This process's place in the process group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str


def _backend(config: Config | None) -> str:
    import torch

    wants_cuda = config is None or config.device in ("auto", "cuda") or \
        config.device.startswith("cuda")
    return "nccl" if wants_cuda and torch.cuda.is_available() else "gloo"


@contextlib.contextmanager
def process_group(config: Config | None) -> Iterator[Group | None]:
    """The process group of this run while the block runs (None when DDP is off)."""
    if not wanted(config) or _already_in_group():
        yield None
        return
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise UsageError("use_ddp / torchrun: this build of torch has no torch.distributed")
    backend = _backend(config)
    timeout = timedelta(seconds=config.ddp_timeout_s if config is not None
                        else DEFAULT_TIMEOUT_S)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    if launched_by_torchrun():
        dist.init_process_group(backend, timeout=timeout)
    else:
        log.info("use_ddp = true outside torchrun: a distributed run of one process (start "
                 "several with: torchrun --nproc_per_node=N -m bead -m train -p WS PROJ)")
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1,
                                timeout=timeout)
    group = Group(dist.get_rank(), dist.get_world_size(), local_rank, backend)
    if group.rank == 0:
        log.info("distributed training: %d processes, backend %s", group.world_size, backend)
    try:
        yield group
    finally:
        dist.destroy_process_group()


def _already_in_group() -> bool:
    """A caller (a test, a notebook) that set up its own group keeps it."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


class RankFailed(BeadError):
    """Rank 0 failed in a step that the other ranks waited for; it reported why."""

    def __init__(self, step: str, exit_code: int) -> None:
        super().__init__(f"rank 0 failed in {step} (its error is above)")
        self.exit_code = exit_code


def step_runner(device: torch.device | None = None) -> Callable[[str, Callable[[], None]], None]:
    """A function ``run(step, fn)`` that runs ``fn`` on every rank for DISTRIBUTED_MODES and on
    rank 0 alone for the others, the other ranks waiting for its outcome (a failure on rank 0
    then fails every rank, with rank 0's exit status)."""
    if not is_active():
        return lambda step, fn: fn()
    import torch
    import torch.distributed as dist

    rank = dist.get_rank()
    flag_device = device or (torch.device("cuda", torch.cuda.current_device())
                             if dist.get_backend() == "nccl" else torch.device("cpu"))

    def run(step: str, fn: Callable[[], None]) -> None:
        if step in DISTRIBUTED_MODES:
            fn()
            return
        failure: BaseException | None = None
        if rank == 0:
            try:
                fn()
            except BaseException as err:  # told to the waiting ranks, then raised here
                failure = err
        code = 0 if failure is None else getattr(failure, "exit_code", 1)
        flag = torch.tensor([code], dtype=torch.int64, device=flag_device)
        dist.broadcast(flag, src=0)
        if failure is not None:
            raise failure
        if int(flag.item()) != 0:
            raise RankFailed(step, int(flag.item()))

    return run


# --- the training side ------------------------------------------------------------------------


def check_world(n_train: int, n_val: int, batch_size: int, world_size: int,
                source: str) -> None:
    """Every rank needs events of its own in every batch and in the validation set."""
    if world_size == 1:
        return
    if n_train < world_size or n_val < world_size:
        raise DataError(f"{source}: {n_train} training and {n_val} validation events for "
                        f"{world_size} ranks: each rank needs events of its own; start at "
                        f"most {min(n_train, n_val)} processes")
    if batch_size < world_size:
        raise UsageError(f"batch_size = {batch_size} is smaller than the {world_size} ranks: "
                         "batch_size is the global batch, split across the ranks; raise it")


def shard(batches: list[Tensor], weight: Tensor,
          runtime: Runtime) -> list[tuple[Tensor, Tensor | None]]:
    """This rank's part of each global batch (near-equal parts, in rank order) and the factor
    of its loss: DDP averages the ranks' gradients, so a part's weighted mean is scaled by
    ``world_size * w_part / w_batch`` (sums of |w|) to give the gradient of the whole batch's
    weighted mean. None in one process."""
    world = runtime.world_size
    if world == 1:
        return [(b, None) for b in batches]
    import torch

    out = []
    for b in batches:
        part = torch.tensor_split(b, world)[runtime.rank]
        scale = world * weight[part].abs().sum() / weight[b].abs().sum().clamp(
            min=torch.finfo(weight.dtype).tiny)
        out.append((part, scale))
    return out


def local_part(n: int, runtime: Runtime) -> Tensor:
    """The indices of this rank's near-equal share of ``n`` events (validation)."""
    import torch

    return torch.tensor_split(torch.arange(n), runtime.world_size)[runtime.rank]


def seed_rank(seed: int, epoch: int, runtime: Runtime) -> None:
    """In a group of several ranks, a random stream per (seed, epoch, rank): the ranks' events
    get independent noise (VAE sampling, dropout), and a resumed run draws the same."""
    if runtime.world_size == 1:
        return
    import numpy as np
    import torch

    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, runtime.rank])
                          .generate_state(1, dtype=np.uint64)[0] >> 1))


def max_batches(n: int, world_size: int) -> int:
    """The most batches ``n`` events may be cut into so that every rank gets an event of every
    batch (no limit in one process, where a batch is at least one event anyway)."""
    return max(1, n // world_size)


def reduce_sums(sums: dict[str, Tensor], weight: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Sums over every rank, as rank 0 computed them (one broadcast makes every rank's value
    bit-identical, so every rank takes the same decisions)."""
    if not is_active() or _world() == 1:
        return sums, weight
    import torch
    import torch.distributed as dist

    names = sorted(sums)
    packed = torch.stack([*(sums[n].double() for n in names), weight.double()])
    dist.all_reduce(packed)
    dist.broadcast(packed, src=0)
    return ({n: packed[i] for i, n in enumerate(names)}, packed[-1])


def broadcast_weights(weights: dict[str, float], device: torch.device) -> dict[str, float]:
    """Rank 0's values of named loss weights (an annealing schedule's), on every rank."""
    if not weights or not is_active() or _world() == 1:
        return weights
    import torch
    import torch.distributed as dist

    names = sorted(weights)
    packed = torch.tensor([float(weights[n]) for n in names], dtype=torch.float64,
                          device=device)
    dist.broadcast(packed, src=0)
    return {n: float(v) for n, v in zip(names, packed.tolist(), strict=True)}


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size()


def wrap_model(model: torch.nn.Module, device: torch.device, probe: Callable[[], Any]) -> Any:
    """``model`` in DistributedDataParallel. ``probe`` runs one forward/backward on the bare
    model first: parameters that get no gradient would make DDP wait for them forever, so they
    turn on ``find_unused_parameters`` (buffers and the random state are put back, so the run
    is the same)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    probe()
    unused = [name for name, p in model.named_parameters()
              if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    torch.set_rng_state(cpu_state)
    if cuda_state is not None:
        torch.cuda.set_rng_state(cuda_state, device)
    if unused:
        log.debug("parameters without gradient (DDP finds them each step): %s",
                  ", ".join(unused))
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=bool(unused))
