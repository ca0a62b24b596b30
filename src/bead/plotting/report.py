"""A one-page HTML report per project: the metrics tables and every PNG under plots/.

Self-contained except the PNGs, which it references by relative path so the folder can be
copied or zipped as it is.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from bead.fileio import atomic_write_text
from bead.training.history import History

REPORT = "report.html"
WORKING_POINTS = ("1e-02", "1e-03")
SECTION_ORDER = ("loss", "roc", "sic", "scores", "latent_space", "overlay_roc")

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f0f0f0; } td.name { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.grid figure { margin: 0; width: 420px; } .grid img { width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.8em; color: #555; word-break: break-all; }
"""


def _num(value: Any, fmt: str = ".4f") -> str:
    return "—" if value is None else format(float(value), fmt)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="name">{html.escape(r[0])}</td>' if i == 0 else
                         f"<td>{html.escape(c)}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _signal_table(metrics: dict[str, Any]) -> str:
    header = ["score", "signal", "AUC", *(f"eff_s @ eps_b={wp}" for wp in WORKING_POINTS),
              "max SIC"]
    rows = []
    for score, per_signal in metrics.get("per_signal", {}).items():
        for signal, entry in per_signal.items():
            eff = entry.get("eff_s") or {}
            rows.append([score, signal, _num(entry.get("auc")),
                         *(_num(eff.get(wp)) for wp in WORKING_POINTS),
                         _num(entry.get("max_sic"), ".2f")])
    return _table(header, rows)


def _generator_table(metrics: dict[str, Any]) -> str:
    rows = [[score, gen, _num((entries.get("all_signals") or {}).get("auc"))]
            for score, per_gen in metrics.get("per_generator", {}).items()
            for gen, entries in per_gen.items()]
    return _table(["score", "background generator", "AUC (all signals)"], rows)


def _separation_table(metrics: dict[str, Any]) -> str:
    rows = [[score, pair.replace("_vs_", " vs "), _num(auc)]
            for score, pairs in metrics.get("generator_separation", {}).items()
            for pair, auc in pairs.items()]
    return _table(["score", "generators", "AUC (0.5 = indistinguishable)"], rows)


def _training_summary(history: History) -> str:
    parts = [f"{len(history.epoch)} epochs"]
    if history.best_epoch > 0:
        parts.append(f"best epoch {history.best_epoch}")
    if history.seconds > 0:
        parts.append(f"{history.seconds:.1f} s")
    if history.events_per_second > 0:
        parts.append(f"{history.events_per_second:,.0f} events/s")
    return f"<p>Training: {html.escape(', '.join(parts))}.</p>"


def _figures(plots_dir: Path) -> str:
    sections = []
    pngs = sorted(plots_dir.rglob("*.png"))
    def order(folder: Path) -> tuple[int, str]:
        name = folder.relative_to(plots_dir).as_posix()
        return (SECTION_ORDER.index(name) if name in SECTION_ORDER else len(SECTION_ORDER), name)

    for folder in sorted({p.parent for p in pngs}, key=order):
        title = folder.relative_to(plots_dir).as_posix() or "plots"
        cells = []
        for png in (p for p in pngs if p.parent == folder):
            rel = png.relative_to(plots_dir).as_posix()
            pdf = png.with_suffix(".pdf").relative_to(plots_dir).as_posix()
            cells.append(f'<figure><a href="{html.escape(pdf)}"><img src="{html.escape(rel)}" '
                         f'alt="{html.escape(rel)}" loading="lazy"></a>'
                         f"<figcaption>{html.escape(rel)}</figcaption></figure>")
        sections.append(f"<h2>{html.escape(title)}</h2><div class=\"grid\">{''.join(cells)}</div>")
    return "".join(sections) or "<p>No plots yet.</p>"


def write_report(plots_dir: Path, title: str, metrics: dict[str, Any] | None,
                 history: History | None) -> Path:
    """Write ``plots_dir/report.html`` from whatever inputs and PNGs exist."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    if history is not None:
        body.append(_training_summary(history))
    if metrics is not None:
        body += ["<h2>Signal efficiency and AUC per score and signal</h2>", _signal_table(metrics),
                 "<h2>AUC per background generator</h2>", _generator_table(metrics),
                 "<h2>Background generator separation</h2>", _separation_table(metrics)]
    else:
        body.append("<p>No metrics yet (run detect, then plot).</p>")
    body.append(_figures(plots_dir))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
    path = plots_dir / REPORT
    atomic_write_text(path, page)
    return path
