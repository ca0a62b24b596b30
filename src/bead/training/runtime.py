"""Runtime facts of one process (device, precision, rank): kept apart from the immutable Config.

``rank`` and ``world_size`` come from the process group that :mod:`bead.training.distributed`
set up under torchrun (else one process, its own main rank). Only the main rank writes files.
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

FP16_CAPABILITY = (5, 3)  # the first CUDA compute capability with float16 arithmetic


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
    """The runtime of this process under ``config``: in a process group, its rank and, on CUDA,
    the GPU of its local rank."""
    rank, world_size = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    device = select_device(config.device)
    if world_size > 1 and device.type == "cuda" and device.index is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    amp_dtype = amp_dtype_for(device) if config.use_amp else None
    if amp_dtype is not None and rank == 0:
        log.info("mixed precision on %s: %s%s", device.type, str(amp_dtype).removeprefix("torch."),
                 " with a gradient scaler" if amp_dtype == torch.float16 else "")
    return Runtime(device=device, amp_dtype=amp_dtype, rank=rank, world_size=world_size)


def amp_dtype_for(device: torch.device) -> torch.dtype:
    """The autocast dtype of ``use_amp`` on ``device``: bfloat16 where the device computes in it
    (same range as float32, no loss scaling), else float16 (with a gradient scaler)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= FP16_CAPABILITY:
            return torch.float16
        raise UsageError(f"use_amp = true, but {torch.cuda.get_device_name(device)} (compute "
                         f"capability {major}.{minor}) computes in neither bfloat16 nor float16; "
                         "set use_amp = false")
    if device.type == "cpu":
        if not torch.amp.is_autocast_available("cpu"):
            raise UsageError("use_amp = true, but this torch build has no CPU autocast; set "
                             "use_amp = false")
        if not _cpu_has_bf16():
            log.warning("use_amp = true on a CPU without native bfloat16 instructions "
                        "(AVX512-BF16 or AMX): bfloat16 is emulated here and slower than "
                        "float32; set use_amp = false for speed")
        return torch.bfloat16
    raise UsageError(f"use_amp = true is not supported on {device.type} (CUDA: bf16 or fp16; "
                     "CPU: bf16); set use_amp = false")


def _cpu_has_bf16() -> bool:
    """Whether oneDNN finds bfloat16 instructions on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
