"""report.html: answers first, self-contained, tables last; and, where Chromium is installed,
rendered in a real browser with the headline on the first screen."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plot_inputs import SMALL_SIGNALS, write_all

from bead.config import Config
from bead.evaluation.enrichment import enrichment_metrics
from bead.evaluation.metrics import compute_metrics
from bead.evaluation.scores import read_scores
from bead.evaluation.sculpting import sculpting_metrics
from bead.plotting import make_plots
from bead.plotting.report import ReportInputs, render_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREEN = (1280, 800)


def sculpting_section(score_is_mass: bool) -> dict:
    """The sculpting section of a background whose score is a function of the dijet mass
    (maximal sculpting), or independent of it (none)."""
    rng = np.random.default_rng(1)
    mass = 500 + rng.exponential(300.0, 20000)
    score = np.log(mass) if score_is_mass else rng.normal(size=mass.size)
    return {"score": "total", **sculpting_metrics(score, {"mjj": mass}, np.ones(mass.size))}


EXTRA = {"primary_score": "total", "observables": ["obs_met", "obs_mt"],
         "warnings": ["sig_test_svj_rinv03 has only 40 events"],
         "sculpting": sculpting_section(score_is_mass=True)}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """A single-signal project with observables, a low-stats entry, a warning and sculpting."""
    root = tmp_path_factory.mktemp("project") / "output"
    results = write_all(root / "results", n_bkg=80, n_sig=40, signals=SMALL_SIGNALS,
                        scores=["total", "reco", "obs_met", "obs_mt"], metrics=EXTRA)
    metrics = json.loads((results / "metrics.json").read_text())
    metrics["per_signal"]["obs_mt"][SMALL_SIGNALS[0]]["low_stats"] = True
    (results / "metrics.json").write_text(json.dumps(metrics))
    make_plots(Config(), results, root / "plots")
    return root / "plots", metrics, (root / "plots" / "report.html").read_text("utf-8")


class Outline(HTMLParser):
    """Section ids in order, img sources, and whether tables sit inside <details>."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.open_details = 0
        self.tables_outside_details = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs.get("id") or attrs.get("class", ""))
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "details":
            self.open_details += 1
        if tag == "table" and self.sections and self.sections[-1] == "tables" \
                and not self.open_details:
            self.tables_outside_details += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.open_details -= 1


def test_report_is_self_contained_and_answers_first(report) -> None:
    plots, _, page = report
    outline = Outline()
    outline.feed(page)
    assert outline.sections[:2] == ["answer", "config"] and outline.sections[-1] == "tables"
    assert set(outline.sections[2:-1]) == {"figures"}
    assert not {"script", "link", "iframe", "object"} & outline.tags
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # no external file of any kind
    assert len(outline.images) == len(list(plots.rglob("*.png")))
    for src in outline.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert outline.tables_outside_details == 0


def test_headline_numbers_come_from_metrics(report) -> None:
    _, metrics, page = report
    answer = page[page.index('id="answer"'):page.index('id="config"')]
    signal = SMALL_SIGNALS[0]
    primary = metrics["per_signal"]["total"][signal]
    assert f'<span id="headline-auc">{primary["auc"]:.3f}</span>' in answer
    assert f"{primary['eff_s']['1e-02']:.3f}" in answer
    best = max(EXTRA["observables"], key=lambda o: metrics["per_signal"][o][signal]["auc"])
    assert best in answer and f"{metrics['per_signal'][best][signal]['auc']:.3f}" in answer
    pairs = metrics["generator_separation"]["total"].values()
    assert f"max |AUC − 0.5| = {max(abs(a - 0.5) for a in pairs):.3f} over 3" in answer
    cuts = EXTRA["sculpting"]["observables"]["mjj"]["cuts"]
    point = max(cuts, key=lambda p: cuts[p]["jsd"] / cuts[p]["jsd_stat"])  # the worst cut
    ratio = cuts[point]["jsd"] / cuts[point]["jsd_stat"]
    assert ratio > 50  # a cut on a function of the mass keeps one end of the spectrum
    assert (f"Mass sculpting (cut on total): largest JSD {cuts[point]['jsd']:.4f} bits (mjj at "
            f"ε_b = {point}), {ratio:.1f}× that of random selections") in answer
    assert "the cut sculpts the mass spectra" in answer
    dcor = EXTRA["sculpting"]["observables"]["mjj"]["distance_correlation"]
    assert dcor > 0.95 and f"distance correlation up to {dcor:.3f}" in answer
    assert "⚠ sig_test_svj_rinv03 has only 40 events" in answer
    assert "⚠ low stats" in page  # obs_mt's entry in the tables
    # 80 events per generator cannot resolve eps_b = 1e-3: null, shown as a flagged dash.
    assert primary["eff_s"]["1e-03"] is None
    assert 'title="not resolvable' in answer and "— : not resolvable" in answer


def test_single_signal_has_no_duplicate_all_signals_rows(report) -> None:
    _, _, page = report
    tables = page[page.index('id="tables"'):]
    assert "all signals" not in tables and "all_signals" not in tables
    assert tables.count("<tr>") > 10


