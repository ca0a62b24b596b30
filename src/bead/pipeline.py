"""One function per mode, and chain (SPEC §1). Each mode reads only what earlier modes wrote.

Heavy imports (torch, pythia, matplotlib) happen inside the mode that needs them, so a quick
command such as ``new_project`` starts fast.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bead.config import (
    NOT_YET_IMPLEMENTED,
    Config,
    create_project,
    load_project_config,
    make_config,
    read_legacy_config,
)
from bead.errors import UsageError
from bead.fileio import remove_stale_temporaries
from bead.prepare.manifest import prepared_dir
from bead.project import ProjectPaths, workspaces_root

if TYPE_CHECKING:
    from bead.plotting.overlay import OverlaySource

log = logging.getLogger(__name__)

MODES = ("new_project", "generate", "convert_csv", "convert_root", "prepare_inputs", "train",
         "detect", "plot", "export", "diagnostics", "chain", "demo")
CHAIN_TOKENS = {
    "newproject": "new_project",
    "generate": "generate",
    "convertcsv": "convert_csv",
    "convertroot": "convert_root",
    "prepareinputs": "prepare_inputs",
    "train": "train",
    "detect": "detect",
    "plot": "plot",
    "export": "export",
    "diagnostics": "diagnostics",
}
MODE_OPTIONS = {
    "generate": ("overwrite",),
    "convert_csv": ("h5", "parquet"),
    "convert_root": ("h5", "parquet"),
    "prepare_inputs": ("h5", "parquet"),
    "train": ("resume",),
    "plot": ("overlay_roc", "train_metrics", "test_metrics"),
}
DEMO_WORKSPACE = "demo"
DEMO_PROJECT = "demo"
# The demo keeps the default model and training; only the sample is small enough to finish in a
# few minutes on a laptop CPU.
DEMO_SETTINGS: dict[str, Any] = {
    "gen_bkg_train_events": 1500,
    "gen_bkg_test_events": 1000,
    "gen_sig_events": 1500,
}


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked for."""

    mode: str
    project: tuple[str, str] | None = None
    options: str | None = None
    workspaces: str | None = None
    legacy_config: Path | None = None
    progress: bool = True
    verbose: bool = False


@dataclass
class RunResult:
    """What a run produced that the CLI shows the user."""

    paths: ProjectPaths
    metrics: dict[str, Any] | None = None
    plots: list[Path] = field(default_factory=list)


def parse_chain(text: str | None) -> list[str]:
    """Turn ``convertcsv_prepareinputs_train`` into mode names; unknown tokens are usage errors."""
    if not text:
        raise UsageError("chain needs -o with tokens joined by '_': " + ", ".join(CHAIN_TOKENS))
    tokens = text.split("_")
    bad = [t for t in tokens if t not in CHAIN_TOKENS]
    if bad:
        raise UsageError(f"unknown chain token '{bad[0]}' in -o {text}; valid tokens: "
                         + ", ".join(CHAIN_TOKENS))
    return [CHAIN_TOKENS[t] for t in tokens]


def _mode_option(mode: str, opts: RunOptions) -> str | None:
    """Check that ``-o`` is meaningful for ``mode`` outside chain."""
    if opts.options is None or opts.mode == "chain":
        return None
    allowed = MODE_OPTIONS.get(mode, ())
    if opts.options not in allowed:
        valid = ", ".join(allowed) if allowed else "none"
        raise UsageError(f"-o {opts.options} is not an option of mode {mode} (valid: {valid})")
    return opts.options


def _config(paths: ProjectPaths, mode: str, opts: RunOptions) -> Config:
    config = load_project_config(paths)
    ignored = [k for k in NOT_YET_IMPLEMENTED if getattr(config, k)]
    if ignored:
        log.warning("%s: %s not implemented yet; ignored", paths.config_file,
                    ", ".join(f"{k} = true" for k in ignored))
    option = _mode_option(mode, opts)
    if option in ("h5", "parquet"):
        config = config.model_copy(update={"file_type": option})
    return config


