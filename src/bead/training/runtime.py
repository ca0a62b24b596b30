"""Runtime facts of one process (device, precision, rank): kept apart from the immutable Config.

Distributed training will fill ``rank`` and ``world_size`` from torchrun; until then a run is
one process that is its own main rank. Only the main rank writes files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from bead.config import Config
from bead.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Where and how this process computes.

    ``amp_dtype`` is None when autocast is off; ``use_grad_scaler`` is true only for float16,
    whose narrow range needs loss scaling (bfloat16 does not).
    """

    device: torch.device
    amp_dtype: torch.dtype | None = None
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def use_grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Mixed-precision context for forward passes (a no-op when AMP is off)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable request is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device = '{name}' but no CUDA device is available; use 'auto'")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device = '{name}' but only {torch.cuda.device_count()} CUDA "
                             "device(s) exist")
        return device
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device = 'mps' but MPS is not available; use 'auto'")
    return torch.device(name)


def make_runtime(config: Config) -> Runtime:
    """The runtime of a single-process run under ``config``."""
    device = select_device(config.device)
    amp_dtype = None
    if config.use_amp:
        if device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            log.info("mixed precision on: %s", str(amp_dtype).removeprefix("torch."))
        else:
            log.info("use_amp is ignored on %s: mixed precision is used on CUDA only",
                     device.type)
    return Runtime(device=device, amp_dtype=amp_dtype)


def seed_everything(seed: int) -> None:
    """Seed every generator a model or a library might draw from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Turn on torch's deterministic algorithms for the block, then restore the previous state.

    cuBLAS needs a fixed workspace to be deterministic; it is set unless the user chose one.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.benchmark = previous_benchmark
