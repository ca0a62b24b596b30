"""Event-weight statistics shared by training and evaluation (the floor both stand on)."""

from __future__ import annotations

import numpy as np

# Below these (effective) event counts a fit or a metric is dominated by statistical noise: the
# stage that meets it warns, and metrics.json flags the numbers as low_stats.
MIN_FIT_EVENTS = 100  # bkg_train training events the scalers are fitted on
MIN_VALIDATION_EVENTS = 100  # validation events behind early stopping and the LR schedule
MIN_TEST_EVENTS = 100  # effective events of a signal sample or of a background in a metric


def effective_count(weight: np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw²."""
    sq = float(np.sum(weight * weight))
    return float(np.sum(weight)) ** 2 / sq if sq > 0 else 0.0


def nonnegative(weight: np.ndarray) -> np.ndarray:
    """The weights every curve and metric uses: negative ones count as zero."""
    return np.clip(np.asarray(weight, dtype=np.float64), 0.0, None)
