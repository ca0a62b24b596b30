"""Sample file names (SPEC §4.2): which CSVs exist and what flag and generator each one carries.

Names are parsed, never guessed: a CSV whose name does not follow the pattern is an error, so
no sample silently drops out of training or evaluation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from bead.errors import DataError

logger = logging.getLogger(__name__)

FLAGS = ("bkg_train", "bkg_test", "sig_test")
PATTERN = ("<bkg_train|bkg_test|sig_test>_<generator>[_<tag>].csv[.gz], where <generator> "
           "has letters, digits, '-' and '.' (starting with a letter or digit) and ends at the "
           "next '_'; everything after it is the <tag>")

# The generator is everything up to the next underscore: "bkg_train_my-gen.csv" is generator
# "my-gen", "bkg_train_my_gen.csv" is generator "my" with tag "gen".
_NAME = re.compile(
    r"^(?P<flag>bkg_train|bkg_test|sig_test)_(?P<generator>[A-Za-z0-9][A-Za-z0-9.-]*?)"
    r"(?:_(?P<tag>.+?))?\.csv(?:\.gz)?$"
)
_CSV_SUFFIXES = (".csv", ".csv.gz")
ROOT_SUFFIX = ".root"


@dataclass(frozen=True)
class SampleName:
    """The parts of a sample file name; ``stem`` names the store file made from it."""

    flag: str
    generator: str
    tag: str | None
    stem: str


def parse_sample_name(path: Path | str) -> SampleName:
    """Split ``<flag>_<generator>[_<tag>].csv[.gz]`` into its parts."""
    name = Path(path).name
    match = _NAME.match(name)
    if match is None:
        raise DataError(f"{path}: sample file name must look like {PATTERN}")
    return SampleName(match["flag"], match["generator"], match["tag"], _stem(name))


def _stem(name: str) -> str:
    return name.removesuffix(".gz").removesuffix(".csv")


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith(_CSV_SUFFIXES)


def csv_stems(csv_dir: Path) -> set[str]:
    """The stems (store names) of the CSV entries in ``csv_dir``; none if it does not exist."""
    csv_dir = Path(csv_dir)
    return {_stem(p.name) for p in csv_dir.iterdir() if _is_csv(p)} if csv_dir.is_dir() else set()


def is_root(path: Path) -> bool:
    return path.name.endswith(ROOT_SUFFIX) and not path.name.startswith(".")


def root_stems(root_dir: Path) -> set[str]:
    """The stems (store names) of the ROOT files in ``root_dir``; none if it does not exist."""
    root_dir = Path(root_dir)
    if not root_dir.is_dir():
        return set()
    return {p.name[: -len(ROOT_SUFFIX)] for p in root_dir.iterdir() if is_root(p)}


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a CSV file, or None when it can."""
    if path.is_symlink() and not path.exists():
        return "not a readable file (broken link?)"
    if path.is_dir():
        return "not a readable file (a folder)"
    if not path.is_file():
        return "not a readable file (not a regular file)"
    try:
        path.open("rb").close()
    except OSError as exc:
        return f"not a readable file ({exc.strerror or exc})"
    return None


def discover_csvs(csv_dir: Path) -> list[Path]:
    """All sample CSVs in ``csv_dir``, sorted; every CSV there must have a valid sample name.

    A ``*.csv`` entry that cannot be read (a broken link, a folder, no permission) is an error
    rather than skipped, so a sample never drops out unnoticed.
    """
    csv_dir = Path(csv_dir)
    if not csv_dir.is_dir():
        raise DataError(f"{csv_dir}: CSV folder does not exist")
    try:
        entries = sorted(p for p in csv_dir.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{csv_dir}: cannot list the CSV folder: {exc.strerror or exc}") from exc
    csvs = [p for p in entries if _is_csv(p)]
    unreadable = [f"{p}: {why}" for p in csvs if (why := _unreadable(p)) is not None]
    if unreadable:
        raise DataError("; ".join(unreadable))
    # JSON files are metadata kept beside the CSVs (generate's generated.json), not samples.
    ignored = [p.name for p in entries
               if p.is_file() and not _is_csv(p) and p.suffix.lower() != ".json"]
    if ignored:
        logger.warning("%s: ignoring files that are not CSVs: %s", csv_dir, ", ".join(ignored))
    if not csvs:
        raise DataError(f"{csv_dir}: no CSV files (*.csv, *.csv.gz) found")
    bad = [p.name for p in csvs if _NAME.match(p.name) is None]
    if bad:
        raise DataError(
            f"{csv_dir}: file names not of the form {PATTERN}: {', '.join(bad)}"
        )
    stems: dict[str, str] = {}
    for p in csvs:
        stem = parse_sample_name(p).stem
        if stem in stems:
            raise DataError(
                f"{csv_dir}: {stems[stem]} and {p.name} would both be stored as '{stem}'"
            )
        stems[stem] = p.name
    return csvs
