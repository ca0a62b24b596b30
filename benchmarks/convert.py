"""Speed of CSV -> store conversion against numpy's raw float parsing of the same cells.

Builds (or takes with --csv) a BEAD CSV, then times in this process:
  * baseline: ``np.fromstring(cells, sep=",")`` on the file's cells with the padding and line
    structure already removed (prepared outside the timing) -- the cost of only turning the
    same text into floats with numpy's C parser, without any structure or validation;
  * read: ``iter_csv_chunks`` over the file (parse + validate + decode the jagged layout);
  * convert: ``convert_csv_dir`` to HDF5 and to Parquet (read + compute jet kinematics + write).
Each figure is printed as events/s and as a speed ratio to the baseline (>1 means faster).

    python benchmarks/convert.py [--events 20000] [--csv PATH] [--chunk-size 10000]
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bead.io.convert import convert_csv_dir
from bead.io.csv_read import iter_csv_chunks
from bead.io.events import EventChunk

HEADER = "evtwt,met,metphi,njets,npart,isbtagged,pid,pt,eta,phi"
BASELINE = "numpy np.fromstring(cells, sep=',') [baseline]"
READ = "iter_csv_chunks (parse + validate + decode)"
PIDS = np.array([22, 211, -211, 130, 321, -321, 2112, -2112, 2212, -2212, 11, -11, 13, -13])


def synthetic_events(n: int, seed: int = 0) -> EventChunk:
    """Events like the original files: 2-4 jets of 20-80 constituents, ~7 significant digits."""
    rng = np.random.default_rng(seed)
    num_jets = rng.integers(2, 5, n)
    n_jets = int(num_jets.sum())
    constits = rng.integers(20, 81, n_jets)
    n_con = int(constits.sum())
    return EventChunk(
        evt_id=np.arange(n),
        evt_weight=np.round(rng.lognormal(-16, 2, n), 12),
        met=np.round(rng.exponential(100.0, n), 2),
        met_phi=np.round(rng.uniform(0, 2 * np.pi, n), 4),
        num_jets=num_jets,
        jet_num_constits=constits,
        jet_btag=(rng.random(n_jets) < 0.05).astype(np.int64),
        con_pid=rng.choice(PIDS, n_con),
        con_pt=np.round(rng.exponential(8.0, n_con), 5),
        con_eta=np.round(rng.normal(0, 1.2, n_con), 6),
        con_phi=np.round(rng.uniform(0, 2 * np.pi, n_con), 6),
    )


def cell_matrix(chunk: EventChunk, width: int) -> np.ndarray:
    """Each event's cells in one row of a NaN-padded matrix (NaN becomes an empty cell)."""
    cells = np.full((chunk.n_events, width), np.nan)
    cells[:, :4] = np.column_stack([chunk.evt_weight, chunk.met, chunk.met_phi, chunk.num_jets])
    jet_event = chunk.jet_event_index()
    before = np.cumsum(chunk.jet_num_constits) - chunk.jet_num_constits  # constits before jet
    event_first = (np.cumsum(chunk.num_jets) - chunk.num_jets)[jet_event]
    jet_col = 4 + 2 * chunk.jet_index_in_event() + 4 * (before - before[event_first])
    cells[jet_event, jet_col] = chunk.jet_num_constits
    cells[jet_event, jet_col + 1] = chunk.jet_btag
    owner = chunk.constit_jet_index()
    con_col = jet_col[owner] + 2 + 4 * chunk.constit_index_in_jet()
    for k, values in enumerate((chunk.con_pid, chunk.con_pt, chunk.con_eta, chunk.con_phi)):
        cells[jet_event[owner], con_col + k] = values
    return cells


