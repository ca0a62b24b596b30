"""Speed and memory of ROOT -> store conversion against uproot's own read of the same branches.

Writes a synthetic NanoAOD-like file (the PFNano branch layout with made-up values: 1-3 fat jets
of 10-50 PF candidates per event plus 10 candidates outside any jet) of ``--events`` events in
a temporary folder, then times in this process, alternating and keeping the best of
``--repeat`` runs:
  * baseline: ``TTree.iterate`` over exactly the branches the converter reads, into awkward
    arrays, in chunks of ``--chunk-size`` -- the cost of reading and decompressing the file;
  * read: ``iter_root_chunks`` (the baseline + resolving the candidate index table + selection);
  * convert: ``convert_root_dir`` to HDF5 and to Parquet (read + jet kinematics + write);
  * write only: ``StoreWriter`` appending the same events, already read, to HDF5 / Parquet --
    the share of the conversion that the store writer takes, whatever the input format.
Each figure is printed as events/s and as a speed ratio to the baseline (goal: >= 0.5).

Peak memory (max RSS) is measured in fresh child processes: an import-only child, conversions
with two chunk sizes, and -- as the unbounded reference -- ``TTree.arrays`` of the whole file.

    python benchmarks/convert_root.py [--events 100000] [--chunk-size 10000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from bead.io import nanoaod
from bead.io.root import iter_root_chunks
from bead.io.root_base import RootSettings, TreeInfo
from bead.io.root_convert import convert_root_dir
from bead.io.store import StoreWriter

PIDS = np.array([211, -211, 22, 130, 11, -11, 13, -13, 2212, -2212, 321, -321])


def _jagged(counts: np.ndarray, values: np.ndarray) -> ak.Array:
    return ak.unflatten(values, counts)


def write_file(path: Path, n_events: int, block: int = 10000, seed: int = 0) -> Path:
    """A NanoAOD-like file written ``block`` events at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    with uproot.recreate(path) as file:
        for start in range(0, n_events, block):
            n = min(block, n_events - start)
            num_jets = rng.integers(1, 4, n)
            n_jets = int(num_jets.sum())
            per_jet = rng.integers(10, 51, n_jets)
            clustered = np.bincount(np.repeat(np.arange(n), num_jets), per_jet, n).astype(int)
            num_cands = clustered + 10
            n_cands, n_pairs = int(num_cands.sum()), int(per_jet.sum())
            # pairs: jet j of its event, candidates 0.. of the event in order
            jet_in_event = np.arange(n_jets) - np.repeat(np.cumsum(num_jets) - num_jets, num_jets)
            pair_jet = np.repeat(jet_in_event, per_jet)
            pair_cand = np.arange(n_pairs) - np.repeat(np.cumsum(clustered) - clustered, clustered)
            data = {
                "FatJet": ak.zip({
                    "pt": _jagged(num_jets, rng.uniform(200, 1500, n_jets).astype("f4")),
                    "eta": _jagged(num_jets, rng.uniform(-2.4, 2.4, n_jets).astype("f4")),
                    "phi": _jagged(num_jets, rng.uniform(-np.pi, np.pi, n_jets).astype("f4")),
                    "btagDDBvLV2": _jagged(num_jets, rng.random(n_jets).astype("f4")),
                }),
                "PFCands": ak.zip({
                    "pt": _jagged(num_cands, rng.exponential(8, n_cands).astype("f4")),
                    "eta": _jagged(num_cands, rng.uniform(-2.5, 2.5, n_cands).astype("f4")),
                    "phi": _jagged(num_cands, rng.uniform(-np.pi, np.pi, n_cands).astype("f4")),
                    "pdgId": _jagged(num_cands, rng.choice(PIDS, n_cands).astype("i4")),
                }),
                "FatJetPFCands": ak.zip({
                    "jetIdx": _jagged(clustered, pair_jet.astype("i4")),
                    "pFCandsIdx": _jagged(clustered, pair_cand.astype("i4")),
                }),
                "MET_pt": rng.exponential(80, n).astype("f4"),
                "MET_phi": rng.uniform(-np.pi, np.pi, n).astype("f4"),
                "genWeight": rng.uniform(0.5, 1.5, n).astype("f4"),
            }
            if start == 0:
                file.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype
                                       for k, v in data.items()},
                            field_name=lambda outer, inner: f"{outer}_{inner}",
                            counter_name=lambda counted: f"n{counted}")
            file["Events"].extend(data)
    return path


