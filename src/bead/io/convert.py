"""The ``convert_csv`` step: every sample CSV of a workspace to one store file (SPEC §4)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bead.io.csv_read import BadRowReport, iter_csv_chunks
from bead.io.samples import discover_csvs, parse_sample_name
from bead.io.store import StoreWriter, store_suffix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionResult:
    """What converting one CSV gave; ``n_skipped`` counts skipped bad rows by reason."""

    source: Path
    output: Path
    n_events: int
    n_skipped: dict[str, int]
    seconds: float


def convert_csv_dir(
    csv_dir: Path,
    out_dir: Path,
    fmt: str = "h5",
    chunk_size: int = 10000,
    on_bad_row: str = "error",
    progress: bool = True,
) -> list[ConversionResult]:
    """Convert each CSV in ``csv_dir`` to ``out_dir/<stem>.h5`` (or ``.parquet``), streaming.

    A failure leaves no partial output, and an existing store of the same name is replaced only
    once its new version is complete.
    """
    suffix = store_suffix(fmt)
    csvs = discover_csvs(Path(csv_dir))
    out_dir = Path(out_dir)
    sizes = [p.stat().st_size for p in csvs]
    columns = (
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    results = []
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("converting", total=sum(sizes))
        done = 0
        for csv, size in zip(csvs, sizes, strict=True):
            bar.update(task, description=csv.name)
            output = out_dir / (parse_sample_name(csv).stem + suffix)
            results.append(_convert_one(
                csv, output, fmt, chunk_size, on_bad_row,
                on_bytes=lambda n, done=done: bar.update(task, completed=done + n),
            ))
            done += size
            bar.update(task, completed=done)
    return results


def _convert_one(
    csv: Path,
    output: Path,
    fmt: str,
    chunk_size: int,
    on_bad_row: str,
    on_bytes: Callable[[int], None],
) -> ConversionResult:
    start = time.perf_counter()
    report = BadRowReport()
    n_events = 0
    with StoreWriter(output, fmt, source=csv.name) as writer:
        for chunk in iter_csv_chunks(csv, chunk_size, on_bad_row, report, on_bytes=on_bytes):
            writer.append(chunk)
            n_events += chunk.n_events
    seconds = time.perf_counter() - start
    name = parse_sample_name(csv)
    logger.info(
        "%s: %s, generator '%s'%s: %d events in %.1f s (%.0f events/s) -> %s",
        csv.name, name.flag, name.generator, f", tag '{name.tag}'" if name.tag else "",
        n_events, seconds, n_events / max(seconds, 1e-9), output,
    )
    if report.total:
        logger.warning("%s: skipped %s", csv.name, report.summary())
        for example in report.examples:
            logger.warning("  skipped %s", example)
    return ConversionResult(csv, output, n_events, dict(report.counts), seconds)
