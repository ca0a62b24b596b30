"""Peak memory of prepare_inputs, train (2 epochs) and detect on a sample and on the same sample
repeated eight times: with streaming, memory must not grow with the events (goal: <= 1.5x the
peak RSS for 8x the events).

The sample is synthetic (written here into stores, like convert_csv's): ``--events`` bkg_train
events and half as many bkg_test and sig_test ones (at x1 each is at least one chunk of
prepare_inputs' CHUNK_EVENTS, so x1 and x8 work on chunks of the same size), about 4 jets and
40 constituents per event; x8 repeats every store file's events eight times (new event ids).
Each stage runs in a fresh process so its peak RSS (``ru_maxrss``) is its own; a process that
only imports bead and torch gives the floor every stage pays. Training runs with
``data_mode = "stream"`` (and, with ``--memory``, also with the tensors in memory, to show what
streaming saves).

    python benchmarks/memory.py                      # 32,768 bkg_train events and x8
    python benchmarks/memory.py --events 8192 --memory
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FACTOR = 8
STAGES = ("prepare", "train", "detect")


def synthetic_events(n: int, seed: int, first_id: int, pt_scale: float):
    """Events with 1-6 jets of 1-20 constituents (pt exponential)."""
    from bead.io.events import EventChunk

    rng = np.random.default_rng(seed)
    num_jets = rng.integers(1, 7, n)
    n_jets = int(num_jets.sum())
    per_jet = rng.integers(1, 21, n_jets)
    n_con = int(per_jet.sum())
    return EventChunk(
        evt_id=np.arange(first_id, first_id + n), evt_weight=np.ones(n),
        met=rng.exponential(50.0, n), met_phi=rng.uniform(-np.pi, np.pi, n), num_jets=num_jets,
        jet_num_constits=per_jet, jet_btag=rng.integers(0, 2, n_jets),
        con_pid=rng.choice([211, -211, 130, 22, 11, 13], n_con),
        con_pt=rng.exponential(pt_scale, n_con) + 0.5, con_eta=rng.normal(0.0, 1.5, n_con),
        con_phi=rng.uniform(-np.pi, np.pi, n_con))


def write_stores(folder: Path, events: int, repeat: int) -> int:
    """Write the sample's store files (each repeated ``repeat`` times); returns all events."""
    from bead.io.store import StoreWriter

    total = 0
    for stem, n, seed, scale in (("bkg_train_pythia", events, 1, 20.0),
                                 ("bkg_test_pythia", events // 2, 2, 20.0),
                                 ("sig_test_svj", events // 2, 3, 40.0)):
        with StoreWriter(folder / f"{stem}.h5", "h5", source=f"{stem}.csv") as writer:
            for copy in range(repeat):  # the same events, new ids
                writer.append(synthetic_events(n, seed, copy * n, scale))
        total += n * repeat
    return total


def config(mode: str):
    from bead.config import Config

    return Config(model_name="AE", loss_function="AELoss", epochs=2, batch_size=512,
                  latent_space_size=8, data_mode=mode, device="cpu", num_jets=2,
                  num_constits=15, input_level="constituent")


def child(stage: str, root: Path, mode: str) -> None:
    """Run one stage in this process and print its peak RSS and rate as JSON."""
    import torch

    from bead.evaluation.detect import detect
    from bead.prepare.manifest import read_manifest
    from bead.prepare.stage import prepare_inputs
    from bead.training.trainer import train

    torch.set_num_threads(1)
    cfg, tensors = config(mode), root / "tensors"
    started = time.perf_counter()
    if stage == "prepare":
        prepare_inputs(cfg, root / "store", tensors, progress=False)
    if stage in ("prepare", "detect"):
        events = sum(s.n_events for s in read_manifest(tensors).samples)
    if stage == "train":
        result = train(cfg, tensors, root / f"models_{mode}", root / f"results_{mode}",
                       progress=False)
        events = 2 * sum(s.n_events for s in read_manifest(tensors).of_flag("bkg_train"))
        assert all(np.isfinite(result.history.val["total"]))
    if stage == "detect":
        detect(cfg, tensors, root / f"models_{mode}", root / "results", progress=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "events": events, "seconds": seconds}))


def floor() -> None:
    import torch  # noqa: F401

    import bead.evaluation.detect
    import bead.training.trainer  # noqa: F401

    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=32768, help="bkg_train events at x1")
    parser.add_argument("--memory", action="store_true",
                        help="also train with the tensors in memory")
    parser.add_argument("--child", choices=[*STAGES, "floor"])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--mode", default="stream")
    args = parser.parse_args()
    if args.child == "floor":
        return floor()
    if args.child:
        return child(args.child, args.root, args.mode)

    print(f"floor (python + torch + bead imported): {run('--child', 'floor')['rss_mb']:.0f} MB")
    modes = ["stream", *(["memory"] if args.memory else [])]
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bead-memory-") as tmp:
        for size in (1, FACTOR):
            root = Path(tmp) / f"x{size}"
            (root / "store").mkdir(parents=True)
            total = write_stores(root / "store", args.events, size)
            print(f"x{size}: {total} events in {root / 'store'}", flush=True)
            for stage in STAGES:
                for mode in (modes if stage == "train" else ["stream"]):
                    result = run("--child", stage, "--root", str(root), "--mode", mode)
                    rows.setdefault((stage, mode), []).append(result)
    print(f"\n{'stage':<16}{'x1 MB':>9}{'x8 MB':>9}{'ratio':>8}{'x1 ev/s':>10}{'x8 ev/s':>10}")
    for (stage, mode), (one, eight) in rows.items():
        name = stage if stage != "train" else f"train ({mode})"
        print(f"{name:<16}{one['rss_mb']:>9.0f}{eight['rss_mb']:>9.0f}"
              f"{eight['rss_mb'] / one['rss_mb']:>8.2f}"
              f"{one['events'] / one['seconds']:>10.0f}{eight['events'] / eight['seconds']:>10.0f}")
    print(f"\ngoal: peak RSS ratio <= 1.5 for {FACTOR}x the events (streamed)")


if __name__ == "__main__":
    main()
