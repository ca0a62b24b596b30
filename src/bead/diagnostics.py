"""The diagnostics mode (SPEC §11): where does a training step spend its time and memory?

A short run of the project's model on its prepared data — a fresh model built from the config,
a few training steps and a few scoring batches, never written to ``models/`` — measured three
ways at once:

- **phases**: wall time of data (cutting a batch from the in-memory tensors), forward (model
  and loss terms), backward, optimizer (zero_grad, clipping, step) and scoring (forward in eval
  mode without gradients), synchronised with the GPU when there is one, on steps run without
  the profiler so its overhead does not count; throughput in events/s from the same steps.
- **torch.profiler** on a few more steps (CPU, plus CUDA when the device is a GPU): the top
  operators by self time (text and JSON) and a Chrome trace (``trace.json``, open it in
  https://ui.perfetto.dev or chrome://tracing), with the phases as named ranges ``bead/<phase>``.
- **resources** sampled every ``SAMPLE_INTERVAL`` s by a background thread: CPU use of this
  process and of the machine, resident memory (psutil), GPU utilisation and memory (NVML via
  ``nvidia-ml-py`` when installed — ``pip install 'bead-hep[gpu]'`` — else memory only from
  torch.cuda), drawn over time with the phases shaded.

Everything goes to ``output/diagnostics/`` through a staging folder, ``diagnostics.json`` (the
summary the report reads; ``SUMMARY_VERSION``) last, so a failed run leaves the previous set.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from matplotlib.axes import Axes

from bead.config import Config
from bead.diagnostics_summary import DIAGNOSTICS_DIR, SUMMARY, SUMMARY_VERSION, read_summary
from bead.fileio import atomic_path, atomic_write_json, atomic_write_text, staged_folder
from bead.levels import parse_levels
from bead.models.batch import Batch
from bead.plotting.style import add_headroom, bead_label, color, hep_style, new_figure, save_figure
from bead.prepare.manifest import read_manifest
from bead.training.checkpoint import ModelSpec
from bead.training.data import holdout_generators, load_training_split, sample_layout
from bead.training.optim import build_optimizer
from bead.training.runtime import Runtime, make_runtime, seed_everything
from bead.training.trainer import EVAL_BATCH, batch_slices, check_preparation

__all__ = ["DIAGNOSTICS_DIR", "Plan", "read_summary", "run_diagnostics"]

log = logging.getLogger(__name__)

OPERATORS_TEXT = "operators.txt"
OPERATORS_JSON = "operators.json"
TRACE = "trace.json"
RESOURCES = "resources.json"

PHASES = ("data", "forward", "backward", "optimizer", "scoring")
WARMUP_STEPS = 3  # first steps pay one-off costs (allocator, kernels): not timed
TRAIN_STEPS = 20  # timed training steps
SCORE_BATCHES = 5  # timed scoring batches
PROFILED_STEPS = 3  # training steps, and as many scoring batches, under torch.profiler
TOP_OPERATORS = 30
SAMPLE_INTERVAL = 0.05  # seconds between resource samples
_MB = 1024.0 ** 2


# --- resource sampling ------------------------------------------------------------------------

GpuReader = Callable[[], tuple[float | None, float | None]]


def _gpu_reader(device: torch.device) -> tuple[str | None, GpuReader | None]:
    """(source, reader of (utilisation %, memory MB)) for a CUDA device, else (None, None)."""
    if device.type != "cuda":
        return None, None
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)

        def nvml() -> tuple[float | None, float | None]:
            used = pynvml.nvmlDeviceGetMemoryInfo(handle).used
            return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), used / _MB

        return "nvml", nvml
    except Exception:  # no nvidia-ml-py, or NVML unusable here: memory from torch only
        def torch_memory() -> tuple[float | None, float | None]:
            return None, torch.cuda.memory_reserved(index) / _MB

        return "torch.cuda", torch_memory


@dataclass
class ResourceSampler:
    """Samples CPU, memory and GPU use in a background thread until stopped."""

    gpu: GpuReader | None = None
    interval: float = SAMPLE_INTERVAL
    samples: dict[str, list[float | None]] = field(default_factory=lambda: {
        k: [] for k in ("t", "cpu_process", "cpu_system", "rss_mb", "gpu_util", "gpu_mb")})

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bead-diagnostics", daemon=True)
        self._process = psutil.Process()
        self.start_time = time.perf_counter()

    def _sample(self) -> None:
        util, gpu_mb = self.gpu() if self.gpu is not None else (None, None)
        values = (time.perf_counter() - self.start_time, self._process.cpu_percent(None),
                  psutil.cpu_percent(None), self._process.memory_info().rss / _MB, util, gpu_mb)
        for key, value in zip(self.samples, values, strict=True):
            self.samples[key].append(value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ResourceSampler:
        self._process.cpu_percent(None)  # the first reading only sets the reference point
        psutil.cpu_percent(None)
        self.start_time = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # at least one sample, however short the run


# --- phase timing -----------------------------------------------------------------------------

@dataclass
class PhaseClock:
    """Wall time per phase, each also a named range in the profiler's trace."""

    device: torch.device
    start_time: float
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    batches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    stages: list[tuple[str, float, float]] = field(default_factory=list)
    counting: bool = False

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._sync()
        started = time.perf_counter()
        with torch.profiler.record_function(f"bead/{name}"):
            yield
        self._sync()
        if self.counting:
            self.seconds[name] += time.perf_counter() - started
            self.batches[name] += 1

    @contextlib.contextmanager
    def stage(self, name: str, counting: bool = False) -> Iterator[None]:
        """A stretch of the run (loading, warm-up, ...), shaded in the resource plots; only
        the phases of ``counting`` stages are timed."""
        started = time.perf_counter() - self.start_time
        self.counting = counting
        try:
            yield
        finally:
            self.counting = False
            self.stages.append((name, started, time.perf_counter() - self.start_time))


