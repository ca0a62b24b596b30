"""The ``convert_csv`` step: every sample CSV of a workspace to one store file (SPEC §4).

With ``workers > 1`` the files are converted in parallel by spawned worker processes, each
writing whole stores; a plain CSV bigger than its share of the work is cut into the blocks of
``chunk_size`` lines that one process would read, parsed by the workers and written in order by
this process. Either way every store is the file a single process writes, the log lines come in
file order, and the first bad row in file order stops the run with the error a single process
gives. A failure or an interrupt stops the workers and leaves no partial store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bead.errors import DataError
from bead.interrupt import check_interrupted
from bead.io.csv_read import BadRowReport, Segment, check_options, is_gzip, iter_csv_chunks
from bead.io.samples import discover_csvs, parse_sample_name
from bead.io.store import StoreWriter, h5_filters, store_suffix

if TYPE_CHECKING:
    from rich.progress import Progress

logger = logging.getLogger(__name__)

# Below this much CSV in total, starting worker processes (about half a second, as each imports
# numpy, pyarrow and h5py) costs about what it saves.
PARALLEL_MIN_BYTES = 16 << 20


@dataclass(frozen=True)
class ConversionResult:
    """What converting one CSV gave; ``n_skipped`` counts skipped bad rows by reason and
    ``skipped_examples`` names the first few (``file:line: reason``)."""

    source: Path
    output: Path
    n_events: int
    n_skipped: dict[str, int]
    seconds: float
    skipped_examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConvertSettings:
    """How every file of one run is converted."""

    fmt: str = "h5"
    chunk_size: int = 10000
    on_bad_row: str = "error"
    h5_compression: str = "none"

    def __post_init__(self) -> None:
        check_options(self.chunk_size, self.on_bad_row)
        store_suffix(self.fmt)
        h5_filters(self.h5_compression)

    def writer(self, job: FileJob) -> StoreWriter:
        return StoreWriter(job.output, self.fmt, source=job.csv.name,
                           h5_compression=self.h5_compression)


@dataclass(frozen=True)
class FileJob:
    """One CSV to convert: its place in the folder's order, and its segments when the blocks
    are parsed by several processes (None: one process reads and writes it whole)."""

    index: int
    csv: Path
    output: Path
    size: int
    segments: tuple[Segment, ...] | None = None


def convert_csv_dir(
    csv_dir: Path,
    out_dir: Path,
    fmt: str = "h5",
    chunk_size: int = 10000,
    on_bad_row: str = "error",
    progress: bool = True,
    workers: int = 1,
    h5_compression: str = "none",
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> list[ConversionResult]:
    """Convert each CSV in ``csv_dir`` to ``out_dir/<stem>.h5`` (or ``.parquet``), streaming,
    over ``workers`` processes (one when the CSVs total less than ``parallel_min_bytes``).

    A failure leaves no partial output, and an existing store of the same name is replaced only
    once its new version is complete.
    """
    from rich.console import Console  # here, not at import: workers need no progress bar
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    settings = ConvertSettings(fmt, chunk_size, on_bad_row, h5_compression)
    suffix = store_suffix(fmt)
    csvs = discover_csvs(Path(csv_dir))
    out_dir = Path(out_dir)
    jobs = [FileJob(i, csv, out_dir / (parse_sample_name(csv).stem + suffix), csv.stat().st_size)
            for i, csv in enumerate(csvs)]
    total = sum(job.size for job in jobs)
    if workers > 1 and total >= parallel_min_bytes:
        jobs = split_large_files(jobs, workers, chunk_size)
        tasks = sum(len(job.segments) if job.segments else 1 for job in jobs)
        workers = min(workers, tasks)
    else:
        workers = 1
    columns = (
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("converting", total=total)
        if workers > 1:
            from bead.io.convert_pool import convert_parallel

            results = convert_parallel(jobs, workers, settings, bar, task, log_result)
        else:
            results = _convert_serial(jobs, settings, bar, task)
    seconds = time.perf_counter() - start
    n_events = sum(r.n_events for r in results)
    logger.info("converted %d events from %d files in %.1f s (%.0f events/s, %d process%s)",
                n_events, len(results), seconds, n_events / max(seconds, 1e-9), workers,
                "es" if workers > 1 else "")
    return results


def split_large_files(jobs: list[FileJob], workers: int, chunk_size: int) -> list[FileJob]:
    """Give segments to every plain CSV bigger than its share of the work (the total over the
    workers) that spans several blocks; gzipped files can only be read from the start."""
    from bead.io.csv_read import plan_segments

    share = sum(job.size for job in jobs) / workers
    split = []
    for job in jobs:
        if job.size > share and not is_gzip(job.csv):
            try:
                segments = tuple(plan_segments(job.csv, chunk_size))
            except DataError:  # reported in file order when the file is converted whole
                segments = ()
            if len(segments) > 1:
                job = FileJob(job.index, job.csv, job.output, job.size, segments)
        split.append(job)
    return split


def _convert_serial(jobs: list[FileJob], settings: ConvertSettings, bar: Progress,
                    task: int) -> list[ConversionResult]:
    results = []
    done = 0
    for job in jobs:
        bar.update(task, description=job.csv.name)

        def on_bytes(n: int, done: int = done) -> None:
            check_interrupted()
            bar.update(task, completed=done + n)

        result = convert_file(job, settings, on_bytes, check_interrupted)
        log_result(result)
        results.append(result)
        done += job.size
        bar.update(task, completed=done)
    return results


def convert_file(job: FileJob, settings: ConvertSettings, on_bytes: Callable[[int], None],
                 check: Callable[[], None]) -> ConversionResult:
    """Read and write one CSV whole, in this process; ``check`` runs after every chunk (it
    raises to stop)."""
    start = time.perf_counter()
    report = BadRowReport()
    n_events = 0
    with settings.writer(job) as writer:
        chunks = iter_csv_chunks(job.csv, settings.chunk_size, settings.on_bad_row, report,
                                 on_bytes=on_bytes)
        for chunk in chunks:
            writer.append(chunk)
            n_events += chunk.n_events
            check()
    return make_result(job, n_events, report, time.perf_counter() - start)


def make_result(job: FileJob, n_events: int, report: BadRowReport,
                seconds: float) -> ConversionResult:
    return ConversionResult(job.csv, job.output, n_events, dict(report.counts), seconds,
                            tuple(str(example) for example in report.examples))


def log_result(result: ConversionResult) -> None:
    """The per-file lines: events and rate, then what was skipped."""
    name = result.source.name
    sample = parse_sample_name(result.source)
    logger.info(
        "%s: %s, generator '%s'%s: %d events in %.1f s (%.0f events/s) -> %s",
        name, sample.flag, sample.generator, f", tag '{sample.tag}'" if sample.tag else "",
        result.n_events, result.seconds, result.n_events / max(result.seconds, 1e-9),
        result.output,
    )
    if result.n_skipped:
        report = BadRowReport(counts=dict(result.n_skipped))
        logger.warning("%s: skipped %s", name, report.summary())
        for example in result.skipped_examples:
            logger.warning("  skipped %s", example)
