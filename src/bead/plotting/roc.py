"""ROC and SIC curves: per score, per signal sample, per background generator, and every score
on one figure.

Convention (the usual one for anomaly detection at the LHC): x is the background efficiency
(false positive rate) on a log axis, y the signal efficiency; a random score is the diagonal.
Each score's curves are computed once (:func:`score_curves`) and shared by its ROC, SIC and the
comparison figure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from sklearn.metrics import auc as area_under

from bead.evaluation.metrics import ALL_SIGNALS, SIC_MIN_BKG, sic_points, weighted_roc
from bead.evaluation.scores import ScoreTable
from bead.plotting.inputs import lookup_auc
from bead.plotting.style import (
    add_caption,
    bead_label,
    color,
    hep_style,
    new_figure,
    safe_name,
    sample_label,
    save_figure,
)
from bead.stats import nonnegative

log = logging.getLogger(__name__)

X_LABEL = r"Background efficiency $\varepsilon_B$ (false positive rate)"
Y_LABEL = r"Signal efficiency $\varepsilon_S$"
ALL_SIGNALS_LABEL = "All signals"
OBSERVABLE_COLORS = ("0.35", "0.55", "0.7", "#8c6d31", "#6b6ecf", "#b5cf6b")


@dataclass(frozen=True)
class Curve:
    eps_b: np.ndarray
    eps_s: np.ndarray
    bkg_weight: np.ndarray  # the background weights behind eps_b, for the SIC's statistics

    @property
    def auc(self) -> float:
        return float(area_under(self.eps_b, self.eps_s))


@dataclass(frozen=True)
class ScoreCurves:
    """The ROC curves of one score that the figures draw, computed once."""

    per_signal: dict[str, Curve]  # signal sample (and ALL_SIGNALS) against all background
    per_generator: dict[str, Curve]  # background generator -> all signals against it alone


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


def score_curves(table: ScoreTable, score: str) -> ScoreCurves:
    background = ~table.is_signal
    per_signal = {g.name: _curve(table, score, g.mask, background)
                  for g in table.signal_groups()}
    per_signal[ALL_SIGNALS] = _curve(table, score, table.is_signal, background)
    per_generator = {g.name: _curve(table, score, table.is_signal, g.mask)
                     for g in table.background_groups()}
    return ScoreCurves(per_signal, per_generator)


def _signal_lines(curves: ScoreCurves) -> list[tuple[str, str, Curve, str, str]]:
    """(metrics key, label, curve, colour, line style) per signal, plus all signals together
    when there are several (with one signal both curves are the same)."""
    signals = [k for k in curves.per_signal if k != ALL_SIGNALS]
    lines = [(k, k, curves.per_signal[k], color(i, True), "--" if len(signals) > 1 else "-")
             for i, k in enumerate(signals)]
    if len(signals) != 1:
        lines.append((ALL_SIGNALS, ALL_SIGNALS_LABEL, curves.per_signal[ALL_SIGNALS], "black",
                      "-"))
    return lines


def _label(name: str, full_names: list[str]) -> str:
    """A short legend label; shortened names are collected for the figure's caption."""
    if name == ALL_SIGNALS_LABEL:
        return name
    label, shortened = sample_label(name)
    if shortened:
        full_names.append(name)
    return label


def _auc_label(name: str, recorded: float | None, curve: Curve) -> str:
    return f"{name} (AUC = {recorded if recorded is not None else curve.auc:.3f})"


