"""Plot time on demo-sized inputs: this version against the plotting code of a baseline commit
(by default the one whose demo took 23 s to plot), on the same results, in the same call.

The synthetic results are those of the plotting tests (tests/plotting/plot_inputs.py) at demo
size: 3 background generators, 1-2 signals, several scores, z0/zK/mu latents and 40 epochs of
history. Each path runs in a fresh process, imports included, as ``bead -m plot`` pays them:
the baseline from ``git archive <rev> src`` unpacked to a temporary folder, this version from
this checkout's src/. They alternate ``--repeat`` times and the fastest run of each counts, so
that other jobs on the machine weigh on both alike; the CPU seconds (process and workers) are
printed too, since they depend far less than wall time on what else the machine runs. This
version also draws more figures (latent views, uncertainty, the comparison ROC) and the
embedded report.

    python benchmarks/plot.py                  # baseline 45c3689, 2 workers (the default)
    python benchmarks/plot.py --workers 4 --repeat 3 --baseline <rev>
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "plotting"))

from plot_inputs import GENERATORS, SIGNALS, write_all  # noqa: E402

BASELINE = "45c3689"  # the commit whose demo measured plot = 23 s
SCORES = ["total", "reco", "kl", "log_q0", "neg_ldj", "nll_pk"]  # VAEFlowLoss's components

RUN = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
from bead.config import Config
from bead.plotting import make_plots
imported = time.perf_counter()
written = make_plots(Config(parallel_workers={workers}), Path({results!r}), Path({plots!r}))
done = time.perf_counter()
print(json.dumps({{"import": imported - start, "plot": done - imported,
                  "figures": sum(1 for p in written if str(p).endswith(".png"))}}))
"""


def baseline_source(rev: str, into: Path) -> Path:
    """The baseline's src/ folder, unpacked from git (the working tree is not touched)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(into, **safe)
    return into / "src"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(src: Path, results: Path, plots: Path, workers: int) -> dict[str, float]:
    """Wall seconds of the import and of make_plots, and the CPU seconds of the whole process
    with its workers (CPU time hardly depends on what else the machine is doing)."""
    env = {**os.environ, "PYTHONPATH": str(src), "MPLBACKEND": "Agg"}
    code = RUN.format(workers=workers, results=str(results), plots=str(plots))
    before = _cpu()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=env).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "cpu": _cpu() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--workers", type=int, default=2, help="parallel_workers of this one")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each path")
    parser.add_argument("--background", type=int, default=1500, help="events per generator")
    parser.add_argument("--signal", type=int, default=1000, help="events per signal sample")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = write_all(root / "output" / "results", epochs=40, n_bkg=args.background,
                            n_sig=args.signal, scores=SCORES)
        n_events = len(GENERATORS) * args.background + len(SIGNALS) * args.signal
        paths = {f"baseline {args.baseline}, 1 process": (baseline_source(args.baseline, root),
                                                         1),
                 "this version, 1 worker": (REPO / "src", 1),
                 f"this version, {args.workers} workers": (REPO / "src", args.workers)}
        best: dict[str, dict[str, float]] = {}
        for i in range(args.repeat):
            for j, (name, (src, workers)) in enumerate(paths.items()):
                timing = run(src, results, root / f"plots_{i}_{j}", workers)
                if name not in best or timing["plot"] < best[name]["plot"]:
                    best[name] = timing
        print(f"plot on {n_events:,} test events ({len(GENERATORS)} generators, "
              f"{len(SIGNALS)} signals, {len(SCORES)} scores, 40 epochs), fastest of "
              f"{args.repeat} runs, {os.cpu_count()} CPUs:")
        base = best[next(iter(paths))]
        print(f"{'':34s} {'figures':>7s} {'import s':>9s} {'plot s':>7s} {'wall s':>7s} "
              f"{'CPU s':>6s} {'wall ratio':>10s} {'CPU ratio':>9s}")
        for name, timing in best.items():
            wall = timing["import"] + timing["plot"]
            print(f"{name:34s} {timing['figures']:7.0f} {timing['import']:9.1f} "
                  f"{timing['plot']:7.1f} {wall:7.1f} {timing['cpu']:6.1f} "
                  f"{(base['import'] + base['plot']) / wall:9.1f}x "
                  f"{base['cpu'] / timing['cpu']:8.1f}x")


if __name__ == "__main__":
    main()
