"""The training loop (SPEC §8): the engine that runs a model, not the model itself.

Data lives on the device as whole tensors and is batched through a shuffled index, seeded per
epoch (so a resumed run shuffles exactly as an uninterrupted one). After every epoch the history
and ``last.pt`` are written, so an interruption loses at most one epoch. Under torchrun each
rank trains on its part of every batch (:mod:`bead.training.distributed`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

from bead import interrupt
from bead.config import Config
from bead.config.schema import annealing_entries
from bead.errors import BeadError, DataError, UsageError
from bead.fileio import remove_stale_temporaries
from bead.levels import parse_levels
from bead.losses.catalog import check_compatible
from bead.losses.objective import Objective, StepResult
from bead.models.base import BeadModel
from bead.models.batch import Batch
from bead.prepare.manifest import PREPARATION_KEYS, Manifest, read_manifest
from bead.stats import MIN_VALIDATION_EVENTS
from bead.training import distributed
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
from bead.training.compile import compiled_forward
from bead.training.data import holdout_generators, load_training_split, sample_layout
from bead.training.history import History
from bead.training.inputs import InMemoryInputs, TrainingInputs, batch_slices
from bead.training.optim import build_optimizer, build_scheduler, current_lr
from bead.training.runtime import Runtime, deterministic_algorithms, make_runtime, seed_everything
from bead.training.schedule import Schedule, trigger_signals
from bead.training.stopping import BestTracker
from bead.training.stream import StreamedInputs, should_stream

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


class _Sums:
    """Weighted running sums of loss components, kept on the device (no sync): the values of
    a batch are stacked and weighed in one product, not one by one."""

    def __init__(self) -> None:
        self.names: list[str] | None = None  # in the order of the means
        self.per_event: list[str] = []  # weighed event by event
        self.scalars: list[str] = []  # batch-level terms and "total", weighed by the batch
        self.order: list[int] = []  # per_event + scalars -> names
        self.sums: Tensor | None = None
        self.weight: Tensor | None = None

    def add(self, result: StepResult, weight: Tensor) -> None:
        """Per-event components weigh each event; a batch-level term and the loss itself
        ("total", per-event part plus batch-level terms) weigh their batch by its sum |w|."""
        scalars = {**result.batch_terms, "total": result.total}
        if self.names is None:  # as the components come, "total" where it was among them
            self.names = list(dict.fromkeys([*result.components, *scalars]))
            self.per_event = [n for n in self.names if n not in scalars]
            self.scalars = [n for n in self.names if n in scalars]
            self.order = [(self.per_event + self.scalars).index(n) for n in self.names]
        total = weight.abs().sum()
        # (values * weight).sum, not a matmul: the same float sums as the loss's weighted mean,
        # so with no batch-level term "total" equals the sum of its per-event parts exactly.
        per_event = ((torch.stack([result.components[n].detach().float()
                                   for n in self.per_event]) * weight.float()).sum(dim=1)
                     if self.per_event else weight.new_zeros(0, dtype=torch.float32))
        batch = torch.stack([scalars[n].detach().float() for n in self.scalars]) * total
        part = torch.cat([per_event, batch])[self.order]
        self.sums = part if self.sums is None else self.sums + part
        self.weight = total if self.weight is None else self.weight + total

    def means(self) -> dict[str, float]:
        """Epoch means over every rank, normalised like the loss (sum |w|): with unit weights,
        per-event means however the events were batched."""
        assert self.names is not None and self.sums is not None and self.weight is not None, \
            "no batch was accumulated"
        sums, weight = distributed.reduce_sums(dict(zip(self.names, self.sums, strict=True)),
                                               self.weight)
        norm = weight.clamp(min=torch.finfo(weight.dtype).tiny)
        values = torch.stack([sums[n] for n in self.names]) / norm
        return dict(zip(self.names, values.tolist(), strict=True))


def evaluate(
    model: BeadModel, objective: Objective, data: Batch, runtime: Runtime,
    batch_size: int = EVAL_BATCH,
) -> dict[str, float]:
    """Epoch means of every loss component over ``data``, in eval mode without gradients (in a
    process group: over every rank's ``data``)."""
    order = torch.arange(len(data), device=data.weight.device)
    return evaluate_batches(model, objective,
                            (data.select(idx) for idx in batch_slices(len(data), batch_size,
                                                                      order)), runtime)


def evaluate_batches(model: BeadModel, objective: Objective, batches: Iterable[Batch],
                     runtime: Runtime) -> dict[str, float]:
    """:func:`evaluate` over the given batches."""
    was_training = model.training
    model.eval()
    sums = _Sums()
    with torch.no_grad():
        for batch in batches:
            interrupt.check_interrupted()
            with runtime.autocast():
                result = objective.step(model, batch)
            sums.add(result, batch.weight)
    model.train(was_training)
    return sums.means()


class Trainer:
    """Model, loss, optimizer, scheduler and best-epoch tracking of one training run."""

    def __init__(
        self, config: Config, runtime: Runtime, inputs: TrainingInputs, layout: dict,
        scalers_sha256: str, prepared_key: str = "",
    ) -> None:
        check_compatible(config.model_name, config.loss_function)
        self.config, self.runtime, self.inputs = config, runtime, inputs
        self.spec = ModelSpec.from_config(config, layout, scalers_sha256, prepared_key)
        self.model = self.spec.build().to(runtime.device)
        self.objective = self.spec.objective()
        self.schedule = Schedule(annealing_entries(config), self.objective.weights)
        # What the loop calls: the model, in DDP in a process group, compiled on request.
        self.net: torch.nn.Module = self.model
        if distributed.is_active():
            self.net = distributed.wrap_model(self.model, runtime.device, self._probe)
        if config.compile:
            self.net = compiled_forward(self.net)
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

    # --- one epoch ---------------------------------------------------------------------------

    def _probe(self) -> None:
        """One forward and backward pass on two events, without a step (see wrap_model)."""
        with self.runtime.autocast():
            self.objective.step(self.model, self.inputs.probe_batch()).total.backward()

    def train_epoch(self) -> dict[str, float]:
        """One pass over the shuffled training events (in a process group, this rank's part of
        every batch); returns the epoch means."""
        self.model.train()
        clip, runtime, seed = self.config.gradient_clip, self.runtime, self.config.seed
        distributed.seed_rank(seed, self.epoch, runtime)
        sums = _Sums()
        for batch, scale in self.inputs.train_batches(self.epoch, seed, self.config.batch_size):
            interrupt.check_interrupted()
            with runtime.autocast():
                result = self.objective.step(self.net, batch)
            loss = result.total if scale is None else result.total * scale
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
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
        n_train = len(self.inputs)
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
                val_means = evaluate_batches(
                    self.model, self.objective,
                    self.inputs.val_batches(max(EVAL_BATCH, config.batch_size)), self.runtime)
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
            len(self.history.epoch) * len(self.inputs) / self.train_seconds)
        # Named loss weights (an annealing schedule's) as rank 0 has them, on every rank.
        self.objective.weights = distributed.broadcast_weights(self.objective.weights,
                                                               self.runtime.device)

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


