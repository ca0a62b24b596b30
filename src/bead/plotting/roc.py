"""ROC and SIC curves: per score, per signal sample, per background generator, across projects.

Convention (the usual one for anomaly detection at the LHC): x is the background efficiency
(false positive rate) on a log axis, y the signal efficiency; a random score is the diagonal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from sklearn.metrics import auc as area_under

from bead.errors import DataError, UsageError
from bead.evaluation.metrics import ALL_SIGNALS, SIC_MIN_BKG, sic_points, weighted_roc
from bead.evaluation.scores import ScoreTable, read_scores
from bead.plotting.inputs import SCORES, load_metrics, lookup_auc
from bead.plotting.style import bead_label, color, hep_style, new_figure, safe_name, save_figure
from bead.stats import nonnegative

log = logging.getLogger(__name__)

X_LABEL = r"Background efficiency $\varepsilon_B$ (false positive rate)"
Y_LABEL = r"Signal efficiency $\varepsilon_S$"


@dataclass(frozen=True)
class Curve:
    eps_b: np.ndarray
    eps_s: np.ndarray
    bkg_weight: np.ndarray  # the background weights behind eps_b, for the SIC's statistics

    @property
    def auc(self) -> float:
        return float(area_under(self.eps_b, self.eps_s))


def roc_curve(score: np.ndarray, is_signal: np.ndarray, weight: np.ndarray) -> Curve:
    """Weighted ROC of the finite scores (the rest are skipped with a warning), with the
    metrics' weight policy (negative weights count as zero)."""
    keep = np.isfinite(score)
    if not keep.all():
        log.warning("ignoring %d non-finite scores in the ROC", int((~keep).sum()))
    score, is_signal, weight = score[keep], is_signal[keep], nonnegative(weight[keep])
    if weight[is_signal].sum() <= 0 or weight[~is_signal].sum() <= 0:
        raise ValueError("ROC needs positive total weight for both signal and background")
    return Curve(*weighted_roc(is_signal, score, weight), bkg_weight=weight[~is_signal])


def _curve(table: ScoreTable, score: str, signal: np.ndarray, background: np.ndarray) -> Curve:
    sel = signal | background
    return roc_curve(table.scores[score][sel], signal[sel], table.weight[sel])


def _auc_label(name: str, recorded: float | None, curve: Curve) -> str:
    return f"{name} (AUC = {recorded if recorded is not None else curve.auc:.3f})"


def _finish_roc(ax: Axes, curves: list[Curve], rlabel: str) -> None:
    positive = [c.eps_b[c.eps_b > 0].min() for c in curves if (c.eps_b > 0).any()]
    lo = 10 ** np.floor(np.log10(min(positive))) if positive else 1e-4
    grid = np.logspace(np.log10(lo), 0, 100)
    ax.plot(grid, grid, ls=":", color="0.5", lw=1.5, label="Random")
    ax.set_xscale("log")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(0.0, 1.25)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92))
    bead_label(ax, rlabel=rlabel)


def plot_roc(table: ScoreTable, metrics: dict[str, Any], score: str, out_dir: Path) -> list[Path]:
    """One curve per signal sample plus all signals together, against all backgrounds."""
    background = ~table.is_signal
    with hep_style():
        fig, ax = new_figure()
        curves = []
        for i, group in enumerate(table.signal_groups()):
            curve = _curve(table, score, group.mask, background)
            ax.plot(curve.eps_b, curve.eps_s, color=color(i, True), ls="--",
                    label=_auc_label(group.name, lookup_auc(metrics, score, group.name), curve))
            curves.append(curve)
        curve = _curve(table, score, table.is_signal, background)
        ax.plot(curve.eps_b, curve.eps_s, color="black",
                label=_auc_label("All signals", lookup_auc(metrics, score, ALL_SIGNALS), curve))
        _finish_roc(ax, [*curves, curve], rlabel=f"score: {score}")
        return save_figure(fig, out_dir / f"roc_{safe_name(score)}")