def _finish_roc(ax: Axes, curves: list[Curve], rlabel: str, legend_rows: int = 4) -> None:
    positive = [c.eps_b[c.eps_b > 0].min() for c in curves if (c.eps_b > 0).any()]
    lo = 10 ** np.floor(np.log10(min(positive))) if positive else 1e-4
    grid = np.logspace(np.log10(lo), 0, 100)
    ax.plot(grid, grid, ls=":", color="0.5", lw=1.5, label="Random")
    ax.set_xscale("log")
    ax.set_xlim(lo, 1.0)
    ncols = 2 if legend_rows > 6 else 1
    ax.set_ylim(0.0, max(1.25, 1.0 + 0.075 * (-(-legend_rows // ncols) + 1)))
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92), ncols=ncols)
    bead_label(ax, rlabel=rlabel)


def plot_roc(curves: ScoreCurves, metrics: dict[str, Any], score: str,
             out_dir: Path) -> list[Path]:
    """One curve per signal sample (plus all signals together), against all backgrounds."""
    with hep_style():
        fig, ax = new_figure()
        full_names: list[str] = []
        lines = _signal_lines(curves)
        for key, name, curve, col, ls in lines:
            ax.plot(curve.eps_b, curve.eps_s, color=col, ls=ls,
                    label=_auc_label(_label(name, full_names), lookup_auc(metrics, score, key),
                                     curve))
        _finish_roc(ax, [c for _, _, c, _, _ in lines], rlabel=f"score: {score}",
                    legend_rows=len(lines) + 1)
        add_caption(fig, full_names)
        return save_figure(fig, out_dir / f"roc_{safe_name(score)}")


def plot_roc_per_generator(curves: ScoreCurves, metrics: dict[str, Any], score: str,
                           out_dir: Path) -> list[Path]:
    """All signals against each background generator alone: the score should not care which."""
    with hep_style():
        fig, ax = new_figure()
        for i, (generator, curve) in enumerate(curves.per_generator.items()):
            recorded = lookup_auc(metrics, score, ALL_SIGNALS, generator=generator)
            ax.plot(curve.eps_b, curve.eps_s, color=color(i, False),
                    label=_auc_label(f"vs {generator}", recorded, curve))
        _finish_roc(ax, list(curves.per_generator.values()),
                    rlabel=f"score: {score}, all signals",
                    legend_rows=len(curves.per_generator) + 1)
        return save_figure(fig, out_dir / f"roc_{safe_name(score)}_per_generator")


def plot_sic(curves: ScoreCurves, score: str, out_dir: Path) -> list[Path]:
    """Significance improvement eps_s / sqrt(eps_b) against signal efficiency.

    Points with fewer than ``SIC_MIN_BKG`` effective background events passing are left out:
    there the curve is statistical noise. The legend's maximum is metrics.json's ``max_sic``.
    """
    with hep_style():
        fig, ax = new_figure()
        top = 1.0
        full_names: list[str] = []
        lines = _signal_lines(curves)
        for _, name, curve, col, ls in lines:
            eps_s, sic = sic_points(curve.eps_b, curve.eps_s, curve.bkg_weight)
            best = float(sic.max()) if sic.size else float("nan")
            top = max(top, best) if sic.size else top
            ax.plot(eps_s, sic, color=col, ls=ls,
                    label=f"{_label(name, full_names)} (max SIC = {best:.2f})")
        ax.axhline(1.0, ls=":", color="0.5", lw=1.5, label="No improvement")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, top * (1.2 + 0.1 * (len(lines) + 1)))
        ax.set_xlabel(Y_LABEL)
        ax.set_ylabel(r"SIC $\varepsilon_S\,/\,\varepsilon_B^{1/2}$")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92))
        bead_label(ax, rlabel=f"score: {score}, $\\geq${SIC_MIN_BKG} background events pass")
        add_caption(fig, full_names)
        return save_figure(fig, out_dir / f"sic_{safe_name(score)}")


def plot_roc_comparison(curves: dict[str, ScoreCurves], metrics: dict[str, Any], primary: str,
                        observable_names: list[str], out_dir: Path) -> list[Path]:
    """Every score (and single observable) for all signals together on one figure, the primary
    score in bold: the report's headline figure."""
    with hep_style():
        fig, ax = new_figure()
        drawn = []
        models = [s for s in curves if s not in observable_names]
        order = [primary, *(s for s in models if s != primary),
                 *(s for s in observable_names if s in curves)]
        for i, score in enumerate(order):
            curve = curves[score].per_signal[ALL_SIGNALS]
            if score == primary:
                style = {"color": "black", "lw": 3.0}
            elif score in observable_names:
                k = i - len(models)
                style = {"color": OBSERVABLE_COLORS[k % len(OBSERVABLE_COLORS)], "ls": "--"}
            else:
                style = {"color": color(i - 1, False)}
            name = f"{score} (primary)" if score == primary else score
            ax.plot(curve.eps_b, curve.eps_s, **style,
                    label=_auc_label(name, lookup_auc(metrics, score, ALL_SIGNALS), curve))
            drawn.append(curve)
        signals = [k for k in next(iter(curves.values())).per_signal if k != ALL_SIGNALS]
        rlabel = ("all signals" if len(signals) != 1
                  else sample_label(signals[0], width=48)[0].replace("\n", ""))
        _finish_roc(ax, drawn, rlabel=rlabel, legend_rows=len(order) + 1)
        return save_figure(fig, out_dir / "roc_all_scores")