def training_inputs(config: Config, manifest: Manifest, levels: tuple[str, ...],
                    runtime: Runtime) -> TrainingInputs:
    """The bkg_train events in memory, or streamed from disk (``data_mode``)."""
    holdout = holdout_generators(config.holdout_generator)
    if should_stream(config.data_mode, manifest, levels):
        return StreamedInputs(manifest, levels, runtime.device, runtime,
                              config.weighted_training, holdout)
    train_data, val_data = load_training_split(manifest, levels, runtime.device,
                                               config.weighted_training, holdout)
    return InMemoryInputs(train_data, val_data, runtime)


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
        inputs = training_inputs(config, manifest, levels, runtime)
        distributed.check_world(len(inputs), inputs.n_val, config.batch_size,
                                runtime.world_size, str(manifest.path))
        layout = sample_layout(manifest, inputs.probe_batch())
        log.info("training %s with %s on %d events (%d validation) on %s%s", config.model_name,
                 config.loss_function, len(inputs), inputs.n_val, runtime.device,
                 ", streamed from disk" if isinstance(inputs, StreamedInputs) else "")
        log.debug("inputs from %s: %s; settings: %s", tensors_dir,
                  ", ".join(f"{lv} [{lo.n_slots}, {lo.n_features}]" for lv, lo in layout.items()),
                  config.model_dump(exclude={"overlay_roc_projects", "gen_signal_points"}))
        if inputs.n_val < MIN_VALIDATION_EVENTS:
            log.warning("only %d validation events (fewer than %d): early stopping and the "
                        "learning-rate schedule follow statistical noise", inputs.n_val,
                        MIN_VALIDATION_EVENTS)
        trainer = Trainer(config, runtime, inputs, layout, manifest.scalers_sha256,
                          manifest.key)
        if runtime.is_main:  # what a killed run left half-written
            for folder in (models_dir, results_dir):
                remove_stale_temporaries(folder)
        if resume and (models_dir / LAST).is_file():
            trainer.restore(models_dir)
        else:
            if resume and runtime.is_main:
                log.warning("no %s to resume from: starting afresh, and this run will replace "
                            "the model in %s", models_dir / LAST, models_dir)
            elif runtime.is_main:
                _say_if_interrupted(models_dir)
            trainer.replaces_previous = True
        return trainer.fit(models_dir, results_dir, progress)
