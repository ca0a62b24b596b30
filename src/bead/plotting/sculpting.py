"""Mass sculpting: the background's normalised mass spectra before and after cuts on the
primary score, on the binning metrics.json records (bead.evaluation.sculpting), so the figure
shows exactly what the JSD was computed on. The signal's spectrum before any cut is drawn for
reference: a cut that moves the background towards it fakes a signal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bead.evaluation.scores import ScoreTable
from bead.evaluation.sculpting import fractions
from bead.plotting.style import (
    add_headroom,
    bead_label,
    color,
    hep_style,
    new_figure,
    safe_name,
    save_figure,
)

MASS_LABELS = {"j1_mass": r"Leading-jet mass $m_{j_1}$ [GeV]",
               "mjj": r"Dijet mass $m_{jj}$ [GeV]", "mt": r"Transverse mass $m_T$ [GeV]"}
CUT_STYLES = ("--", ":")


def sculpting_masses(metrics: dict[str, Any] | None) -> list[str]:
    """The masses metrics.json's ``sculpting`` section measured (one figure each)."""
    return list(((metrics or {}).get("sculpting") or {}).get("observables") or {})


def plot_sculpting(table: ScoreTable, metrics: dict[str, Any], name: str,
                   out_dir: Path) -> list[Path]:
    """The figure of mass ``name`` from metrics.json's ``sculpting`` section."""
    section = metrics["sculpting"]
    score, entry = section.get("score", "?"), section["observables"][name]
    edges = np.asarray(entry["edges"], float)
    with hep_style():
        fig, ax = new_figure()
        drawn = [entry["before"]]
        ax.stairs(entry["before"], edges, color="black", lw=2, label="background, no cut")
        for i, (key, cut) in enumerate(entry["cuts"].items()):
            if cut.get("after") is None:
                continue
            drawn.append(cut["after"])
            ax.stairs(cut["after"], edges, color=color(i, False),
                      ls=CUT_STYLES[i % len(CUT_STYLES)], lw=2,
                      label=rf"$\varepsilon_B$ = {key}: JSD {cut['jsd']:.3f} "
                            f"(stat. {cut['jsd_stat']:.3f})")
        if table.is_signal.any() and name in table.observables:
            sig = table.is_signal
            drawn.append(fractions(np.asarray(table.observables[name][sig], float),
                                   np.clip(table.weight[sig], 0, None), edges))
            ax.stairs(drawn[-1], edges, color=color(0, True), lw=1.5, alpha=0.7,
                      label="all signals, no cut")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_yscale("log")  # steeply falling spectra: shapes show on a log axis
        positive = np.concatenate([np.asarray(h)[np.asarray(h) > 0] for h in drawn])
        ax.set_ylim(bottom=max(positive.min() / 2 if positive.size else 1e-4, 1e-6))
        add_headroom(ax, 0.3)
        ax.set_xlabel(MASS_LABELS.get(name, name))
        ax.set_ylabel("Fraction of events / bin")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92), fontsize=11)
        dcor = entry.get("distance_correlation")
        rlabel = f"cut on {score}" + (f", dCor = {dcor:.3f}" if dcor is not None else "")
        bead_label(ax, rlabel=rlabel)
        return save_figure(fig, out_dir / f"sculpting_{safe_name(name)}")