# --- the short run ----------------------------------------------------------------------------

@dataclass
class _Run:
    """A fresh model of the config with its objective and optimizer, and the data."""

    config: Config
    runtime: Runtime
    train: Batch
    val: Batch
    spec: ModelSpec

    def __post_init__(self) -> None:
        self.model = self.spec.build().to(self.runtime.device)
        self.objective = self.spec.objective()
        self.optimizer = build_optimizer(self.config.optimizer, self.model.parameters(),
                                         self.config.lr)
        self.scaler = torch.amp.GradScaler(self.runtime.device.type,
                                           enabled=self.runtime.use_grad_scaler)
        self._shuffle = torch.Generator().manual_seed(self.config.seed)
        self._queue: list[torch.Tensor] = []

    def next_batch(self) -> torch.Tensor:
        """Indices of the next training batch; reshuffled after each pass over the data."""
        if not self._queue:
            order = torch.randperm(len(self.train), generator=self._shuffle)
            self._queue = batch_slices(len(self.train), self.config.batch_size, order)
        return self._queue.pop(0).to(self.train.weight.device)

    def train_step(self, clock: PhaseClock) -> int:
        self.model.train()
        idx = self.next_batch()
        with clock.phase("data"):
            batch = self.train.select(idx)
        with clock.phase("forward"), self.runtime.autocast():
            result = self.objective.step(self.model, batch)
        with clock.phase("backward"):
            self.scaler.scale(result.total).backward()
        with clock.phase("optimizer"):
            if self.config.gradient_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                               self.config.gradient_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        return len(idx)

    def score_batch(self, clock: PhaseClock, index: int) -> int:
        """One scoring batch of validation events (cycling through them), as detect runs it."""
        self.model.eval()
        slices = batch_slices(len(self.val), max(EVAL_BATCH, self.config.batch_size))
        idx = slices[index % len(slices)].to(self.val.weight.device)
        with clock.phase("scoring"), torch.no_grad(), self.runtime.autocast():
            self.objective.step(self.model, self.val.select(idx))
        return len(idx)


def _profiler(device: torch.device) -> torch.profiler.profile:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return torch.profiler.profile(activities=activities, record_shapes=True,
                                  profile_memory=True)


def _operators(prof: torch.profiler.profile, on_gpu: bool) -> tuple[list[dict[str, Any]], str]:
    """The top operators by self time (device time on a GPU), as rows and as a text table."""
    sort = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if not e.key.startswith(("bead/", "ProfilerStep"))]
    events.sort(key=lambda e: getattr(e, sort), reverse=True)
    rows = [{"name": e.key, "calls": int(e.count),
             "self_cpu_ms": e.self_cpu_time_total / 1e3, "cpu_total_ms": e.cpu_time_total / 1e3,
             "self_device_ms": e.self_device_time_total / 1e3,
             "device_total_ms": e.device_time_total / 1e3,
             "self_cpu_memory_mb": e.self_cpu_memory_usage / _MB,
             "self_device_memory_mb": e.self_device_memory_usage / _MB}
            for e in events[:TOP_OPERATORS]]
    return rows, prof.key_averages().table(sort_by=sort, row_limit=TOP_OPERATORS)


@dataclass(frozen=True)
class Plan:
    """How many steps each stage of the short run takes."""

    warmup: int = WARMUP_STEPS
    train: int = TRAIN_STEPS
    score: int = SCORE_BATCHES
    profiled: int = PROFILED_STEPS

    def __post_init__(self) -> None:
        if self.warmup < 0 or min(self.train, self.score, self.profiled) < 1:
            raise ValueError(f"a diagnostics plan needs warmup >= 0 and at least one step of "
                             f"every other stage, got {self}")


