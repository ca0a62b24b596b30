"""Score distributions per background generator and per signal sample, on a common binning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bead.evaluation.scores import ScoreTable
from bead.plotting.style import (
    add_headroom,
    bead_label,
    color,
    hep_style,
    new_figure,
    safe_name,
    save_figure,
)

N_BINS = 50
CLIP = (0.001, 0.999)
LEGEND_TWO_COLUMN_CHARS = 24  # longer labels (long signal names) get one column so none overflow


def common_bins(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Edges over the quantile-clipped range; log-spaced when the scores span decades.

    Returns the edges and whether the x axis should be logarithmic.
    """
    finite = values[np.isfinite(values)]
    lo, hi = np.quantile(finite, CLIP) if finite.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if lo > 0 and hi / lo > 100:
        return np.geomspace(lo, hi, N_BINS + 1), True
    return np.linspace(lo, hi, N_BINS + 1), False


def _fractions(values: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Weighted event fraction per bin; outliers go into the first and last bins."""
    ok = np.isfinite(values)
    clipped = np.clip(values[ok], edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges, weights=weight[ok])
    total = counts.sum()
    return counts / total if total > 0 else counts


def plot_score_distribution(table: ScoreTable, score: str, out_dir: Path) -> list[Path]:
    values = table.scores[score]
    edges, log_x = common_bins(values)
    with hep_style():
        fig, ax = new_figure()
        lowest = np.inf
        labels = []
        groups = [(g, color(i, False), "-") for i, g in enumerate(table.background_groups())]
        groups += [(g, color(i, True), "--") for i, g in enumerate(table.signal_groups())]
        for group, col, ls in groups:
            frac = _fractions(values[group.mask], table.weight[group.mask], edges)
            if (frac > 0).any():
                lowest = min(lowest, frac[frac > 0].min())
            labels.append(f"{group.name} ({'signal' if group.is_signal else 'background'})")
            ax.stairs(frac, edges, color=col, ls=ls, lw=2, label=labels[-1])
        ncols = 2 if max(map(len, labels), default=0) <= LEGEND_TWO_COLUMN_CHARS else 1
        rows = -(-len(labels) // ncols)
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(lowest / 2, 1e-6) if np.isfinite(lowest) else 1e-4)
        add_headroom(ax, min(0.2 + 0.05 * rows, 0.5))
        if log_x:
            ax.set_xscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(f"Anomaly score: {score} [a.u.]")
        ax.set_ylabel("Fraction of events / bin")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92), ncols=ncols)
        bead_label(ax, rlabel="weighted, outliers in edge bins")
        return save_figure(fig, out_dir / f"scores_{safe_name(score)}")
