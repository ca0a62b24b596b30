"""One look for every BEAD figure: mplhep HEP style, a "BEAD" label, PDF + PNG written atomically.

Figures are built with the object API (``matplotlib.figure.Figure``), never through pyplot, so
nothing is registered in pyplot's global figure list and no figure can leak.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import matplotlib as mpl
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bead.fileio import atomic_path

FORMATS = ("pdf", "png")
PNG_DPI = 110
FIGSIZE = (8.0, 6.5)

_STYLE = {
    **mplhep.style.ATLAS,
    "font.size": 15,
    "axes.labelsize": 16,
    "legend.fontsize": 12,
    "legend.frameon": False,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "lines.linewidth": 2.0,
}

BACKGROUND_COLORS = ("#3f90da", "#ffa90e", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70")
SIGNAL_COLORS = ("#bd1f01", "#e7298a", "#1b9e77", "#7570b3", "#66a61e", "#d95f02", "#717581")


@contextlib.contextmanager
def hep_style() -> Iterator[None]:
    """Apply the HEP style only while figures are built and saved (no global rcParams change)."""
    with mpl.rc_context(_STYLE):
        yield


def new_figure(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """A figure with fixed margins: a tight bounding box would cost one more draw per file."""
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.15, right=0.96, bottom=0.13, top=0.93)
    return fig, fig.add_subplot()


def bead_label(ax: Axes, rlabel: str | None = None, text: str = "Simulation") -> None:
    """The experiment-style label ("BEAD Simulation") inside the axes, extra text above them.

    Drawn with plain text artists: mplhep's label helper measures text with extra renders.
    """
    exp = ax.text(0.03, 0.965, "BEAD", transform=ax.transAxes, ha="left", va="top",
                  fontsize=19, fontweight="bold")
    ax.annotate(f" {text}", xy=(1.0, 0.0), xycoords=exp, ha="left", va="bottom",
                fontsize=17, fontstyle="italic")
    if rlabel:
        ax.text(1.0, 1.01, rlabel, transform=ax.transAxes, ha="right", va="bottom", fontsize=13)


def add_headroom(ax: Axes, fraction: float = 0.3) -> None:
    """Raise the upper y limit so the data fill the lower part and labels sit above them."""
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log":
        span = np.log10(hi) - np.log10(lo)
        ax.set_ylim(lo, 10 ** (np.log10(lo) + span / (1.0 - fraction)))
    else:
        ax.set_ylim(lo, lo + (hi - lo) / (1.0 - fraction))


def color(index: int, signal: bool) -> str:
    palette = SIGNAL_COLORS if signal else BACKGROUND_COLORS
    return palette[index % len(palette)]


def safe_name(name: str) -> str:
    """A file-name-safe form of a score, component or sample name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "unnamed"


def save_figure(fig: Figure, base: Path) -> list[Path]:
    """Write ``base.pdf`` and ``base.png`` atomically; the suffix is added here."""
    written = []
    for fmt in FORMATS:
        path = base.parent / f"{base.name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=PNG_DPI)
        written.append(path)
    fig.clear()
    return written
