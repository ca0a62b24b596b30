"""Every figure as an independent task, drawn in ``parallel_workers`` processes.

The inputs (history, score table, metrics and each score's ROC curves) are read and computed
once in the parent and handed to each worker once; a task then names one figure. Drawing, not
computing, is what takes the time (about 0.3 s per figure for PDF + PNG), so the figures are
spread over the workers, longest first.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bead.config import Config
from bead.evaluation.scores import ScoreTable
from bead.plotting.inputs import observables
from bead.plotting.latent import Embedding, plot_latent, plot_uncertainty
from bead.plotting.loss import plot_component, plot_lr
from bead.plotting.roc import (
    ScoreCurves,
    plot_roc,
    plot_roc_comparison,
    plot_roc_per_generator,
    plot_sic,
)
from bead.plotting.scores import plot_score_distribution
from bead.plotting.sculpting import plot_sculpting, sculpting_masses
from bead.training.history import History

Task = tuple[str, str]  # (figure kind, its argument: a score, a component or a latent view)


@dataclass
class PlotInputs:
    """What the figures are drawn from: ``curves`` holds the ROC curves of every score and
    ``embeddings`` the 2D projection of every latent view, all computed in the parent."""

    config: Config
    plots_dir: Path
    history: History | None = None
    table: ScoreTable | None = None
    metrics: dict[str, Any] | None = None
    curves: dict[str, ScoreCurves] = field(default_factory=dict)
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    primary: str = ""


def plan(inputs: PlotInputs) -> list[Task]:
    """The figures to draw, the slowest kinds first so that the workers finish together."""
    tasks: list[Task] = []
    if inputs.table is not None:
        tasks += [("latent", stem) for stem in inputs.embeddings]
        if "logvar" in inputs.table.latents:
            tasks.append(("uncertainty", ""))
        if inputs.curves:
            tasks.append(("compare", ""))
        models = [s for s in inputs.table.scores
                  if s not in observables(inputs.metrics, inputs.table.scores)]
        for kind in ("roc", "roc_generator", "sic"):
            tasks += [(kind, s) for s in models if s in inputs.curves]
        tasks += [("scores", s) for s in models]
        tasks += [("sculpting", m) for m in sculpting_masses(inputs.metrics)]
    if inputs.history is not None:
        history = inputs.history
        tasks += [("loss", c) for c in dict.fromkeys([*history.train, *history.val])]
        if len(history.lr) == len(history.epoch) and len(history.lr):
            tasks.append(("lr", ""))
    return tasks


def draw(inputs: PlotInputs, task: Task) -> list[Path]:
    """Draw one figure (PDF + PNG); returns the files written."""
    kind, arg = task
    root, table, metrics = inputs.plots_dir, inputs.table, inputs.metrics or {}
    figures: dict[str, Callable[[], list[Path]]] = {
        "loss": lambda: plot_component(inputs.history, arg, root / "loss"),
        "lr": lambda: plot_lr(inputs.history, root / "loss"),
        "roc": lambda: plot_roc(inputs.curves[arg], metrics, arg, root / "roc"),
        "roc_generator": lambda: plot_roc_per_generator(inputs.curves[arg], metrics, arg,
                                                        root / "roc"),
        "sic": lambda: plot_sic(inputs.curves[arg], arg, root / "sic"),
        "scores": lambda: plot_score_distribution(table, arg, root / "scores"),
        "compare": lambda: plot_roc_comparison(
            inputs.curves, metrics, inputs.primary,
            observables(inputs.metrics, inputs.curves), root / "roc"),
        "latent": lambda: plot_latent(table, inputs.embeddings[arg], arg,
                                      inputs.config.latent_space_plot_style,
                                      root / "latent_space"),
        "uncertainty": lambda: plot_uncertainty(table, root / "latent_space"),
        "sculpting": lambda: plot_sculpting(table, metrics, arg, root / "sculpting"),
    }
    return figures[kind]()


_WORKER_INPUTS: PlotInputs | None = None


def _start_worker(inputs: PlotInputs) -> None:
    """Keep the inputs for this worker's tasks; Ctrl-C is the parent's to handle (it stops
    handing out tasks and waits for the figures in progress, each under a second)."""
    global _WORKER_INPUTS
    _WORKER_INPUTS = inputs
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _draw_in_worker(task: Task) -> list[Path]:
    assert _WORKER_INPUTS is not None
    return draw(_WORKER_INPUTS, task)


def _context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it: the workers then start without importing anything."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_tasks(inputs: PlotInputs, tasks: list[Task], workers: int) -> list[Path]:
    """Draw ``tasks`` in up to ``workers`` processes (in this one when 1); files in task order."""
    workers = max(1, min(workers, len(tasks), os.cpu_count() or 1))
    if workers == 1:
        return [path for task in tasks for path in draw(inputs, task)]
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start_worker,
                             initargs=(inputs,)) as pool:
        futures = [pool.submit(_draw_in_worker, task) for task in tasks]
        try:
            return [path for future in futures for path in future.result()]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
