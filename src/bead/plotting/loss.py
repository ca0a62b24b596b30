"""Training curves: every loss component (train and validation epoch means) and the LR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from bead.plotting.style import (
    add_headroom,
    bead_label,
    hep_style,
    new_figure,
    safe_name,
    save_figure,
)
from bead.training.history import History


def _fit_y(ax: Axes, values: np.ndarray) -> None:
    """Log y when all values are positive; limits from the data (not rounded to decades)."""
    if values.size and (values > 0).all():
        ax.set_yscale("log")
        ax.set_ylim(values.min() / 1.5, values.max() * 1.5)
    add_headroom(ax, 0.35)


def _mark_best(ax: Axes, history: History) -> None:
    if history.best_epoch > 0:
        ax.axvline(history.best_epoch, color="0.4", ls=":", lw=1.5,
                   label=f"Best epoch ({history.best_epoch})")


def _epoch_axis(ax: Axes, history: History) -> None:
    ax.set_xlabel("Epoch")
    if history.epoch:
        ax.set_xlim(min(history.epoch) - 0.5, max(history.epoch) + 0.5)


def plot_component(history: History, component: str, out_dir: Path) -> list[Path]:
    with hep_style():
        fig, ax = new_figure()
        series = [("Training", history.train.get(component), "#3f90da", "o"),
                  ("Validation", history.val.get(component), "#bd1f01", "s")]
        values = []
        for name, listed, col, marker in series:
            if listed is None:
                continue
            ys = np.asarray(listed, dtype=np.float64)
            ax.plot(history.epoch, ys, color=col, marker=marker, ms=4, label=name)
            values.append(ys[np.isfinite(ys)])
        finite = np.concatenate(values) if values else np.array([])
        _fit_y(ax, finite)
        _mark_best(ax, history)
        _epoch_axis(ax, history)
        ax.set_ylabel(f"Loss: {component} (epoch mean) [a.u.]")
        ax.legend(loc="best")
        bead_label(ax)
        return save_figure(fig, out_dir / f"loss_{safe_name(component)}")


def plot_lr(history: History, out_dir: Path) -> list[Path]:
    with hep_style():
        fig, ax = new_figure()
        lr = np.asarray(history.lr, dtype=np.float64)
        ax.step(history.epoch, lr, where="mid", color="#832db6", label="Learning rate")
        _fit_y(ax, lr[np.isfinite(lr)])
        _mark_best(ax, history)
        _epoch_axis(ax, history)
        ax.set_ylabel("Learning rate")
        ax.legend(loc="best")
        bead_label(ax)
        return save_figure(fig, out_dir / "lr")

