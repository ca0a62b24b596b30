"""Figures and the HTML report (SPEC §10), drawn from the files train and detect wrote."""

from __future__ import annotations

import logging
from pathlib import Path

from bead.config import Config
from bead.errors import DataError, UsageError
from bead.evaluation.scores import read_scores
from bead.plotting.inputs import HISTORY, METRICS, SCORES, load_metrics
from bead.plotting.latent import check_style_available, plot_latent
from bead.plotting.loss import plot_history
from bead.plotting.report import write_report
from bead.plotting.roc import overlay_roc, plot_roc, plot_roc_per_generator, plot_sic
from bead.plotting.scores import plot_score_distribution
from bead.plotting.sculpting import plot_sculpting
from bead.training.history import read_history

__all__ = ["WHICH", "make_plots", "overlay_roc"]

log = logging.getLogger(__name__)

WHICH = ("all", "train_metrics", "test_metrics")


def make_plots(config: Config, results_dir: Path, plots_dir: Path,
               which: str = "all") -> list[Path]:
    """Draw the training and/or evaluation plots into ``plots_dir`` and refresh report.html.

    Returns every file written. Inputs needed by ``which`` must exist (DataError otherwise);
    the report also shows whatever else is already there.
    """
    if which not in WHICH:
        raise UsageError(f"plot: unknown selection {which!r}; use one of {', '.join(WHICH)}")
    results_dir, plots_dir = Path(results_dir), Path(plots_dir)
    train = which in ("all", "train_metrics")
    test = which in ("all", "test_metrics")
    history = read_history(results_dir / HISTORY) if train else None
    table = metrics = None
    if test:
        check_style_available(config.latent_space_plot_style)
        table, metrics = read_scores(results_dir / SCORES), load_metrics(results_dir)
        if table.is_signal.all():
            raise DataError(f"{results_dir / SCORES}: no background events to plot against "
                            "(add bkg_test_* samples)")
        if not table.is_signal.any():
            log.warning("%s: no signal events: drawing score distributions and latent plots; "
                        "no ROC or SIC curves", results_dir / SCORES)

    written: list[Path] = []
    if history is not None:
        written += plot_history(history, plots_dir / "loss")
        log.info("loss plots written to %s", plots_dir / "loss")
    if table is not None and metrics is not None:
        for score in table.scores:
            if table.is_signal.any():
                written += plot_roc(table, metrics, score, plots_dir / "roc")
                written += plot_roc_per_generator(table, metrics, score, plots_dir / "roc")
                written += plot_sic(table, score, plots_dir / "sic")
            written += plot_score_distribution(table, score, plots_dir / "scores")
        written += plot_latent(table, config, plots_dir / "latent_space")
        written += plot_sculpting(table, metrics, plots_dir / "sculpting")
        log.info("evaluation plots written to %s", plots_dir)

    if history is None and (results_dir / HISTORY).is_file():
        history = read_history(results_dir / HISTORY)
    if metrics is None and (results_dir / METRICS).is_file():
        metrics = load_metrics(results_dir)
    title = f"BEAD report: {config.model_name} with {config.loss_function}"
    written.append(write_report(plots_dir, title, metrics, history))
    return written
