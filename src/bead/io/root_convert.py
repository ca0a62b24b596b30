"""The ``convert_root`` step: every sample ROOT file of a workspace to one store file.

The sibling of ``convert_csv``: ``data/root/<flag>_<generator>[_<tag>].root`` becomes
``data/h5/<flag>_<generator>[_<tag>].h5`` (or ``.parquet``), the same store a CSV gives. The
file names follow the CSV rules (``bead.io.samples``), and a stem that is both a CSV and a ROOT
file is an error, since both would be written to the same store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bead.errors import DataError
from bead.io.root import SelectionReport, iter_root_chunks
from bead.io.root_base import RootSettings
from bead.io.samples import (
    ROOT_SUFFIX,
    SampleName,
    csv_stems,
    is_root,
    parse_sample_name,
    root_stems,
)
from bead.io.store import StoreWriter, store_suffix

logger = logging.getLogger(__name__)

PATTERN = "<bkg_train|bkg_test|sig_test>_<generator>[_<tag>].root"


@dataclass(frozen=True)
class RootConversion:
    """What converting one ROOT file gave."""

    source: Path
    output: Path
    report: SelectionReport
    seconds: float

    @property
    def n_events(self) -> int:
        return self.report.events


def root_sample_name(path: Path) -> SampleName:
    """The sample name of a ROOT file, by the same rules as a CSV's."""
    path = Path(path)
    try:
        return parse_sample_name(path.name.removesuffix(ROOT_SUFFIX) + ".csv")
    except DataError:
        raise DataError(f"{path}: sample file name must look like {PATTERN}") from None


def check_no_stem_clash(csv_dir: Path, root_dir: Path) -> None:
    """A CSV and a ROOT file with the same stem would overwrite each other's store."""
    both = sorted(csv_stems(csv_dir) & root_stems(root_dir))
    if both:
        pairs = []
        for stem in both:
            csvs = [p for p in (Path(csv_dir) / f"{stem}.csv", Path(csv_dir) / f"{stem}.csv.gz")
                    if p.exists()] or [Path(csv_dir) / f"{stem}.csv"]
            pairs.append(f"{csvs[0]} and {Path(root_dir) / (stem + ROOT_SUFFIX)} would both be "
                         f"stored as '{stem}'")
        raise DataError("; ".join(pairs) + ": rename or remove one of each pair")


def discover_root_files(root_dir: Path) -> list[Path]:
    """All sample ROOT files in ``root_dir``, sorted; every one must have a valid sample name."""
    root_dir = Path(root_dir)
    if not root_dir.is_dir():
        raise DataError(f"{root_dir}: ROOT folder does not exist (put bkg_train_*.root, "
                        "bkg_test_*.root and sig_test_*.root files there)")
    entries = sorted(p for p in root_dir.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if is_root(p)]
    ignored = [p.name for p in entries if p.is_file() and not is_root(p)]
    if ignored:
        logger.warning("%s: ignoring files that are not ROOT files: %s", root_dir,
                       ", ".join(ignored))
    if not files:
        raise DataError(f"{root_dir}: no ROOT files (*.root) found")
    bad = []
    for p in files:
        try:
            root_sample_name(p)
        except DataError:
            bad.append(p.name)
    if bad:
        raise DataError(f"{root_dir}: file names not of the form {PATTERN}: {', '.join(bad)}")
    return files


def convert_root_dir(
    root_dir: Path,
    out_dir: Path,
    settings: RootSettings,
    fmt: str = "h5",
    chunk_size: int = 10000,
    csv_dir: Path | None = None,
    progress: bool = True,
) -> list[RootConversion]:
    """Convert each ROOT file in ``root_dir`` to ``out_dir/<stem>.h5`` (or ``.parquet``).

    A failure leaves no partial output, and an existing store of the same name is replaced only
    once its new version is complete.
    """
    suffix = store_suffix(fmt)
    files = discover_root_files(root_dir)
    if csv_dir is not None:
        check_no_stem_clash(csv_dir, root_dir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("entries"), TimeRemainingColumn())
    results = []
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        for path in files:
            task = bar.add_task(path.name, total=None)
            output = Path(out_dir) / (root_sample_name(path).stem + suffix)
            results.append(_convert_one(path, output, settings, fmt, chunk_size,
                                        lambda done, total, task=task: bar.update(
                                            task, completed=done, total=total)))
    return results


def _convert_one(path: Path, output: Path, settings: RootSettings, fmt: str, chunk_size: int,
                 on_entries) -> RootConversion:
    start = time.perf_counter()
    report = SelectionReport()
    with StoreWriter(output, fmt, source=path.name) as writer:
        for chunk in iter_root_chunks(path, settings, chunk_size, report, on_entries):
            writer.append(chunk)
        if report.events == 0:
            raise DataError(f"{path}: no events to store ({_selection_summary(report, settings)})")
    seconds = time.perf_counter() - start
    logger.info("%s: %d events (of %d entries) in %.1f s (%.0f entries/s) -> %s", path.name,
                report.events, report.entries, seconds, report.entries / max(seconds, 1e-9),
                output)
    if report.events_failed or report.jets_failed:
        logger.warning("%s: %s", path.name, _selection_summary(report, settings))
    return RootConversion(path, output, report, seconds)


def _selection_summary(report: SelectionReport, settings: RootSettings) -> str:
    cuts = [f"pt < {settings.jet_pt_min:g} GeV"]
    if settings.jet_eta_max > 0:
        cuts.append(f"|eta| > {settings.jet_eta_max:g}")
    return (f"{report.entries} entries read; {report.jets_failed} of {report.jets} jets with "
            f"{' or '.join(cuts)} dropped; {report.events_failed} events with fewer than "
            f"{settings.min_jets} jets after that dropped")
