"""The training loop (SPEC §8): the engine that runs a model, not the model itself.

Data lives on the device as whole tensors and is batched through a shuffled index, seeded per
epoch (so a resumed run shuffles exactly as an uninterrupted one). After every epoch the history
and ``last.pt`` are written, so an interruption loses at most one epoch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

from bead.config import Config
from bead.config.schema import annealing_entries
from bead.errors import BeadError, DataError, UsageError
from bead.levels import parse_levels
from bead.losses.catalog import check_compatible
from bead.losses.objective import Objective, StepResult
from bead.models.base import BeadModel
from bead.models.batch import Batch
from bead.prepare.manifest import PREPARATION_KEYS, Manifest, read_manifest
from bead.stats import MIN_VALIDATION_EVENTS
from bead.training.checkpoint import (
    BEST,
    LAST,
    ModelSpec,
    clone_state,
    epoch_file,
    load_torch,
    read_model_spec,
    save_torch,
    write_model_spec,
)
from bead.training.data import holdout_generators, load_training_split, sample_layout
from bead.training.history import History
from bead.training.optim import build_optimizer, build_scheduler, current_lr
from bead.training.runtime import Runtime, deterministic_algorithms, make_runtime, seed_everything
from bead.training.schedule import Schedule, trigger_signals
from bead.training.stopping import BestTracker

log = logging.getLogger(__name__)

EVAL_BATCH = 8192  # events per batch when only evaluating (no activations kept for backward)


@dataclass
class TrainResult:
    """The trained model (restored to its best-validation weights) and how training went."""

    model: BeadModel
    spec: ModelSpec
    history: History
    best_epoch: int
    best_val: float
    last_epoch: int
    stopped_early: bool
    seconds: float
    events_per_second: float


def batch_slices(n: int, batch_size: int, order: Tensor | None = None) -> list[Tensor]:
    """Index tensors of ``ceil(n / batch_size)`` near-equal batches (none of size 1 unless
    ``batch_size`` is 1), over ``order`` or over 0..n-1."""
    order = torch.arange(n) if order is None else order
    return list(torch.tensor_split(order, max(1, math.ceil(n / batch_size))))


class _Sums:
    """Weighted running sums of loss components, kept on the device (no sync)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.weight: Tensor | None = None

    def add(self, result: StepResult, weight: Tensor) -> None:
        """Per-event components weigh each event; a batch-level term and the loss itself
        ("total", per-event part plus batch-level terms) weigh their batch by its sum |w|."""
        total = weight.abs().sum()
        parts = {name: (weight * value.detach().float()).sum()
                 for name, value in result.components.items()}
        scalars = {**result.batch_terms, "total": result.total}
        parts.update({name: value.detach().float() * total for name, value in scalars.items()})
        for name, part in parts.items():
            self.sums[name] = self.sums[name] + part if name in self.sums else part
        self.weight = total if self.weight is None else self.weight + total

    def means(self) -> dict[str, float]:
        """Epoch means, normalised like the loss (sum |w|): with unit weights, per-event means
        however the events were batched."""
        assert self.weight is not None, "no batch was accumulated"
        norm = self.weight.clamp(min=torch.finfo(self.weight.dtype).tiny)
        return {name: float(value / norm) for name, value in self.sums.items()}


def evaluate(
    model: BeadModel, objective: Objective, data: Batch, runtime: Runtime,
    batch_size: int = EVAL_BATCH,
) -> dict[str, float]:
    """Epoch means of every loss component over ``data``, in eval mode without gradients."""
    was_training = model.training
    model.eval()
    sums = _Sums()
    with torch.no_grad():
        order = torch.arange(len(data), device=data.weight.device)
        for idx in batch_slices(len(data), batch_size, order):
            batch = data.select(idx)
            with runtime.autocast():
                result = objective.step(model, batch)
            sums.add(result, batch.weight)
    model.train(was_training)
    return sums.means()


