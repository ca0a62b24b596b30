"""Regenerate docs/report.png, the README's picture of the first screen of a report.

By default the report is drawn from the demo-sized synthetic results of benchmarks/plot.py
(with a primary score, two single observables and one signal); ``--plots DIR`` screenshots an
existing project's ``output/plots/report.html`` instead (e.g. after ``bead -m demo``:
``--plots workspaces/demo/demo/output/plots``). Needs headless Chromium (Debian's
``chromium``); the PNG is reduced to 256 colours to stay small.

    python benchmarks/report_screenshot.py [--plots DIR] [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "plotting"))

from plot_inputs import SMALL_SIGNALS, write_all  # noqa: E402

from bead.config import Config  # noqa: E402
from bead.plotting import make_plots  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1280, 800)


def synthetic_report(root: Path) -> Path:
    results = write_all(root / "demo" / "output" / "results", epochs=40, n_bkg=1000,
                        n_sig=1500, signals=SMALL_SIGNALS,
                        scores=["total", "reco", "kl", "obs_met", "obs_j1_mass"],
                        metrics={"primary_score": "total",
                                 "observables": ["obs_met", "obs_j1_mass"]})
    make_plots(Config(), results, root / "demo" / "output" / "plots")
    return root / "demo" / "output" / "plots"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", type=Path, help="a project's output/plots folder")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plots = args.plots or synthetic_report(Path(tmp))
        shot = Path(tmp) / "shot.png"
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={shot}",
                        f"--window-size={WINDOW[0]},{WINDOW[1]}",
                        (plots / "report.html").resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").quantize(256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
