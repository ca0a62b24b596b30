"""Parallel ``convert_csv``: worker processes that convert whole files or parse segments.

The parent keeps at most ``workers + 1`` tasks queued, the segments of the large file it is
writing first, so no worker waits and parsed blocks never pile up in memory. Workers are
spawned with SIGINT and SIGTERM held back (:func:`bead.interrupt.signals_blocked`) and then
ignore SIGINT: the parent decides, and stops them through a shared per-file cancel flag that
they check after every block. Results, log lines and errors are taken in file order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bead import interrupt
from bead.errors import BeadError
from bead.io.convert import (
    ConversionResult,
    ConvertSettings,
    FileJob,
    convert_file,
    make_result,
)
from bead.io.csv_read import BadRowReport, Block, ChunkAssembler, Segment, parse_segment
from bead.io.store import StoreWriter

if TYPE_CHECKING:
    from rich.progress import Progress

_POLL_S = 0.1  # how often the parent looks at progress and signals while it waits
_DRAIN_S = 10.0  # how long stopped workers get to finish their block and clean up

# Set in each worker by _init_worker: bytes read per file (for the progress bar) and the
# per-file flags the parent raises to stop work on a file.
_progress: Any = None
_cancel: Any = None


def _init_worker(progress: Any, cancel: Any) -> None:
    global _progress, _cancel
    interrupt.init_worker()
    _progress, _cancel = progress, cancel


def _check(index: int) -> None:
    interrupt.check_interrupted()
    if _cancel[index]:
        raise KeyboardInterrupt


def _convert_whole(job: FileJob, settings: ConvertSettings) -> ConversionResult:
    """Worker task: one file read and written whole."""

    def on_bytes(n: int) -> None:
        _progress[job.index] = n
        _check(job.index)

    _check(job.index)
    return convert_file(job, settings, on_bytes, lambda: _check(job.index))


def _parse(segment: Segment, index: int) -> Block:
    """Worker task: one block of a large file, parsed for the parent to write."""
    _check(index)
    return parse_segment(segment)


@dataclass
class _SplitWrite:
    """The large file this process is writing, block by block in order."""

    job: FileJob
    settings: ConvertSettings
    start: float = field(default_factory=time.perf_counter)
    report: BadRowReport = field(default_factory=BadRowReport)
    submitted: int = 0
    written: int = 0
    n_events: int = 0
    parsed: dict[int, Block] = field(default_factory=dict)
    writer: StoreWriter | None = None
    assembler: ChunkAssembler | None = None

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self.job.segments or ()

    def can_submit(self, ahead: int) -> bool:
        """Whether a next block is left and fewer than ``ahead`` wait to be written."""
        return self.submitted < len(self.segments) and self.submitted - self.written < ahead

    def open(self) -> None:
        self.writer = self.settings.writer(self.job)
        self.writer.__enter__()
        self.assembler = ChunkAssembler(self.job.csv, self.settings.on_bad_row, self.report)

    def write_ready(self) -> ConversionResult | None:
        """Append the parsed blocks that are next in order; the result once all are written."""
        assert self.writer is not None and self.assembler is not None
        while self.written in self.parsed:
            chunk = self.assembler.add(self.parsed.pop(self.written))
            if chunk is not None:
                self.writer.append(chunk)
                self.n_events += chunk.n_events
            self.written += 1
            interrupt.check_interrupted()
        if self.written < len(self.segments):
            return None
        self.assembler.finish()
        writer, self.writer = self.writer, None
        writer.__exit__(None, None, None)
        return make_result(self.job, self.n_events, self.report, time.perf_counter() - self.start)

    def bytes_done(self) -> int:
        return self.segments[self.written - 1].end if self.written else 0

    def discard(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.abort()


def convert_parallel(
    jobs: list[FileJob],
    workers: int,
    settings: ConvertSettings,
    bar: Progress,
    task: int,
    log_result: Callable[[ConversionResult], None],
) -> list[ConversionResult]:
    """Convert ``jobs`` over ``workers`` processes; results in file order."""
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.RawArray("q", len(jobs))
    cancel = ctx.RawArray("b", len(jobs))
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                   initializer=_init_worker, initargs=(progress, cancel))
    run = _Run(jobs, workers, settings, executor, cancel, log_result)
    try:
        return run.loop(lambda: bar.update(task, completed=run.bytes_done(progress),
                                           description=run.description()))
    except BaseException:
        for i in range(len(jobs)):
            cancel[i] = 1
        run.stop()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


class _Run:
    """The parent's side of one parallel conversion."""

    def __init__(self, jobs: list[FileJob], workers: int, settings: ConvertSettings,
                 executor: ProcessPoolExecutor, cancel: Any,
                 log_result: Callable[[ConversionResult], None]) -> None:
        self.jobs = jobs
        self.workers = workers
        self.settings = settings
        self.executor = executor
        self.cancel = cancel
        self.log_result = log_result
        self.results: dict[int, ConversionResult] = {}
        self.failures: dict[int, BaseException] = {}
        self.last_file = len(jobs) - 1  # files after a failure are not converted
        self.logged = 0
        # Large files one after the other, then the rest, biggest first (evens out the end).
        self.splits = [_SplitWrite(j, settings) for j in jobs if j.segments]
        self.wholes = sorted((j for j in jobs if not j.segments), key=lambda j: -j.size)
        self.in_flight: dict[Future[Any], tuple[FileJob, int | None]] = {}

    def loop(self, show: Callable[[], None]) -> list[ConversionResult]:
        self._fill()
        while self.in_flight:
            done, _ = wait(self.in_flight, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            for future in done:
                self._take(future)
            self._write_split()
            self._log_in_order()
            show()
            interrupt.check_interrupted()
            self._fill()
        if self.failures:
            raise self.failures[min(self.failures)]
        return [self.results[job.index] for job in self.jobs]

    def _fill(self) -> None:
        """Queue tasks up to ``workers + 1``: the next blocks of the large file being written
        (at most ``workers + 1`` ahead of the writing), else the next whole file."""
        while len(self.in_flight) <= self.workers:
            split = self._current_split()
            if split is not None and split.can_submit(self.workers + 1):
                job, segment = split.job, split.submitted
                split.submitted += 1
                args: tuple[Any, ...] = (_parse, split.segments[segment], job.index)
            elif self.wholes:
                job, segment = self.wholes.pop(0), None
                args = (_convert_whole, job, self.settings)
            else:
                return
            with interrupt.signals_blocked():  # workers start with signals held back
                try:
                    future = self.executor.submit(interrupt.run_task, *args)
                except BrokenProcessPool as exc:
                    self._broken(job, exc)
            self.in_flight[future] = (job, segment)

    def _current_split(self) -> _SplitWrite | None:
        for split in self.splits:
            if split.job.index in self.results or split.job.index in self.failures:
                continue
            return split if split.job.index <= self.last_file else None
        return None

    def _take(self, future: Future[Any]) -> None:
        job, segment = self.in_flight.pop(future)
        if job.index > self.last_file or job.index in self.failures:
            return  # cancelled: whatever it gave is not used
        try:
            value = future.result()
        except BrokenProcessPool as exc:
            self._broken(job, exc)
        except Exception as exc:  # the file's own error, reported once earlier files are done
            self._fail(job, exc)
            return
        if segment is None:
            self.results[job.index] = value
        else:
            split = self._current_split()
            assert split is not None and split.job is job
            split.parsed[segment] = value

    def _write_split(self) -> None:
        split = self._current_split()
        if split is None:
            return
        if split.writer is None:
            split.open()
        try:
            result = split.write_ready()
        except Exception as exc:
            split.discard()
            self._fail(split.job, exc)
            return
        if result is not None:
            self.results[split.job.index] = result

    def _fail(self, job: FileJob, exc: BaseException) -> None:
        """Note a file's error; files after it are dropped (one process would not reach them)
        and the ones before it go on, so the error reported is the first in file order."""
        self.failures[job.index] = exc
        self.last_file = min(self.last_file, job.index)
        for later in range(job.index, len(self.jobs)):
            self.cancel[later] = 1
        self.wholes = [j for j in self.wholes if j.index < job.index]
        for future, (other, _) in self.in_flight.items():
            if other.index >= job.index:
                future.cancel()

    @staticmethod
    def _broken(job: FileJob, exc: BrokenProcessPool) -> None:
        if interrupt.interrupted():  # a signal that reached the workers too
            raise KeyboardInterrupt from exc
        raise BeadError(f"a conversion worker died while converting {job.csv}; rerun with "
                        "parallel_workers = 1 to see why") from exc

    def _log_in_order(self) -> None:
        while self.logged in self.results:
            self.log_result(self.results[self.logged])
            self.logged += 1

    def bytes_done(self, progress: Any) -> int:
        done = 0
        for job in self.jobs:
            if job.index in self.results:
                done += job.size
            elif not job.segments:
                done += progress[job.index]
        return done + sum(s.bytes_done() for s in self.splits if s.writer is not None)

    def description(self) -> str:
        pending = [j.csv.name for j in self.jobs if j.index not in self.results]
        return pending[0] if pending else "converting"

    def stop(self) -> None:
        """After a failure or an interrupt: let the running tasks see their cancel flag and
        clean up (repeated Ctrl-C does not cut this short), then stop whoever is still busy."""
        for split in self.splits:
            split.discard()
        for future in self.in_flight:
            future.cancel()
        pending = {f for f in self.in_flight if not f.done()}
        deadline = time.monotonic() + _DRAIN_S
        while pending and time.monotonic() < deadline:
            with contextlib.suppress(KeyboardInterrupt):
                _, pending = wait(pending, timeout=_POLL_S)
        if pending:
            for process in multiprocessing.active_children():
                process.kill()