def run_diagnostics(config: Config, tensors_dir: Path, out_dir: Path,
                    plan: Plan | None = None) -> dict[str, Any]:
    """Profile a short training and scoring run of ``config``'s model on the prepared data in
    ``tensors_dir``; write the report files into ``out_dir`` and return the summary."""
    plan = plan or Plan()
    started = time.perf_counter()
    runtime = make_runtime(config)
    manifest = read_manifest(Path(tensors_dir))  # names the file and prepare_inputs if absent
    check_preparation(manifest, config)
    gpu_source, gpu = _gpu_reader(runtime.device)
    with ResourceSampler(gpu) as sampler:
        clock = PhaseClock(runtime.device, sampler.start_time)
        seed_everything(config.seed)
        with clock.stage("loading"):
            train, val = load_training_split(manifest, parse_levels(config.input_level),
                                             runtime.device, config.weighted_training,
                                             holdout_generators(config.holdout_generator))
            spec = ModelSpec.from_config(config, sample_layout(manifest, train),
                                         manifest.scalers_sha256, manifest.key)
            run = _Run(config, runtime, train, val, spec)
        log.info("diagnostics: %s with %s on %s, %d training steps and %d scoring batches",
                 config.model_name, config.loss_function, runtime.device, plan.train,
                 plan.score)
        with clock.stage("warm-up"):
            for i in range(plan.warmup):
                run.train_step(clock)
                run.score_batch(clock, i)
        with clock.stage("training", counting=True):
            trained = sum(run.train_step(clock) for _ in range(plan.train))
        with clock.stage("scoring", counting=True):
            scored = sum(run.score_batch(clock, i) for i in range(plan.score))
        with clock.stage("profiled"), _profiler(runtime.device) as prof:
            for i in range(plan.profiled):
                run.train_step(clock)
                run.score_batch(clock, i)
    operators, table = _operators(prof, runtime.device.type == "cuda")
    summary = _summary(config, runtime, run, clock, sampler, plan, (trained, scored),
                       operators, gpu_source, time.perf_counter() - started)
    with staged_folder(Path(out_dir), last=(SUMMARY,)) as staging:
        with atomic_path(staging / TRACE) as tmp:
            prof.export_chrome_trace(str(tmp))
        atomic_write_text(staging / OPERATORS_TEXT, table + "\n")
        atomic_write_json(staging / OPERATORS_JSON, operators)
        atomic_write_json(staging / RESOURCES, {"samples": sampler.samples,
                                                "stages": clock.stages})
        plots = plot_diagnostics(sampler.samples, clock.stages, summary, staging)
        summary["files"]["plots"] = [p.name for p in plots]
        atomic_write_json(staging / SUMMARY, summary)
    log.info("diagnostics written to %s: %.0f training events/s, %.0f scoring events/s, peak "
             "memory %.0f MB", out_dir, summary["throughput"]["train_events_per_second"],
             summary["throughput"]["score_events_per_second"],
             summary["peak_memory"]["rss_mb"])
    return summary


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    known = [v for v in values if v is not None]
    return (float(np.mean(known)), float(np.max(known))) if known else (None, None)


def _summary(config: Config, runtime: Runtime, run: _Run, clock: PhaseClock,
             sampler: ResourceSampler, plan: Plan, events: tuple[int, int],
             operators: list[dict[str, Any]], gpu_source: str | None,
             seconds: float) -> dict[str, Any]:
    trained, scored = events
    timed = sum(clock.seconds.values())
    train_seconds = sum(clock.seconds[p] for p in PHASES if p != "scoring")
    device = str(runtime.device)
    if runtime.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(runtime.device)})"
    cpu_mean, cpu_max = _stats(sampler.samples["cpu_process"])
    gpu_mean, gpu_max = _stats(sampler.samples["gpu_util"])
    on_gpu = runtime.device.type == "cuda"
    return {
        "version": SUMMARY_VERSION, "device": device, "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(), "model_name": config.model_name,
        "loss_function": config.loss_function, "input_level": config.input_level,
        "batch_size": config.batch_size,
        "score_batch_size": min(len(run.val), max(EVAL_BATCH, config.batch_size)),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "events": {"train": len(run.train), "validation": len(run.val)},
        "steps": {"warmup": plan.warmup, "train": plan.train, "score_batches": plan.score,
                  "profiled": plan.profiled},
        "seconds": seconds,
        "phases": {p: {"seconds": clock.seconds[p],
                       "per_batch_ms": 1e3 * clock.seconds[p] / max(1, clock.batches[p]),
                       "fraction": clock.seconds[p] / timed if timed > 0 else None}
                   for p in PHASES},
        "throughput": {
            "train_events_per_second": trained / train_seconds if train_seconds else None,
            "score_events_per_second": (scored / clock.seconds["scoring"]
                                        if clock.seconds["scoring"] else None)},
        "peak_memory": {
            "rss_mb": max(v for v in sampler.samples["rss_mb"] if v is not None),
            "gpu_allocated_mb": torch.cuda.max_memory_allocated(runtime.device) / _MB
            if on_gpu else None,
            "gpu_reserved_mb": torch.cuda.max_memory_reserved(runtime.device) / _MB
            if on_gpu else None},
        "resources": {"interval_s": SAMPLE_INTERVAL, "samples": len(sampler.samples["t"]),
                      "cpu_percent_mean": cpu_mean, "cpu_percent_max": cpu_max,
                      "gpu_source": gpu_source, "gpu_utilisation_mean": gpu_mean,
                      "gpu_utilisation_max": gpu_max},
        "top_operators": operators[:10],
        "files": {"summary": SUMMARY, "operators_text": OPERATORS_TEXT,
                  "operators_json": OPERATORS_JSON, "trace": TRACE, "resources": RESOURCES},
    }