def mode_new_project(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    _mode_option("new_project", opts)
    config = None
    if opts.legacy_config is not None:
        config, ignored = read_legacy_config(opts.legacy_config)
        if ignored:
            log.warning("legacy keys not carried over (not used by this version): %s",
                        ", ".join(ignored))
        if paths.config_file.exists():
            raise UsageError(f"{paths.config_file} exists; remove it to import a legacy config")
    config_file = create_project(paths, config)
    log.info("project ready: %s (config %s)", paths.project_dir, config_file)


def mode_generate(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "generate", opts)
    from bead.generate.executor import generate_samples
    from bead.generate.settings import GenerationSettings

    generate_samples(GenerationSettings.from_config(config), paths.csv_dir,
                     workers=config.parallel_workers, progress=opts.progress,
                     overwrite=_mode_option("generate", opts) == "overwrite",
                     scheduler=config.dask_scheduler, timeout_s=config.dask_timeout_s)


def mode_convert_csv(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "convert_csv", opts)
    from bead.io.convert import convert_csv_dir
    from bead.io.root_convert import check_no_stem_clash
    from bead.io.sources import set_aside_orphans
    from bead.io.store import store_suffix

    check_no_stem_clash(paths.csv_dir, paths.root_dir)
    store_dir = paths.store_dir(config.file_type)
    remove_stale_temporaries(store_dir)
    convert_csv_dir(paths.csv_dir, store_dir, fmt=config.file_type,
                    chunk_size=config.chunk_size, on_bad_row=config.on_bad_row,
                    progress=opts.progress, workers=config.parallel_workers,
                    h5_compression=config.h5_compression)
    set_aside_orphans(store_dir, store_suffix(config.file_type), paths.data_dir)


def mode_convert_root(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "convert_root", opts)
    from bead.io.root_base import RootSettings
    from bead.io.root_convert import convert_root_dir
    from bead.io.sources import set_aside_orphans
    from bead.io.store import store_suffix

    settings = RootSettings(**{name.removeprefix("root_"): value
                               for name, value in config.model_dump().items()
                               if name.startswith("root_")})
    store_dir = paths.store_dir(config.file_type)
    convert_root_dir(paths.root_dir, store_dir, settings,
                     fmt=config.file_type, chunk_size=config.chunk_size, csv_dir=paths.csv_dir,
                     progress=opts.progress)
    set_aside_orphans(store_dir, store_suffix(config.file_type), paths.data_dir)


def mode_prepare_inputs(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "prepare_inputs", opts)
    from bead.io.sources import set_aside_orphans
    from bead.io.store import store_suffix
    from bead.prepare.stage import prepare_inputs

    store_dir = paths.store_dir(config.file_type)
    set_aside_orphans(store_dir, store_suffix(config.file_type), paths.data_dir)
    tensors = prepared_dir(paths.tensors_dir, config)
    remove_stale_temporaries(tensors)
    prepare_inputs(config, store_dir, tensors, progress=opts.progress)


def mode_train(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "train", opts)
    from bead.training.trainer import train

    train(config, prepared_dir(paths.tensors_dir, config), paths.models_dir, paths.results_dir,
          progress=opts.progress,
          resume=_mode_option("train", opts) == "resume")


def _trained_inputs(paths: ProjectPaths, config: Config) -> Path:
    """The inputs of the preparation the model was trained on, even if the config changed
    since (detect then warns and scores the trained model)."""
    from bead.training.checkpoint import read_model_spec

    key = read_model_spec(paths.models_dir).prepared_key
    return paths.tensors_dir / key if key else prepared_dir(paths.tensors_dir, config)


def mode_detect(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "detect", opts)
    from bead.evaluation.detect import detect

    result.metrics = detect(config, _trained_inputs(paths, config), paths.models_dir,
                            paths.results_dir, progress=opts.progress)


def _overlay_sources(paths: ProjectPaths, config: Config) -> list[OverlaySource]:
    """This project first (always drawn), then each ``overlay_roc_projects`` entry ('ws/proj'
    or 'proj') that is another project."""
    from bead.plotting import OverlaySource

    sources = [OverlaySource(f"{paths.workspace}/{paths.project}", paths.results_dir,
                             paths.models_dir)]
    for entry in config.overlay_roc_projects:
        ws, _, proj = entry.rpartition("/")
        other = ProjectPaths(paths.root, ws or paths.workspace, proj)
        if (other.workspace, other.project) != (paths.workspace, paths.project):
            sources.append(OverlaySource(entry, other.results_dir, other.models_dir))
    return sources


def mode_plot(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "plot", opts)
    from bead.plotting import evaluation_problem, make_plots, overlay_roc

    option = _mode_option("plot", opts)
    sources = []
    if option == "overlay_roc" or (option is None and config.overlay_roc):
        sources = _overlay_sources(paths, config)
        if option is None and evaluation_problem(paths.results_dir, paths.models_dir):
            log.warning("no overlay ROC: it needs this project's current results")
            sources = []  # make_plots says what to run
    if sources:  # drawn first, so that the report shows it
        out_dir = paths.plots_dir / config.overlay_roc_save_location
        written = overlay_roc(sources, out_dir, config.overlay_roc_filename,
                              config.overlay_roc_score)
        result.plots += written
        log.info("overlay ROC of %d projects: %s (PDF, PNG) and its summary %s", len(sources),
                 written[0].with_suffix(""), written[-1])
    if option != "overlay_roc":
        result.plots += make_plots(config, paths.results_dir, paths.plots_dir,
                                   which=option or "all", models_dir=paths.models_dir)
    log.info("plots written under %s", paths.plots_dir)


def mode_export(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "export", opts)
    from bead.export import EXPORT_DIR, export_model

    out_dir = paths.output_dir / EXPORT_DIR
    remove_stale_temporaries(out_dir)
    export_model(paths.models_dir, _trained_inputs(paths, config), out_dir)


def mode_diagnostics(paths: ProjectPaths, opts: RunOptions, result: RunResult) -> None:
    config = _config(paths, "diagnostics", opts)
    from bead.diagnostics import DIAGNOSTICS_DIR, run_diagnostics

    # A fresh model of the config on its prepared inputs: models/ is never touched.
    run_diagnostics(config, prepared_dir(paths.tensors_dir, config),
                    paths.output_dir / DIAGNOSTICS_DIR)
    log.info("plot adds the diagnostics to %s", paths.plots_dir / "report.html")


MODE_FUNCTIONS: dict[str, Callable[[ProjectPaths, RunOptions, RunResult], None]] = {
    "new_project": mode_new_project,
    "generate": mode_generate,
    "convert_csv": mode_convert_csv,
    "convert_root": mode_convert_root,
    "prepare_inputs": mode_prepare_inputs,
    "train": mode_train,
    "detect": mode_detect,
    "plot": mode_plot,
    "export": mode_export,
    "diagnostics": mode_diagnostics,
}


def _needs_generate_extra(config: Config | None) -> None:
    from bead.generate.pythia import import_extras

    import_extras()


def _needs_latent_style(config: Config | None) -> None:
    if config is not None:
        from bead.plotting.latent import check_style_available

        check_style_available(config.latent_space_plot_style)


def _needs_export_extra(config: Config | None) -> None:
    from bead.export import import_extras

    import_extras()


# What each mode needs before a chain starts: a chain that names a mode which cannot run is
# refused before its first step, as an unknown token is.
PREFLIGHT: dict[str, Callable[[Config | None], None]] = {
    "generate": _needs_generate_extra,
    "plot": _needs_latent_style,
    "export": _needs_export_extra,
}


def run_steps(paths: ProjectPaths, steps: list[str], opts: RunOptions) -> RunResult:
    """Run ``steps`` in order. The config is loaded and every step's needs are checked first,
    so a usage error stops the run before any step (and before any step's header)."""
    config = None
    later = [s for s in steps if s != "new_project"]
    if later and (steps[0] != "new_project" or paths.config_file.exists()):
        config = _config(paths, later[0], opts)
        log.debug("config %s: %s", paths.config_file, config.model_dump())
    for step in steps:
        if step in PREFLIGHT:
            PREFLIGHT[step](config)
    result = RunResult(paths)
    with _distributed(config) as run_step:
        for step in steps:
            log.info("── %s ──", step)
            run_step(step, lambda step=step: MODE_FUNCTIONS[step](paths, opts, result))
    return result


@contextlib.contextmanager
def _distributed(config: Config | None) -> Iterator[Callable[[str, Callable[[], None]], None]]:
    """Under torchrun (or with use_ddp): a process group around the steps, train on every rank
    and the other modes on rank 0 (bead.training.distributed). Otherwise each step just runs."""
    from bead.training import distributed  # torch-free until a group is wanted

    if not distributed.wanted(config):
        yield lambda step, fn: fn()
        return
    with distributed.process_group(config):
        yield distributed.step_runner()


def run_demo(opts: RunOptions) -> RunResult:
    """The whole job on the built-in sample: generated once with fixed seeds, then reused
    (``generate`` recognises its own finished files)."""
    if opts.project is not None:
        raise UsageError("demo takes no -p: it uses workspace 'demo', project 'demo'")
    paths = ProjectPaths(workspaces_root(opts.workspaces), DEMO_WORKSPACE, DEMO_PROJECT)
    if not paths.config_file.exists():
        create_project(paths, make_config(DEMO_SETTINGS, source="demo settings"))
    # generate keeps what an earlier demo finished and completes an interrupted sample.
    steps = ["generate", "convert_csv", "prepare_inputs", "train", "detect", "plot"]
    return run_steps(paths, steps, opts)


def run_mode(opts: RunOptions) -> RunResult:
    """Entry point of the CLI: run ``opts.mode`` (or the chain / demo it names)."""
    if opts.legacy_config is not None and opts.mode != "new_project":
        raise UsageError("--legacy-config belongs to mode new_project")
    if opts.mode == "demo":
        return run_demo(opts)
    if opts.project is None:
        raise UsageError(f"mode {opts.mode} needs -p WORKSPACE PROJECT")
    paths = ProjectPaths(workspaces_root(opts.workspaces), *opts.project)
    if opts.mode == "chain":
        return run_steps(paths, parse_chain(opts.options), opts)
    if opts.mode not in MODE_FUNCTIONS:
        raise UsageError(f"unknown mode {opts.mode}; valid modes: " + ", ".join(MODES))
    return run_steps(paths, [opts.mode], opts)

