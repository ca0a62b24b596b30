"""Figures and the HTML report (SPEC §10), drawn from the files train and detect wrote.

The evaluation figures are drawn only from results that come from the project's current model
(``bead.evaluation.provenance.stale_reason``). Otherwise plot draws the training figures,
removes the evaluation figures of the earlier results and says in one line what to run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bead.config import Config
from bead.errors import DataError, UsageError
from bead.evaluation.provenance import stale_reason
from bead.evaluation.scores import ScoreTable, read_scores
from bead.plotting.inputs import HISTORY, SCORES, load_metrics, primary_score
from bead.plotting.latent import check_style_available, embed_views
from bead.plotting.overlay import OverlaySource, overlay_roc
from bead.plotting.report import ReportInputs, write_report
from bead.plotting.roc import score_curves
from bead.plotting.tasks import PlotInputs, plan, run_tasks
from bead.training.history import read_history

__all__ = ["WHICH", "OverlaySource", "evaluation_problem", "make_plots", "overlay_roc"]

log = logging.getLogger(__name__)

WHICH = ("all", "train_metrics", "test_metrics")
LOSS_FOLDER = "loss"
EVALUATION_FOLDERS = ("roc", "sic", "scores", "latent_space", "sculpting")
FIGURE_SUFFIXES = (".pdf", ".png")


def evaluation_problem(results_dir: Path, models_dir: Path) -> str | None:
    """Why the evaluation figures cannot be drawn (one line naming the mode to run), or None."""
    scores = Path(results_dir) / SCORES
    if not scores.is_file():
        return f"no {scores}: run detect for the ROC, SIC, score and latent plots"
    return stale_reason(results_dir, models_dir)


def _clear(plots_dir: Path, folders: tuple[str, ...]) -> int:
    """Remove the figures of earlier runs from ``folders`` (a score that is gone, or results
    that are stale, must not leave its figures behind); returns how many went."""
    removed = 0
    for folder in folders:
        for path in sorted((plots_dir / folder).glob("*")):
            if path.is_file() and path.suffix in FIGURE_SUFFIXES:
                path.unlink()
                removed += 1
    return removed


def _evaluation_table(config: Config, results_dir: Path) -> ScoreTable:
    check_style_available(config.latent_space_plot_style)
    table = read_scores(results_dir / SCORES)
    if table.is_signal.all():
        raise DataError(f"{results_dir / SCORES}: no background events to plot against "
                        "(add bkg_test_* samples)")
    if not table.is_signal.any():
        log.warning("%s: no signal events: drawing score distributions and latent plots; "
                    "no ROC or SIC curves", results_dir / SCORES)
    return table


def make_plots(config: Config, results_dir: Path, plots_dir: Path, which: str = "all",
               models_dir: Path | None = None) -> list[Path]:
    """Draw the training and/or evaluation figures into ``plots_dir`` and refresh report.html.

    ``models_dir`` (default: ``models`` beside ``results_dir``) is what the results must come
    from. ``test_metrics`` without current results is a DataError; ``all`` then draws the
    training figures and names what is missing. Returns every file written.
    """
    if which not in WHICH:
        raise UsageError(f"plot: unknown selection {which!r}; use one of {', '.join(WHICH)}")
    results_dir, plots_dir = Path(results_dir), Path(plots_dir)
    models_dir = Path(models_dir) if models_dir is not None else results_dir.parent / "models"
    train, test = which in ("all", "train_metrics"), which in ("all", "test_metrics")
    problem = evaluation_problem(results_dir, models_dir)
    if test and problem is not None and which == "test_metrics":
        raise DataError(problem)
    history_file = results_dir / HISTORY
    history = None
    if (train and (which == "train_metrics" or problem is not None)) or history_file.is_file():
        history = read_history(history_file)  # a DataError naming train when missing
    elif train:
        log.warning("no %s: run train for the loss plots", history_file)

    inputs = PlotInputs(config, plots_dir, history=history if train else None)
    if problem is None:
        if test:
            inputs.table = _evaluation_table(config, results_dir)
        inputs.metrics = load_metrics(results_dir)
    else:
        removed = _clear(plots_dir, EVALUATION_FOLDERS)
        note = f" (removed {removed} evaluation figures of earlier results)" if removed else ""
        log.warning("%s; drew the training plots only%s", problem, note)
    if inputs.table is not None:
        inputs.primary = primary_score(inputs.metrics, inputs.table.scores)
        inputs.embeddings = embed_views(inputs.table, config)
        if inputs.table.is_signal.any():
            inputs.curves = {s: score_curves(inputs.table, s) for s in inputs.table.scores}

    start = time.perf_counter()
    _clear(plots_dir, ((LOSS_FOLDER,) if inputs.history else ())
           + (EVALUATION_FOLDERS if inputs.table is not None else ()))
    tasks = plan(inputs)
    written = run_tasks(inputs, tasks, config.parallel_workers)
    log.info("%d figures (PDF + PNG) written under %s in %.1f s", len(tasks), plots_dir,
             time.perf_counter() - start)
    report = ReportInputs(
        title=f"BEAD report: {config.model_name} with {config.loss_function}", config=config,
        history=history, metrics=inputs.metrics, table=inputs.table, problem=problem)
    written.append(write_report(plots_dir, report))
    return written
