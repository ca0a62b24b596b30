"""Event-weight statistics shared by training and evaluation (the floor both stand on)."""

from __future__ import annotations

import numpy as np


def effective_count(weight: np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw²."""
    sq = float(np.sum(weight * weight))
    return float(np.sum(weight)) ** 2 / sq if sq > 0 else 0.0


def nonnegative(weight: np.ndarray) -> np.ndarray:
    """The weights every curve and metric uses: negative ones count as zero."""
    return np.clip(np.asarray(weight, dtype=np.float64), 0.0, None)