# --- plots ------------------------------------------------------------------------------------

STAGE_COLORS = {"loading": "0.85", "warm-up": "#fde0c5", "training": "#d4e6f5",
                "scoring": "#dcefd9", "profiled": "#eadcf0"}


def _shade_stages(ax: Axes, stages: list[tuple[str, float, float]]) -> None:
    for name, start, end in stages:
        ax.axvspan(start, end, color=STAGE_COLORS.get(name, "0.9"), lw=0, label=name)


def _time_plot(samples: dict[str, list[float | None]], stages: list[tuple[str, float, float]],
               curves: list[tuple[str, str, str]], ylabel: str, rlabel: str,
               base: Path) -> list[Path]:
    """Samples over time, one line per (key, label, colour) of ``curves``, stages shaded."""
    t = np.asarray(samples["t"], float)
    with hep_style():
        fig, ax = new_figure()
        _shade_stages(ax, stages)
        for key, label, col in curves:
            values = np.array([np.nan if v is None else v for v in samples[key]], float)
            ax.plot(t, values, color=col, label=label)
        ax.set_xlim(0.0, max(float(t.max()) if t.size else 1.0, 1e-3))
        ax.set_ylim(bottom=0.0)
        add_headroom(ax, 0.35)
        ax.set_xlabel("Time since start [s]")
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92), ncols=2, fontsize=10)
        bead_label(ax, rlabel=rlabel, text="Diagnostics")
        return save_figure(fig, base)


def plot_diagnostics(samples: dict[str, list[float | None]],
                     stages: list[tuple[str, float, float]], summary: dict[str, Any],
                     out_dir: Path) -> list[Path]:
    """Resource use over time (CPU, memory, GPU when sampled) and the time per phase."""
    rlabel = f"{summary['model_name']} on {summary['device']}"
    written = _time_plot(samples, stages, [
        ("cpu_process", "this process (100 % = 1 core)", "#3f90da"),
        ("cpu_system", "machine (100 % = all cores)", "#bd1f01")],
        "CPU use [%]", rlabel, out_dir / "resources_cpu")
    memory = [("rss_mb", "resident memory (RSS)", "#3f90da")]
    if any(v is not None for v in samples["gpu_mb"]):
        memory.append(("gpu_mb", "GPU memory", "#bd1f01"))
    written += _time_plot(samples, stages, memory, "Memory [MB]", rlabel,
                          out_dir / "resources_memory")
    if any(v is not None for v in samples["gpu_util"]):
        written += _time_plot(samples, stages, [("gpu_util", "GPU utilisation", "#bd1f01")],
                              "GPU utilisation [%]", rlabel, out_dir / "resources_gpu")
    with hep_style():
        fig, ax = new_figure()
        per_batch = [summary["phases"][p]["per_batch_ms"] for p in PHASES]
        rows = range(len(PHASES))
        ax.barh(rows, per_batch, color=[color(i, False) for i in rows])
        for row, value in zip(rows, per_batch, strict=True):
            ax.text(value, row, f" {value:.3g} ms", va="center", fontsize=12)
        ax.set_yticks(rows, PHASES)
        ax.set_xlim(0.0, 1.3 * max(max(per_batch), 1e-3))
        ax.set_ylim(len(PHASES) - 0.5, -1.6)  # an empty row on top for the label
        ax.set_xlabel(f"Time per batch [ms] (training {summary['batch_size']}, scoring "
                      f"{summary['score_batch_size']} events)")
        bead_label(ax, rlabel=rlabel, text="Diagnostics")
        written += save_figure(fig, out_dir / "phases")
    return written