def branches(path: Path) -> list[str]:
    """The branches the converter reads from ``path``."""
    tree = uproot.open(path)["Events"]
    info = TreeInfo(path, "Events", frozenset(tree.keys()), "_")
    return nanoaod.Reader(info, RootSettings()).branches


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def child(mode: str, path: Path, chunk_size: int, out: Path) -> None:
    """One measurement in a fresh process: prints its peak RSS and time as JSON."""
    start = time.perf_counter()
    if mode == "whole":
        ak.to_packed(uproot.open(path)["Events"].arrays(branches(path)))
    elif mode in ("h5", "parquet"):
        convert_root_dir(path.parent, out, RootSettings(), fmt=mode, chunk_size=chunk_size,
                         progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mb": peak_rss_mb(), "seconds": seconds}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, whereas
    ``ru_maxrss`` carries over the parent's peak through fork + exec."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_child(mode: str, path: Path, chunk_size: int, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--file", str(path),
         "--chunk-size", str(chunk_size), "--out", str(out)],
        check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.chunk_size, args.out)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "root"
        folder.mkdir()
        path = folder / "bkg_train_bench.root"
        start = time.perf_counter()
        write_file(path, args.events)
        wanted = branches(path)
        print(f"wrote {args.events} events ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.0f} s; {len(wanted)} branches read")

        def baseline() -> int:
            tree = uproot.open(path)["Events"]
            return sum(len(a) for a in tree.iterate(wanted, step_size=args.chunk_size))

        def read() -> int:
            return sum(c.n_events for c in iter_root_chunks(path, RootSettings(),
                                                            args.chunk_size))

        def convert(fmt: str) -> Callable[[], int]:
            return lambda: sum(r.n_events for r in convert_root_dir(
                folder, Path(tmp) / fmt, RootSettings(), fmt=fmt, chunk_size=args.chunk_size,
                progress=False))

        chunks = list(iter_root_chunks(path, RootSettings(), args.chunk_size))

        def write_only(fmt: str) -> Callable[[], int]:
            def run() -> int:
                with StoreWriter(Path(tmp) / f"w.{fmt}", fmt) as writer:
                    for chunk in chunks:
                        writer.append(chunk)
                return sum(c.n_events for c in chunks)
            return run

        steps = {"uproot TTree.iterate -> awkward [baseline]": baseline,
                 "iter_root_chunks (read + resolve + select)": read,
                 "convert_root -> HDF5": convert("h5"),
                 "convert_root -> Parquet": convert("parquet"),
                 "StoreWriter only -> HDF5": write_only("h5"),
                 "StoreWriter only -> Parquet": write_only("parquet")}
        times = dict.fromkeys(steps, np.inf)
        for _ in range(args.repeat):  # alternate, so machine load hits every step alike
            for label, fn in steps.items():
                seconds, n = timed(fn)
                assert n == args.events, (label, n)
                times[label] = min(times[label], seconds)
        base = args.events / times[next(iter(steps))]
        print(f"\n{'step':46s} {'events/s':>10s} {'vs baseline':>12s}")
        for label, seconds in times.items():
            rate = args.events / seconds
            print(f"{label:46s} {rate:10.0f} {rate / base:11.2f}x")

        print("\npeak RSS, each in a fresh process:")
        idle = measure_child("import", path, args.chunk_size, Path(tmp) / "m")["peak_mb"]
        print(f"  {'imports only':40s} {idle:8.0f} MB")
        for size in (args.chunk_size // 2, args.chunk_size * 2):
            got = measure_child("h5", path, size, Path(tmp) / f"m{size}")["peak_mb"]
            print(f"  {f'convert_root -> HDF5, chunk {size}':40s} {got:8.0f} MB")
        whole = measure_child("whole", path, args.chunk_size, Path(tmp) / "m")["peak_mb"]
        print(f"  {'TTree.arrays of the whole file [unbounded]':40s} {whole:8.0f} MB")


if __name__ == "__main__":
    main()
