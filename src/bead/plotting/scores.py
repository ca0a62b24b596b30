"""Score distributions per background generator and per signal sample, on a common binning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bead.evaluation.scores import ScoreTable
from bead.plotting.style import (
    add_caption,
    add_headroom,
    bead_label,
    color,
    hep_style,
    new_figure,
    safe_name,
    sample_label,
    save_figure,
)

N_BINS = 50
CLIP = (0.001, 0.999)
LEGEND_TWO_COLUMN_CHARS = 24  # wider legend lines (long signal names) get one column


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
    """Weighted event fractions per bin of every background generator and signal sample.

    The y range is the data's (lowest non-empty bin to the highest, plus room for the legend);
    long sample names are shortened in the legend and given in full in a caption.
    """
    values = table.scores[score]
    edges, log_x = common_bins(values)
    with hep_style():
        fig, ax = new_figure()
        lowest, highest = np.inf, 0.0
        labels, full_names = [], []
        groups = [(g, color(i, False), "-") for i, g in enumerate(table.background_groups())]
        groups += [(g, color(i, True), "--") for i, g in enumerate(table.signal_groups())]
        for group, col, ls in groups:
            frac = _fractions(values[group.mask], table.weight[group.mask], edges)
            if (frac > 0).any():
                lowest = min(lowest, frac[frac > 0].min())
                highest = max(highest, frac.max())
            name, shortened = sample_label(group.name)
            if shortened:
                full_names.append(group.name)
            labels.append(f"{name} ({'signal' if group.is_signal else 'background'})")
            ax.stairs(frac, edges, color=col, ls=ls, lw=2, label=labels[-1])
        widest = max((len(line) for label in labels for line in label.split("\n")), default=0)
        ncols = 2 if widest <= LEGEND_TWO_COLUMN_CHARS else 1
        rows = sum(label.count("\n") + 1 for label in labels) / ncols
        ax.set_yscale("log")
        if np.isfinite(lowest):
            ax.set_ylim(lowest / 2, highest * 1.5)
        add_headroom(ax, min(0.15 + 0.05 * rows, 0.55))
        if log_x:
            ax.set_xscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(f"Anomaly score: {score} [a.u.]")
        ax.set_ylabel("Fraction of events / bin")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92), ncols=ncols)
        bead_label(ax, rlabel="weighted, outliers in edge bins")
        add_caption(fig, full_names)
        return save_figure(fig, out_dir / f"scores_{safe_name(score)}")
