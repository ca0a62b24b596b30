"""ROOT files (Delphes, CMS NanoAOD/PFNano) to EventChunks, streamed with uproot (SPEC §4.5).

This module opens a file, picks its format (``root_format``, or detected from the tree's
branches), lets the format's reader check the branches it needs, streams the tree in chunks of
``chunk_size`` entries with ``TTree.iterate`` (memory bounded by the chunk, whatever the file
size) and applies the conversion-time jet selection. uproot is the optional ``root`` extra,
imported only when a file is read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bead.errors import BeadError, DataError, MissingExtraError
from bead.io import delphes, nanoaod
from bead.io.events import EventChunk
from bead.io.root_base import AUTO, JetChunk, RootSettings, TreeInfo

logger = logging.getLogger(__name__)

FORMATS: dict[str, ModuleType] = {"delphes": delphes, "nanoaod": nanoaod}


@dataclass
class SelectionReport:
    """What the conversion-time selection kept and dropped, for the log and the result."""

    entries: int = 0
    events: int = 0
    jets: int = 0
    jets_failed: int = 0
    events_failed: int = 0

    def add(self, chunk: JetChunk, kept: EventChunk, jets_failed: int) -> None:
        self.entries += chunk.events.n_events
        self.events += kept.n_events
        self.jets += chunk.events.n_jets
        self.jets_failed += jets_failed
        self.events_failed += chunk.events.n_events - kept.n_events


def _uproot() -> Any:
    try:
        import uproot
    except ImportError:
        raise MissingExtraError("root", "uproot", "convert_root") from None
    return uproot


def _pick_tree(path: Path, file: Any, settings: RootSettings) -> tuple[str, ModuleType | None]:
    """The tree to read, and its format where the settings or the tree's name fix it."""
    trees = sorted({key.split(";")[0] for key, cls in file.classnames().items()
                    if cls == "TTree"})
    fmt = FORMATS.get(settings.format)
    if settings.tree != AUTO:
        name = settings.tree
    elif fmt is not None:
        name = fmt.TREE
    else:
        name = next((f.TREE for f in FORMATS.values() if f.TREE in trees),
                    trees[0] if len(trees) == 1 else "")
    if name not in trees:
        named = f"no tree '{name}'" if name else "cannot tell which tree to read"
        raise DataError(f"{path}: {named} (trees: {', '.join(trees) or 'none'}); "
                        "set root_tree (and root_format)")
    return name, fmt


def _tree_info(path: Path, name: str, tree: Any,
               fmt: ModuleType | None) -> tuple[ModuleType, TreeInfo, str]:
    """The tree's branch names and its format, with how the format was chosen (for the log)."""
    names = frozenset(key.rsplit("/", 1)[-1] for key in tree.keys(recursive=True))
    how = "root_format"
    if fmt is None:
        how = "detected from the branches"
        fmt = next((f for f in FORMATS.values()
                    if f.looks_like(TreeInfo(path, name, names, f.Reader.separator))), None)
        if fmt is None:
            raise DataError(f"{path}: tree '{name}' is neither Delphes (no *.Constituents) nor "
                            "NanoAOD (no *PFCands_jetIdx); set root_format")
    return fmt, TreeInfo(path, name, names, fmt.Reader.separator), how


@contextlib.contextmanager
def _open_tree(path: Path, settings: RootSettings) -> Iterator[tuple[Any, Any]]:
    """The tree to read and its format's reader; a file uproot cannot open is a DataError."""
    uproot = _uproot()
    try:
        file = uproot.open(path)
    except Exception as exc:  # uproot raises OSError, ValueError, ... on a bad file
        raise DataError(f"{path}: not a readable ROOT file ({_one_line(exc)})") from exc
    with file:
        try:
            name, fmt = _pick_tree(path, file, settings)
            tree = file[name]
            fmt, info, how = _tree_info(path, name, tree, fmt)
            reader = fmt.Reader(info, settings)
        except BeadError:
            raise
        except Exception as exc:  # a damaged directory or tree header
            raise DataError(f"{path}: not a readable ROOT file ({_one_line(exc)})") from exc
        logger.info("%s: tree '%s', %s; %s", path.name, name, how, reader.summary)
        yield tree, reader


def iter_root_chunks(
    path: Path,
    settings: RootSettings,
    chunk_size: int = 10000,
    report: SelectionReport | None = None,
    on_entries: Callable[[int, int], None] | None = None,
) -> Iterator[EventChunk]:
    """Yield the selected events of ``path`` chunk by chunk; ``evt_id`` is the tree entry.

    ``on_entries(done, total)`` is called after each chunk (for a progress bar).
    """
    path = Path(path)
    report = report if report is not None else SelectionReport()
    with _open_tree(path, settings) as (tree, reader):
        total = tree.num_entries
        chunks = tree.iterate(reader.branches, step_size=chunk_size, library="ak", report=True)
        start = 0
        while True:
            try:
                arrays, where = next(chunks)
                chunk = reader.read(arrays, where.tree_entry_start)
            except StopIteration:
                break
            except BeadError:
                raise
            except Exception as exc:  # a damaged file fails in uproot, or gives garbage counts
                stop = min(start + chunk_size, total)
                raise DataError(f"{path}: cannot read entries {start}-{stop - 1} (truncated or "
                                f"corrupt file?): {_one_line(exc)}") from exc
            start = where.tree_entry_stop
            del arrays  # the consumer writes the chunk while this frame waits: free the input
            yield select_jets(chunk, settings, report)
            if on_entries is not None:
                on_entries(start, total)


def select_jets(chunk: JetChunk, settings: RootSettings, report: SelectionReport) -> EventChunk:
    """Drop jets outside ``jet_pt_min`` / ``jet_eta_max``, then events left with fewer than
    ``min_jets`` jets; both are counted in ``report``."""
    ev = chunk.events
    passes = chunk.jet_pt >= settings.jet_pt_min
    if settings.jet_eta_max > 0:
        passes &= np.abs(chunk.jet_eta) <= settings.jet_eta_max
    jet_event = ev.jet_event_index()
    num_jets = np.bincount(jet_event, weights=passes, minlength=ev.n_events).astype(np.int64)
    keep_event = num_jets >= settings.min_jets
    jets_failed = int((~passes).sum())
    if jets_failed == 0 and keep_event.all():  # the default: nothing to drop, nothing to copy
        report.add(chunk, ev, 0)
        return ev
    keep_jet = passes & keep_event[jet_event]
    keep_con = np.repeat(keep_jet, ev.jet_num_constits)
    kept = EventChunk(
        evt_id=ev.evt_id[keep_event], evt_weight=ev.evt_weight[keep_event],
        met=ev.met[keep_event], met_phi=ev.met_phi[keep_event], num_jets=num_jets[keep_event],
        jet_num_constits=ev.jet_num_constits[keep_jet], jet_btag=ev.jet_btag[keep_jet],
        con_pid=ev.con_pid[keep_con], con_pt=ev.con_pt[keep_con], con_eta=ev.con_eta[keep_con],
        con_phi=ev.con_phi[keep_con],
    )
    report.add(chunk, kept, jets_failed)
    return kept


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
