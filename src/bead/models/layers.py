"""Small building blocks shared by the model families."""

from __future__ import annotations

import itertools

from torch import nn


def mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (and after the last one if asked)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)