def plot_roc_per_generator(table: ScoreTable, metrics: dict[str, Any], score: str,
                           out_dir: Path) -> list[Path]:
    """All signals against each background generator alone: the score should not care which."""
    with hep_style():
        fig, ax = new_figure()
        curves = []
        for i, group in enumerate(table.background_groups()):
            curve = _curve(table, score, table.is_signal, group.mask)
            recorded = lookup_auc(metrics, score, ALL_SIGNALS, generator=group.name)
            ax.plot(curve.eps_b, curve.eps_s, color=color(i, False),
                    label=_auc_label(f"vs {group.name}", recorded, curve))
            curves.append(curve)
        _finish_roc(ax, curves, rlabel=f"score: {score}, all signals")
        return save_figure(fig, out_dir / f"roc_{safe_name(score)}_per_generator")


def plot_sic(table: ScoreTable, score: str, out_dir: Path) -> list[Path]:
    """Significance improvement eps_s / sqrt(eps_b) against signal efficiency.

    Points with fewer than ``SIC_MIN_BKG`` effective background events passing are left out:
    there the curve is statistical noise. The legend's maximum is metrics.json's ``max_sic``.
    """
    background = ~table.is_signal
    groups = [(g.name, g.mask, color(i, True), "--")
              for i, g in enumerate(table.signal_groups())]
    groups.append(("All signals", table.is_signal, "black", "-"))
    with hep_style():
        fig, ax = new_figure()
        top = 1.0
        for name, mask, col, ls in groups:
            curve = _curve(table, score, mask, background)
            eps_s, sic = sic_points(curve.eps_b, curve.eps_s, curve.bkg_weight)
            best = float(sic.max()) if sic.size else float("nan")
            top = max(top, best) if sic.size else top
            ax.plot(eps_s, sic, color=col, ls=ls, label=f"{name} (max SIC = {best:.2f})")
        ax.axhline(1.0, ls=":", color="0.5", lw=1.5, label="No improvement")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, top * 1.45)
        ax.set_xlabel(Y_LABEL)
        ax.set_ylabel(r"SIC $\varepsilon_S\,/\,\varepsilon_B^{1/2}$")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92))
        bead_label(ax, rlabel=f"score: {score}, $\\geq${SIC_MIN_BKG} background events pass")
        return save_figure(fig, out_dir / f"sic_{safe_name(score)}")


def best_score(metrics: dict[str, Any], path: str) -> str:
    """The score with the highest all-signals AUC in a project's metrics.json."""
    aucs = {name: lookup_auc(metrics, name, ALL_SIGNALS) for name in metrics.get("scores", [])}
    aucs = {k: v for k, v in aucs.items() if v is not None}
    if not aucs:
        raise DataError(f"{path}: no all_signals AUC recorded (rerun detect)")
    return max(aucs, key=aucs.__getitem__)


def overlay_roc(projects: list[tuple[str, Path]], out_dir: Path, filename: str) -> list[Path]:
    """Each project's best score, all signals together, on one log false-positive axis."""
    if not projects:
        raise UsageError("overlay_roc: no projects given (set overlay_roc_projects)")
    with hep_style():
        fig, ax = new_figure()
        curves = []
        for i, (label, results_dir) in enumerate(projects):
            metrics = load_metrics(results_dir)
            score = best_score(metrics, str(Path(results_dir) / "metrics.json"))
            table = read_scores(Path(results_dir) / SCORES)
            curve = _curve(table, score, table.is_signal, ~table.is_signal)
            ax.plot(curve.eps_b, curve.eps_s, color=color(i, False),
                    label=_auc_label(f"{label}: {score}",
                                     lookup_auc(metrics, score, ALL_SIGNALS), curve))
            curves.append(curve)
        _finish_roc(ax, curves, rlabel="all signals")
        return save_figure(fig, Path(out_dir) / safe_name(filename))
