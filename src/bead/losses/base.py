"""The result every loss returns and the base class every loss derives from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from bead.errors import UsageError
from bead.models.base import ModelOutput


@dataclass
class LossResult:
    """``total`` is the scalar to backpropagate (weighted batch mean of the per-event total);
    ``components`` holds per-event [B] tensors (always including "total") used as scores."""

    total: Tensor
    components: dict[str, Tensor]


class BeadLoss:
    """A loss of a batch ``(x, mask)`` given the model's output.

    ``requires`` names the ModelOutput parts the loss cannot do without (compared with a model's
    ``provides``). ``reg_param`` is a plain attribute so annealing can change it between steps.
    """

    requires: ClassVar[frozenset[str]] = frozenset()
    # The per-event component a user should cut on (metrics.json's primary_score).
    primary_score: ClassVar[str] = "total"

    def __init__(self, reg_param: float = 1e-3) -> None:
        self.reg_param = reg_param

    @property
    def name(self) -> str:
        return type(self).__name__

    def check_output(self, out: ModelOutput) -> None:
        """Fail clearly when the model did not produce what this loss needs."""
        missing = sorted(part for part in self.requires if getattr(out, part) is None)
        if missing:
            raise UsageError(
                f"loss_function = '{self.name}' needs the model output {', '.join(missing)}, "
                "which this model does not produce: this model cannot be used with this loss"
            )

    def __call__(
        self, x: Tensor, mask: Tensor, out: ModelOutput, weight: Tensor | None = None
    ) -> LossResult:
        raise NotImplementedError
