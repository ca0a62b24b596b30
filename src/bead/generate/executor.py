"""Whole samples: every block of every sample queued on workers, written in order.

Each sample is cut into blocks of ``block_size`` events whose seeds are derived from (``seed``,
sample name, block number), so the files do not depend on how many workers ran the blocks, nor
where: local worker processes, or the workers of a Dask cluster (:mod:`bead.generate.cluster`).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bead import __version__
from bead.errors import BeadError, DataError, UsageError
from bead.fileio import file_sha256
from bead.generate.cards import pythia_commands
from bead.generate.pythia import generate_events, import_extras
from bead.generate.record import GeneratedFile, GenerationRecord, settings_key
from bead.generate.settings import SIGNAL_GENERATOR, GenerationSettings, SignalPoint
from bead.io.csv_write import write_bead_csv
from bead.io.events import EventChunk

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedSample:
    """One CSV written by :func:`generate_samples`.

    ``seconds`` is the wall time spent waiting for and writing this sample; with several
    workers the samples are generated concurrently, so the overall rate is logged separately.
    """

    path: Path
    n_events: int
    seconds: float
    events_per_second: float


@dataclass(frozen=True)
class _Sample:
    name: str
    kind: str
    generator: str
    n_events: int
    point: SignalPoint | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    def key_settings(self, settings: GenerationSettings) -> dict[str, Any]:
        """Everything that shapes this sample's bytes (recorded in generated.json).

        Every setting counts except those that only choose *which* samples exist and how big
        the others are; the Pythia commands and the package version are in too, so a change
        of the physics or of the code that writes the files is never mistaken for no change.
        """
        common = {k: v for k, v in asdict(settings).items() if k not in _PLAN_FIELDS}
        return {**common, "version": _CODE_VERSION, "name": self.name, "kind": self.kind,
                "generator": self.generator, "n_events": self.n_events,
                "point": asdict(self.point) if self.point is not None else None,
                "commands": pythia_commands(self.kind, self.generator, settings, 0,
                                            self.point)}


# Fields that decide which samples are planned and their sizes; each sample's own share of them
# (its n_events, its signal point) is in its key instead.
_PLAN_FIELDS = frozenset({"bkg_train_events", "bkg_test_events", "sig_events", "generators",
                          "signal_points", "zprime_mass", "dark_meson_mass", "rinv",
                          "alpha_dark"})
_CODE_VERSION = f"bead-{__version__}"


@dataclass(frozen=True)
class _Block:
    kind: str
    generator: str
    n_events: int
    settings: GenerationSettings
    seed_key: str
    point: SignalPoint | None = None


def sample_plan(settings: GenerationSettings) -> list[_Sample]:
    """The samples ``generate_samples`` writes, in order (event-count-zero ones left out)."""
    plan = []
    for generator in settings.generators:
        plan.append(_Sample(f"bkg_train_{generator}", "qcd", generator,
                            settings.bkg_train_events))
        plan.append(_Sample(f"bkg_test_{generator}", "qcd", generator,
                            settings.bkg_test_events))
    for point in settings.points():
        plan.append(_Sample(f"sig_test_svj_{point.tag}", "svj", SIGNAL_GENERATOR,
                            settings.sig_events, point))
    return [s for s in plan if s.n_events > 0]


def _to_do(plan: list[_Sample], settings: GenerationSettings, csv_dir: Path,
           record: GenerationRecord, overwrite: bool) -> list[_Sample]:
    """The planned samples that need generating; refuses to replace a file generate did not
    write (or that was changed since) unless ``overwrite``."""
    todo, foreign = [], []
    for sample in plan:
        path = csv_dir / sample.file_name
        if not path.exists():
            todo.append(sample)
            continue
        entry = record.owns(path)
        if entry is None:
            foreign.append(path.name)
            todo.append(sample)
        elif entry.key != settings_key(sample.key_settings(settings)):
            logger.info("%s: generated earlier with other settings; generating it again",
                        path.name)
            todo.append(sample)
        else:
            logger.info("%s: already generated with these settings and seed; kept", path.name)
    if foreign and not overwrite:
        raise DataError(
            f"{csv_dir}: generate would replace {', '.join(foreign)}, which it did not write "
            "(or which changed since); move them away, or rerun with -o overwrite to replace "
            "them")
    planned = {s.file_name for s in plan}
    for name in sorted(set(record.files) - planned):
        if (csv_dir / name).exists():
            logger.warning("%s: generated earlier but not part of these settings; still used by "
                           "convert_csv (delete it if it should not be)", csv_dir / name)
    return todo


def generate_samples(settings: GenerationSettings, csv_dir: Path, workers: int = 1,
                     progress: bool = True, overwrite: bool = False,
                     scheduler: str = "", timeout_s: float = 30.0) -> list[GeneratedSample]:
    """Generate every sample of ``settings`` into ``csv_dir`` as BEAD CSVs.

    Blocks run in ``workers`` processes, or on the Dask cluster whose ``scheduler`` address is
    given (``timeout_s`` to connect); files are identical whatever runs the blocks. Files
    generated earlier with the same settings are kept; a file generate did not write is never
    replaced unless ``overwrite``. Each finished file is recorded in ``generated.json``.
    """
    if workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    import_extras()  # fail here, in one clear line, rather than inside a worker
    csv_dir = Path(csv_dir)
    csv_dir.mkdir(parents=True, exist_ok=True)
    record = GenerationRecord.read(csv_dir)
    todo = _to_do(sample_plan(settings), settings, csv_dir, record, overwrite)
    if not todo:
        logger.info("%s: every sample is already generated with these settings", csv_dir)
        return []
    executor: Executor | None = None
    where = f"{workers} worker(s)"
    if scheduler:  # connected before anything is written: an unreachable one fails cleanly
        from bead.generate.cluster import DaskExecutor

        executor = DaskExecutor(scheduler, timeout_s)
        where = executor.describe()
        logger.info("generating on %s", where)
    elif workers > 1:
        executor = ProcessPoolExecutor(max_workers=workers,
                                       mp_context=multiprocessing.get_context("spawn"))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("blocks"), TimeRemainingColumn())
    results = []
    try:
        t0 = time.perf_counter()
        plan = [(sample, _blocks(sample, settings)) for sample in todo]
        # Every block of every sample is queued at once, so workers never idle while one
        # sample's last block finishes; files are still written sample by sample, in order.
        queued = [[executor.submit(_run_block, b) for b in blocks] if executor else None
                  for _, blocks in plan]
        with Progress(*columns, disable=not progress) as bar:
            for (sample, blocks), futures in zip(plan, queued, strict=True):
                task = bar.add_task(sample.name, total=len(blocks))
                start = time.perf_counter()
                path = csv_dir / sample.file_name
                chunks = _block_results(blocks, futures, lambda t=task: bar.advance(t))
                n_written = write_bead_csv(path, chunks)
                key_settings = sample.key_settings(settings)
                record.add(path.name, GeneratedFile(settings_key(key_settings),
                                                    file_sha256(path), n_written, key_settings))
                seconds = time.perf_counter() - start
                rate = n_written / seconds if seconds > 0 else float("inf")
                logger.info("%s: %d events", path.name, n_written)
                results.append(GeneratedSample(path, n_written, seconds, rate))
        total = sum(r.n_events for r in results)
        wall = time.perf_counter() - t0
        logger.info("generated %d events in %.1f s: %.1f events/s with %s", total, wall,
                    total / wall if wall > 0 else float("inf"), where)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return results


def _blocks(sample: _Sample, settings: GenerationSettings) -> list[_Block]:
    sizes = [min(settings.block_size, sample.n_events - start)
             for start in range(0, sample.n_events, settings.block_size)]
    return [_Block(sample.kind, sample.generator, size, settings, f"{sample.name}/{k}",
                   sample.point) for k, size in enumerate(sizes)]


def _run_block(block: _Block) -> EventChunk:
    """Worker entry point (top level, so spawned processes can import it)."""
    return generate_events(block.kind, block.generator, block.n_events, block.settings,
                           block.seed_key, block.point)


def _block_results(blocks: list[_Block], futures: list[Future[EventChunk]] | None,
                   advance: Callable[[], None]) -> Iterator[EventChunk]:
    """Chunks of ``blocks`` in block order (from ``futures`` when running in workers), with
    event ids continuing across blocks."""
    first_id = 0
    for k, block in enumerate(blocks):
        try:
            chunk = futures[k].result() if futures is not None else _run_block(block)
        except BrokenProcessPool as exc:
            raise BeadError(f"a generation worker died while running block {block.seed_key}; "
                            "rerun with workers = 1 to see why") from exc
        except CancelledError as exc:  # a Dask worker lost, or the scheduler gone
            raise BeadError(f"the Dask cluster lost block {block.seed_key} ({exc}); rerun "
                            "generate to complete the samples") from exc
        yield replace(chunk, evt_id=chunk.evt_id + first_id)
        first_id += chunk.n_events
        advance()