def test_config_summary_and_sculpting_only_when_measured(report) -> None:
    plots, metrics, page = report
    config = page[page.index('id="config"'):page.index('class="figures"')]
    for text in ("Planar_ConvVAE", "VAEFlowLoss", "12 epochs run (of 40), best epoch 10",
                 "4,321 events/s", "scalers.json sha256 toy-scalers", "best.pt sha256"):
        assert text in config
    assert "sculpting/sculpting_mjj.png" in page  # the figure, drawn from the section
    tables = page[page.index('id="tables"'):]
    assert f"<td>{cut_ratio(EXTRA['sculpting']):.1f}</td>" in tables
    independent = {**metrics, "sculpting": sculpting_section(score_is_mass=False)}
    page = render_report(plots, ReportInputs("t", Config(), metrics=independent))
    assert "no sculpting beyond the statistical fluctuation of the sample" in page
    no_masses = {**metrics, "sculpting": {"score": "total", "observables": {}}}
    page = render_report(plots, ReportInputs("t", Config(), metrics=no_masses))
    assert "Mass sculpting: not measured" in page
    del metrics["sculpting"]
    page = render_report(plots, ReportInputs("t", Config(), metrics=metrics))
    assert "Mass sculpting" not in page[:page.index('id="config"')]
    assert "Mass sculpting of the background" not in page


def cut_ratio(section: dict) -> float:
    cut = section["observables"]["mjj"]["cuts"]["1e-01"]
    return cut["jsd"] / cut["jsd_stat"]


def test_uncertainties_and_the_enrichment_test_are_shown(report) -> None:
    plots, _, page = report
    assert " ± " not in page[:page.index('id="tables"')]  # no bootstrap: no ±
    table = read_scores(plots.parent / "results" / "scores.h5")
    metrics = compute_metrics(table, bootstrap_resamples=20, seed=3)
    metrics["enrichment"] = enrichment_metrics(table, table.scores, ["vincia"],
                                               ["a14", "pythia"])
    page = render_report(plots, ReportInputs("t", Config(), metrics=metrics))
    answer = page[page.index('id="answer"'):page.index('id="config"')]
    entry = metrics["per_signal"]["total"][SMALL_SIGNALS[0]]
    assert f"<td>{entry['auc']:.3f} ± {entry['auc_err']:.3f}</td>" in answer
    assert (f"<td>{entry['eff_s']['1e-02']:.3f} ± {entry['eff_s_err']['1e-02']:.3f}</td>"
            in answer)
    assert "standard deviation over 20 bootstrap resamples" in answer
    tables = page[page.index('id="tables"'):]
    assert f"<td>{entry['auc']:.4f} ± {entry['auc_err']:.4f}</td>" in tables
    held = metrics["enrichment"]["per_score"]["total"]["vincia"]["eff_b"]["1e-02"]
    assert (f"the cut keeping ε_b = 1e-2 of a14+pythia keeps {100 * held['eff_b_holdout']:.2f}"
            f" ± {100 * held['eff_b_holdout_err']:.2f} % of vincia, never trained on: "
            f"{held['ratio']:.2f}× nominal") in answer
    assert "Enrichment test: held-out background at cuts placed on a14+pythia" in tables


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
         f"--window-size={SCREEN[0]},{SCREEN[1]}", *args],
        capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                    reason=f"headless Chromium not installed ({CHROMIUM}); .ci/run installs "
                           "Debian's chromium package")
def test_browser_shows_the_headline_on_the_first_screen(report, tmp_path: Path) -> None:
    plots, metrics, page = report
    # 1. A screenshot of the page as it is: not blank, and the answer box (its own background
    #    colour, #eaf2fb) fills a good part of the first screen.
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", (plots / "report.html").as_uri(), tmp=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (SCREEN[1], SCREEN[0])
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    answer_box = np.all(np.abs(pixels - [0xEA, 0xF2, 0xFB]) <= 2, axis=2)
    assert answer_box.mean() > 0.10
    # 2. Where the headline AUC lands: a copy of the page measures it after layout.
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", (
        "<script>window.onload = () => { const r = document.getElementById('headline-auc')"
        ".getBoundingClientRect(); document.title = 'HEADLINE ' + r.top + ' ' + r.bottom + "
        "' ' + window.innerHeight + ' ' + document.getElementById('headline-auc').textContent;"
        " };</script></body>")), encoding="utf-8")
    dom = chromium("--dump-dom", probe.as_uri(), tmp=tmp_path).stdout
    top, bottom, height, text = re.search(r"<title>HEADLINE (\S+) (\S+) (\S+) (\S+)</title>",
                                          dom).groups()
    # The viewport is the window less the browser's own bars (about 660 of 800 pixels).
    assert 0 <= float(top) < float(bottom) <= float(height) and float(height) > 600
    assert text == f"{metrics['per_signal']['total'][SMALL_SIGNALS[0]]['auc']:.3f}"
