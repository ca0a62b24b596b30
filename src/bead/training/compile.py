"""``compile = true``: the training forward pass through ``torch.compile``, with a way back.

Compilation happens at the first call and can fail for reasons outside BEAD (no C++ compiler,
an operator the compiler does not support, an old GPU); training then goes on in eager mode
after one warning, rather than stopping.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


class CompiledForward(nn.Module):
    """Calls the compiled ``module`` until a call fails, then the eager one for good."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.compiled: Any = torch.compile(module)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:  # the compiler's errors have many types
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                log.warning("compile = true: torch.compile failed (%s: %s); training in eager "
                            "mode", type(err).__name__, first[:200])
                self.compiled = None
        return self.module(*args, **kwargs)


def compiled_forward(module: nn.Module) -> nn.Module:
    """``module`` behind :class:`CompiledForward`."""
    return CompiledForward(module)