class Trainer:
    """Model, loss, optimizer, scheduler and best-epoch tracking of one training run."""

    def __init__(
        self, config: Config, runtime: Runtime, train_data: Batch, val_data: Batch,
        layout: dict, scalers_sha256: str, prepared_key: str = "",
    ) -> None:
        check_compatible(config.model_name, config.loss_function)
        self.config, self.runtime = config, runtime
        self.train_data, self.val_data = train_data, val_data
        self.spec = ModelSpec.from_config(config, layout, scalers_sha256, prepared_key)
        self.model = self.spec.build().to(runtime.device)
        self.objective = self.spec.objective()
        self.schedule = Schedule(annealing_entries(config), self.objective.weights)
        self.optimizer = build_optimizer(config.optimizer, self.model.parameters(), config.lr)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(runtime.device.type,
                                           enabled=runtime.use_grad_scaler)
        self.tracker = BestTracker(config.early_stopping_patience, config.min_delta)
        self.history = History()
        self.epoch = 0
        self.stopped_early = False
        self.train_seconds = 0.0
        self.best_state: dict[str, Tensor] | None = None
        self.replaces_previous = False  # a fresh run: replace models/ at the first write
        self.shuffle = torch.Generator()

    # --- one epoch ---------------------------------------------------------------------------

    def train_epoch(self) -> dict[str, float]:
        """One pass over the shuffled training events; returns the epoch means."""
        self.model.train()
        data, clip = self.train_data, self.config.gradient_clip
        self.shuffle.manual_seed(self.config.seed + self.epoch)
        order = torch.randperm(len(data), generator=self.shuffle).to(data.weight.device)
        sums = _Sums()
        for idx in batch_slices(len(data), self.config.batch_size, order):
            batch = data.select(idx)
            with self.runtime.autocast():
                result = self.objective.step(self.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(result.total).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            sums.add(result, batch.weight)
        means = sums.means()
        if not math.isfinite(means["total"]):
            hint = ("a lower lr or a smaller gradient_clip" if clip > 0
                    else "a lower lr or gradient_clip > 0")
            raise BeadError(f"training diverged in epoch {self.epoch}: the training loss is "
                            f"{means['total']} (try {hint})")
        return means

    # --- checkpoints -------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_name": self.config.optimizer,
            "epoch": self.epoch,
            "epochs": self.config.epochs,  # the run's target, to tell an interrupted run
            "best_val": self.tracker.best,
            "tracker": self.tracker.state_dict(),
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "history": self.history.to_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": {"cpu": torch.get_rng_state()},
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        if self.runtime.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.runtime.device)
        return state

    def restore(self, models_dir: Path) -> None:
        """Continue from ``last.pt``: weights, optimizer, scheduler, best epoch, history, RNG."""
        saved = read_model_spec(models_dir)
        if saved != self.spec:
            changed = saved.changed(self.spec)
            raise UsageError(f"{models_dir / LAST}: cannot resume, the model settings changed "
                             f"({', '.join(changed)}); train without resume")
        state = load_torch(models_dir / LAST)
        if state["optimizer_name"] != self.config.optimizer:
            raise UsageError(f"{models_dir / LAST}: cannot resume, optimizer changed from "
                             f"'{state['optimizer_name']}' to '{self.config.optimizer}'")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.tracker.load_state_dict(state["tracker"])
        self.stopped_early = bool(state["stopped_early"])
        self.train_seconds = float(state["train_seconds"])
        self.history = History.from_dict(state["history"])
        if "schedule" in state:
            self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and self.runtime.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.runtime.device)
        if self.tracker.best_epoch > 0:
            self.best_state = load_torch(models_dir / BEST, device=self.runtime.device)
        log.info("resuming from %s after epoch %d (best epoch %d)", models_dir / LAST,
                 self.epoch, self.tracker.best_epoch)

    # --- the loop ----------------------------------------------------------------------------

    def fit(self, models_dir: Path, results_dir: Path, progress: bool) -> TrainResult:
        config, main = self.config, self.runtime.is_main
        n_train = len(self.train_data)
        if self.stopped_early:
            log.info("training had stopped early at epoch %d; nothing left to resume",
                     self.epoch)
        columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[train]} | val {task.fields[val]} | "
                              "{task.fields[rate]} ev/s"), TimeElapsedColumn())
        bar = Progress(*columns, console=Console(stderr=True), disable=not (progress and main))
        with bar:
            task = bar.add_task("train", total=config.epochs, completed=self.epoch,
                                train="-", val="-", rate="-")
            while self.epoch < config.epochs and not self.stopped_early:
                self.epoch += 1
                self.schedule.start_epoch(self.epoch)
                started = time.perf_counter()
                lr = current_lr(self.optimizer)
                train_means = self.train_epoch()
                train_seconds = time.perf_counter() - started
                val_means = evaluate(self.model, self.objective, self.val_data, self.runtime,
                                     max(EVAL_BATCH, config.batch_size))
                self._end_epoch(lr, train_means, val_means, train_seconds,
                                time.perf_counter() - started)
                if main:
                    self._write(models_dir, results_dir)
                rate = n_train / train_seconds
                bar.update(task, completed=self.epoch, train=f"{train_means['total']:.4g}",
                           val=f"{val_means['total']:.4g}", rate=f"{rate:,.0f}")
                log.info("epoch %d/%d: train %.5g, val %.5g, lr %.3g, %.0f events/s%s",
                         self.epoch, config.epochs, train_means["total"], val_means["total"],
                         lr, rate, " (best)" if self.tracker.best_epoch == self.epoch else "")
                if self.stopped_early:
                    log.info("early stopping after epoch %d: no improvement for %d epochs; "
                             "keeping epoch %d", self.epoch, self.tracker.bad_epochs,
                             self.tracker.best_epoch)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return TrainResult(
            model=self.model, spec=self.spec, history=self.history,
            best_epoch=self.tracker.best_epoch, best_val=self.tracker.best,
            last_epoch=self.epoch, stopped_early=self.stopped_early,
            seconds=self.history.seconds, events_per_second=self.history.events_per_second)

    def _end_epoch(
        self, lr: float, train_means: dict[str, float], val_means: dict[str, float],
        train_seconds: float, seconds: float,
    ) -> None:
        """Book-keeping after an epoch: history, best weights, scheduler, early stopping."""
        self.history.append(self.epoch, lr, train_means, val_means, self.objective.in_force())
        if self.tracker.update(val_means["total"], self.epoch):
            self.best_state = clone_state(self.model)
        if self.scheduler is not None:
            self.scheduler.step(val_means["total"])
        self.schedule.end_epoch(trigger_signals(
            self.tracker.bad_epochs, self.config.early_stopping_patience,
            current_lr(self.optimizer) < lr))
        self.stopped_early = self.config.early_stopping and self.tracker.exhausted
        self.train_seconds += train_seconds
        self.history.best_epoch = self.tracker.best_epoch
        self.history.seconds += seconds
        self.history.events_per_second = (
            len(self.history.epoch) * len(self.train_data) / self.train_seconds)

    def _write(self, models_dir: Path, results_dir: Path) -> None:
        if self.replaces_previous:
            # Only now, with a first good epoch in hand, does the previous model go: a run that
            # fails or is killed in its first epoch leaves it usable.
            for name in (BEST, LAST):
                (models_dir / name).unlink(missing_ok=True)
            write_model_spec(models_dir, self.spec)
            self.replaces_previous = False
        if self.tracker.best_epoch == self.epoch:
            save_torch(models_dir / BEST, self.best_state)
        state = self.checkpoint()
        save_torch(models_dir / LAST, state)
        if (self.config.intermittent_model_saving
                and self.epoch % self.config.intermittent_saving_patience == 0):
            save_torch(models_dir / epoch_file(self.epoch), state)
        self.history.write(results_dir)


