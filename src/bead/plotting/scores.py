"""Score distributions per background generator and per signal sample, on a common binning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bead.evaluation.scores import ScoreTable
from bead.plotting.style import (
    FIGSIZE,
    MARGINS,
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
LEGEND_CHARS = 84  # legend characters across the figure's width, for its columns
LEGEND_ROW_INCHES = 0.26
CAPTION_INCHES = 0.3


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


def _legend_layout(labels: list[str]) -> tuple[int, int]:
    """Columns and rows of a legend under the axes that fits the figure's width."""
    widest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    ncols = max(1, min(3, len(labels), LEGEND_CHARS // (widest + 6)))
    lines_per_entry = max((label.count("\n") + 1 for label in labels), default=1)
    return ncols, -(-len(labels) // ncols) * lines_per_entry


def plot_score_distribution(table: ScoreTable, score: str, out_dir: Path) -> list[Path]:
    """Weighted event fractions per bin of every background generator and signal sample.

    The y range is the data's (lowest non-empty bin to the highest, and room for the label):
    the legend sits under the axes, on a figure made taller for it, so it needs no headroom.
    Long sample names are shortened in the legend and given in full in a caption.
    """
    values = table.scores[score]
    edges, log_x = common_bins(values)
    groups = [(g, color(i, False), "-") for i, g in enumerate(table.background_groups())]
    groups += [(g, color(i, True), "--") for i, g in enumerate(table.signal_groups())]
    names = [sample_label(g.name) for g, _, _ in groups]
    labels = [f"{name} ({'signal' if g.is_signal else 'background'})"
              for (name, _), (g, _, _) in zip(names, groups, strict=True)]
    full_names = [g.name for (_, cut), (g, _, _) in zip(names, groups, strict=True) if cut]
    ncols, rows = _legend_layout(labels)
    below = LEGEND_ROW_INCHES * rows + (CAPTION_INCHES if full_names else 0.0)
    width, height = FIGSIZE[0], FIGSIZE[1] + below
    with hep_style():
        fig, ax = new_figure((width, height))
        fig.subplots_adjust(bottom=(MARGINS["bottom"] * FIGSIZE[1] + below) / height,
                            top=1 - (1 - MARGINS["top"]) * FIGSIZE[1] / height)
        lowest, highest = np.inf, 0.0
        for (group, col, ls), label in zip(groups, labels, strict=True):
            frac = _fractions(values[group.mask], table.weight[group.mask], edges)
            if (frac > 0).any():
                lowest = min(lowest, frac[frac > 0].min())
                highest = max(highest, frac.max())
            ax.stairs(frac, edges, color=col, ls=ls, lw=2, label=label)
        ax.set_yscale("log")
        if np.isfinite(lowest):
            ax.set_ylim(lowest / 2, highest * 1.5)
        add_headroom(ax, 0.2)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(f"Anomaly score: {score} [a.u.]")
        ax.set_ylabel("Fraction of events / bin")
        caption = CAPTION_INCHES / height if full_names else 0.0
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncols=ncols,
                   bbox_to_anchor=(0.55, caption))
        bead_label(ax, rlabel="weighted, outliers in edge bins")
        add_caption(fig, full_names, make_room=False)
        return save_figure(fig, out_dir / f"scores_{safe_name(score)}")