def write_csv(path: Path, n_events: int, batch: int = 2000) -> None:
    """A right-padded BEAD CSV (every row as wide as the widest, like the original files)."""
    chunk = synthetic_events(n_events)
    cells_per_event = 4 + 2 * chunk.num_jets + 4 * np.bincount(
        chunk.jet_event_index(), weights=chunk.jet_num_constits, minlength=n_events
    ).astype(np.int64)
    width = int(cells_per_event.max())
    starts = np.concatenate([[0], np.cumsum(chunk.num_jets)])
    con_starts = np.concatenate([[0], np.cumsum(chunk.jet_num_constits)])
    with path.open("wb") as out:
        out.write((HEADER + "," * (width - 10) + "\n").encode())
        for lo in range(0, n_events, batch):
            hi = min(lo + batch, n_events)
            j0, j1 = starts[lo], starts[hi]
            c0, c1 = con_starts[j0], con_starts[j1]
            part = EventChunk(
                chunk.evt_id[lo:hi], chunk.evt_weight[lo:hi], chunk.met[lo:hi],
                chunk.met_phi[lo:hi], chunk.num_jets[lo:hi], chunk.jet_num_constits[j0:j1],
                chunk.jet_btag[j0:j1], chunk.con_pid[c0:c1], chunk.con_pt[c0:c1],
                chunk.con_eta[c0:c1], chunk.con_phi[c0:c1],
            )
            cells = cell_matrix(part, width)
            table = pa.table({str(i): pa.array(cells[:, i], from_pandas=True)
                              for i in range(width)})
            text = io.BytesIO()
            pacsv.write_csv(table, text, pacsv.WriteOptions(include_header=False))
            out.write(text.getvalue())


def baseline_cells(path: Path) -> bytes:
    """The file's cells joined by commas, with padding, line structure and any gzip removed
    (not timed, so the baseline is pure text-to-float parsing)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    lines = data.splitlines()[1:]
    return b",".join(line.rstrip(b", \r") for line in lines if line.strip(b", \r"))


def timed(run: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events to synthesise")
    parser.add_argument("--csv", type=Path, help="use this BEAD CSV instead of a synthetic one")
    parser.add_argument("--chunk-size", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many rounds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bead-bench-"))
    try:
        csv_dir = work / "csv"
        csv_dir.mkdir()
        csv = csv_dir / "bkg_train_bench.csv"
        if args.csv is not None:
            csv = csv_dir / ("bkg_train_bench.csv.gz" if args.csv.suffix == ".gz" else csv.name)
            shutil.copyfile(args.csv, csv)
        else:
            start = time.perf_counter()
            write_csv(csv, args.events)
            print(f"wrote {csv.name} in {time.perf_counter() - start:.1f} s")
        size_mb = csv.stat().st_size / 1e6

        cells = baseline_cells(csv)
        steps: dict[str, Callable[[], object]] = {
            BASELINE: lambda: len(np.fromstring(cells, sep=",")),
            READ: lambda: sum(c.n_events for c in iter_csv_chunks(csv, args.chunk_size)),
        }
        for fmt in ("h5", "parquet"):
            steps[f"convert_csv_dir -> {fmt}"] = lambda fmt=fmt: convert_csv_dir(
                csv_dir, work / fmt, fmt=fmt, chunk_size=args.chunk_size, progress=False)
        # Rounds over all steps, best per step: load from other processes hits all alike.
        best = dict.fromkeys(steps, np.inf)
        answers: dict[str, object] = {}
        for _ in range(args.repeats):
            for name, run in steps.items():
                seconds, answers[name] = timed(run)
                best[name] = min(best[name], seconds)
        n_cells, n_events = answers[BASELINE], answers[READ]
        base_s = best[BASELINE]

        print(f"file: {size_mb:.1f} MB, {n_events} events, {n_cells} non-empty cells")
        print(f"chunk_size {args.chunk_size}, best of {args.repeats} rounds")
        for fmt in ("h5", "parquet"):
            size = (work / fmt / f"bkg_train_bench.{fmt}").stat().st_size / 1e6
            print(f"{fmt} store: {size:.1f} MB")
        print(f"{'step':<48} {'s':>7} {'events/s':>10} {'MB/s':>7} {'vs numpy':>9}")
        for name, seconds in best.items():
            print(f"{name:<48} {seconds:7.3f} {n_events / seconds:10.0f} "
                  f"{size_mb / seconds:7.1f} {base_s / seconds:8.2f}x")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