def check_preparation(manifest: Manifest, config: Config) -> None:
    """The tensors must come from this config. Each preparation has its own folder, named by a
    hash of these settings, so this guards against a damaged or hand-edited folder."""
    changed = [k for k in PREPARATION_KEYS if manifest.settings.get(k) != getattr(config, k)]
    if changed:
        prepared = ", ".join(f"{k} = {manifest.settings.get(k)!r}" for k in changed)
        wanted = ", ".join(f"{k} = {getattr(config, k)!r}" for k in changed)
        raise DataError(f"{manifest.path}: the tensors were prepared with {prepared}, but the "
                        f"config has {wanted}; rerun prepare_inputs for this project")


def _say_if_interrupted(models_dir: Path) -> None:
    """A fresh run over an interrupted one: say so, and how to continue it instead."""
    if not (models_dir / LAST).is_file():
        return
    try:
        state = load_torch(models_dir / LAST)
        done, target = int(state["epoch"]), int(state["epochs"])
        stopped = bool(state["stopped_early"])
    except (DataError, KeyError, TypeError, ValueError):
        return  # unreadable or from an older version: the fresh run replaces it anyway
    if done < target and not stopped:
        log.warning("%s holds an interrupted run (epoch %d of %d): starting afresh; use "
                    "-o resume to continue it instead", models_dir / LAST, done, target)


def train(
    config: Config, tensors_dir: Path, models_dir: Path, results_dir: Path,
    progress: bool = True, resume: bool = False, runtime: Runtime | None = None,
) -> TrainResult:
    """Train ``config``'s model on the bkg_train tensors; write checkpoints and history.

    With ``resume`` and an existing ``models/last.pt``, training continues from it (the epoch
    count, optimizer, scheduler, best epoch and random state carry on); otherwise it starts
    afresh and replaces the previous best.pt/last.pt once its first epoch succeeded.
    """
    runtime = runtime or make_runtime(config)
    models_dir, results_dir = Path(models_dir), Path(results_dir)
    with deterministic_algorithms(config.deterministic_algorithm):
        seed_everything(config.seed)
        manifest = read_manifest(Path(tensors_dir))
        check_preparation(manifest, config)
        levels = parse_levels(config.input_level)
        train_data, val_data = load_training_split(manifest, levels, runtime.device,
                                                   config.weighted_training,
                                                   holdout_generators(config.holdout_generator))
        layout = sample_layout(manifest, train_data)
        log.info("training %s with %s on %d events (%d validation) on %s", config.model_name,
                 config.loss_function, len(train_data), len(val_data), runtime.device)
        log.debug("inputs from %s: %s; settings: %s", tensors_dir,
                  ", ".join(f"{lv} {list(train_data[lv].x.shape[1:])}" for lv in levels),
                  config.model_dump(exclude={"overlay_roc_projects", "gen_signal_points"}))
        if len(val_data) < MIN_VALIDATION_EVENTS:
            log.warning("only %d validation events (fewer than %d): early stopping and the "
                        "learning-rate schedule follow statistical noise", len(val_data),
                        MIN_VALIDATION_EVENTS)
        trainer = Trainer(config, runtime, train_data, val_data, layout,
                          manifest.scalers_sha256, manifest.key)
        if resume and (models_dir / LAST).is_file():
            trainer.restore(models_dir)
        else:
            if resume:
                log.warning("no %s to resume from: starting afresh, and this run will replace "
                            "the model in %s", models_dir / LAST, models_dir)
            else:
                _say_if_interrupted(models_dir)
            trainer.replaces_previous = True
        return trainer.fit(models_dir, results_dir, progress)
