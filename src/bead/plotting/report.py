"""``plots/report.html``: one self-contained page per project that answers the question first.

Order (issue 11): the answer (the primary score's AUC and eps_s at eps_b = 1e-2 / 1e-3 per
signal beside the best single observable's, a verdict on generator independence and, when
metrics.json has one, on mass sculpting and the enrichment test, and the ROC figure comparing
the scores); then the configuration; then the figures by family and the last diagnostics run;
the full tables last, collapsed. Numbers carry their bootstrap uncertainty (±) when detect
computed one. Every image is
embedded as a base64 PNG and the page loads no file, font or script, so it can be mailed or
archived alone.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bead.config import Config
from bead.diagnostics_summary import DIAGNOSTICS_DIR, read_summary
from bead.evaluation.metrics import ALL_SIGNALS
from bead.evaluation.scores import ScoreTable
from bead.fileio import atomic_write_text
from bead.losses.catalog import LOSSES, loss_entry
from bead.models.catalog import MODELS
from bead.plotting.inputs import observables, primary_score, summary_entry
from bead.training.history import History

REPORT = "report.html"
HEADLINE_POINTS = ("1e-02", "1e-03")
TABLE_POINTS = ("1e-01", "1e-02", "1e-03", "1e-04")
HEADLINE_FIGURE = "roc/roc_all_scores.png"
SECTIONS = {"loss": "Training", "roc": "ROC curves", "sic": "Significance improvement",
            "scores": "Score distributions", "latent_space": "Latent space",
            "sculpting": "Mass sculpting", "overlay_roc": "Across projects"}
# |AUC - 0.5| between two background generators below which a score "does not tell them apart"
INDEPENDENT, SLIGHT = 0.05, 0.10
# JSD of a cut over its statistical reference (random selections of the same efficiency) up to
# which the cut "does not sculpt", and up to which it sculpts "mildly"
UNSCULPTED, MILDLY_SCULPTED = 2.0, 5.0
KNOWN_SECTIONS = {"scores", "signals", "generators", "per_signal", "per_generator",
                  "generator_separation", "provenance", "primary_score", "observables",
                  "warnings", "bootstrap", "sculpting", "enrichment"}
OPERATOR_COLUMNS = {"self_cpu_ms": "self CPU [ms]", "self_device_ms": "self GPU [ms]",
                    "self_cpu_memory_mb": "self CPU memory [MB]"}
NA_TITLE = "not resolvable: too few background events for this working point"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  margin: 0; color: #1d2330; background: #fff; font-size: 15px; }
main { max-width: 1240px; margin: 0 auto; padding: 14px 20px 40px; }
h1 { font-size: 1.45em; margin: 0 0 2px; } h2 { font-size: 1.2em; margin: 1.4em 0 .4em;
  border-bottom: 1px solid #ccd; padding-bottom: 2px; }
.sub { color: #555; margin: 0 0 10px; font-size: .9em; }
#answer { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 460px); gap: 16px;
  background: #eaf2fb; border: 1px solid #b9cde6; border-radius: 6px; padding: 12px 16px; }
#answer h2 { margin-top: 0; border: 0; }
#answer table { font-size: .9em; } #answer td, #answer th { overflow-wrap: anywhere; }
.lead { font-size: 1.15em; margin: 0 0 8px; }
#headline-auc { font-size: 1.5em; font-weight: 700; color: #0b3d91; }
.verdict { margin: 6px 0; } .problem { color: #8a1c1c; font-weight: 600; }
.warnings { color: #7a4b00; margin: 6px 0; padding-left: 1.2em; }
.lowstats { color: #a04000; font-weight: 600; white-space: nowrap; }
table { border-collapse: collapse; margin: 4px 0 8px; font-size: .92em; background: #fff; }
th, td { border: 1px solid #c8ccd4; padding: 3px 8px; text-align: right; }
th { background: #f0f2f5; } td.name { text-align: left; } td.na { color: #777; }
.note { font-size: .85em; color: #555; margin: 2px 0 8px; }
#answer img { width: 100%; border: 1px solid #c8ccd4; background: #fff; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
figure { margin: 0; } .grid img { width: 100%; border: 1px solid #dde; }
figcaption { font-size: .8em; color: #555; overflow-wrap: anywhere; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
"""


@dataclass
class ReportInputs:
    """What the report shows; ``metrics`` and ``table`` only when they are current, and
    ``problem`` (stale or missing results) otherwise."""

    title: str
    config: Config
    history: History | None = None
    metrics: dict[str, Any] | None = None
    table: ScoreTable | None = None
    problem: str | None = None


class _Cells:
    """Formats table cells and remembers whether a null ("—") was shown, for the footnote."""

    def __init__(self) -> None:
        self.null_shown = False

    def num(self, value: Any, fmt: str = ".3f", err: Any = None) -> str:
        """A number, with ``± err`` (its bootstrap uncertainty) when one is given."""
        if value is None:
            self.null_shown = True
            return f'<td class="na" title="{NA_TITLE}">—</td>'
        error = f" ± {format(float(err), fmt)}" if err is not None else ""
        return f"<td>{format(float(value), fmt)}{error}</td>"

    def footnote(self) -> str:
        if not self.null_shown:
            return ""
        self.null_shown = False
        return ('<p class="note">— : not resolvable. The background sample has fewer than '
                "1/ε<sub>b</sub> effective events, so this working point cannot be measured "
                "(null in metrics.json).</p>")


def _wp(point: str) -> str:
    """'1e-02' as HTML: ε_s at ε_b = 10^-2."""
    return f"ε<sub>s</sub> at ε<sub>b</sub>&nbsp;=&nbsp;10<sup>{int(point.split('e')[1]):d}</sup>"


def _name(text: str, extra: str = "") -> str:
    return f'<td class="name">{html.escape(text)}{extra}</td>'


def _low_stats(entry: dict[str, Any]) -> str:
    if not entry.get("low_stats"):
        return ""
    return (' <span class="lowstats" title="counts below the documented low-statistics '
            'thresholds">⚠ low stats</span>')


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(f'<tr>{r}</tr>' for r in rows)}</table>"


def _signals(metrics: dict[str, Any]) -> list[str]:
    """The signal keys to show: each sample, and all signals together only when several."""
    signals = list(metrics.get("signals") or [])
    return [*signals, ALL_SIGNALS] if len(signals) > 1 else signals


def _signal_name(key: str) -> str:
    return "all signals" if key == ALL_SIGNALS else key


def _eff(entry: dict[str, Any], point: str, key: str = "eff_s") -> Any:
    return (entry.get(key) or {}).get(point)


def _auc_eff_cells(entry: dict[str, Any], points: tuple[str, ...], cells: _Cells,
                   fmt: str = ".3f") -> str:
    """AUC and eps_s at ``points``, each with its bootstrap uncertainty where there is one."""
    return (cells.num(entry.get("auc"), fmt, entry.get("auc_err"))
            + "".join(cells.num(_eff(entry, p), fmt, _eff(entry, p, "eff_s_err"))
                      for p in points))


def bootstrap_note(metrics: dict[str, Any]) -> str:
    """What ± means on this page (empty when detect computed no uncertainty)."""
    section = metrics.get("bootstrap") or {}
    if not section.get("resamples"):
        return ""
    return (f'<p class="note">± : standard deviation over {int(section["resamples"])} '
            f"bootstrap resamples of the test events (seed {section.get('seed', 0)}, event "
            "weights kept).</p>")


def best_observable(metrics: dict[str, Any], signal: str) -> str | None:
    """The single observable with the highest AUC for ``signal``, if any was measured."""
    names = observables(metrics, (metrics.get("per_signal") or {}).keys())
    aucs = {n: summary_entry(metrics, n, signal).get("auc") for n in names}
    aucs = {n: a for n, a in aucs.items() if a is not None}
    return max(aucs, key=aucs.__getitem__) if aucs else None


def independence_verdict(metrics: dict[str, Any], score: str) -> str:
    """One line: the largest |AUC - 0.5| of ``score`` between two background generators."""
    pairs = (metrics.get("generator_separation") or {}).get(score) or {}
    values = {p: float(a) for p, a in pairs.items() if a is not None}
    if not values:
        return "Generator independence: not tested (fewer than two background generators)."
    pair, auc = max(values.items(), key=lambda item: abs(item[1] - 0.5))
    deviation = abs(auc - 0.5)
    if deviation < INDEPENDENT:
        verdict = "the score does not tell the background generators apart"
    elif deviation < SLIGHT:
        verdict = "the score separates the background generators slightly"
    else:
        verdict = "the score separates the background generators: it depends on the generator"
    return (f"Generator independence ({score}): max |AUC − 0.5| = {deviation:.3f} over "
            f"{len(values)} generator pair{'s' if len(values) > 1 else ''} (largest: "
            f"{pair.replace('_vs_', ' vs ')}, AUC {auc:.3f}) — {verdict}.")


def _jsd_ratio(cut: dict[str, Any]) -> float | None:
    """A cut's JSD over the JSD of random selections of the same efficiency (1 = no effect)."""
    if cut.get("jsd") is None:
        return None
    return float(cut["jsd"]) / max(float(cut.get("jsd_stat") or 0.0), 1e-12)


def _sculpting_cuts(metrics: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(mass, working point, cut entry) of every cut metrics.json's sculpting section measured
    on enough passing events."""
    masses = ((metrics.get("sculpting") or {}).get("observables") or {})
    return [(mass, point, cut) for mass, entry in masses.items()
            for point, cut in (entry.get("cuts") or {}).items()
            if cut.get("jsd") is not None and not cut.get("low_stats")]


def sculpting_verdict(metrics: dict[str, Any]) -> str | None:
    """One line on mass sculpting from metrics.json's ``sculpting`` section (None without one):
    the largest JSD before/after a cut, against the JSD that random selections of the same
    efficiency give (``jsd_stat``), and the largest distance correlation."""
    section = metrics.get("sculpting")
    if not isinstance(section, dict):
        return None
    masses = section.get("observables") or {}
    if not masses:
        return ("Mass sculpting: not measured (it needs the background's j1_mass, mjj and mt "
                "in the scores file).")
    score = section.get("score", "?")
    dcors = [e["distance_correlation"] for e in masses.values()
             if e.get("distance_correlation") is not None]
    dcor = f"; distance correlation up to {max(dcors):.3f}" if dcors else ""
    cuts = _sculpting_cuts(metrics)
    if not cuts:
        return (f"Mass sculpting ({score}): too few background events pass the cuts to "
                f"measure it{dcor}.")
    mass, point, cut = max(cuts, key=lambda c: _jsd_ratio(c[2]) or 0.0)
    ratio = _jsd_ratio(cut) or 0.0
    if ratio <= UNSCULPTED:
        verdict = "no sculpting beyond the statistical fluctuation of the sample"
    elif ratio <= MILDLY_SCULPTED:
        verdict = "mild sculpting: look at the sculpting figures"
    else:
        verdict = "the cut sculpts the mass spectra: a bump hunt on them would see the cut"
    return (f"Mass sculpting (cut on {score}): largest JSD {cut['jsd']:.4f} bits ({mass} at "
            f"ε_b = {point}), {ratio:.1f}× that of random selections ({cut['jsd_stat']:.4f})"
            f"{dcor} — {verdict}.")


def enrichment_verdict(metrics: dict[str, Any], score: str) -> list[str]:
    """One line per held-out generator of the enrichment test (none when it did not run)."""
    section = metrics.get("enrichment")
    if not isinstance(section, dict):
        return []
    seen = "+".join(section.get("seen_generators") or [])
    lines = []
    for held, entry in ((section.get("per_score") or {}).get(score) or {}).items():
        cut = (entry.get("eff_b") or {}).get(HEADLINE_POINTS[0])
        if cut is None:
            lines.append(f"Enrichment test ({score}): {held} held out of training; too few "
                         f"{seen} events to place the ε_b = 1e-2 cut.")
            continue
        low = " (low statistics)" if cut.get("low_stats") else ""
        lines.append(f"Enrichment test ({score}): the cut keeping ε_b = 1e-2 of {seen} keeps "
                     f"{100 * cut['eff_b_holdout']:.2f} ± {100 * cut['eff_b_holdout_err']:.2f} % "
                     f"of {held}, never trained on: {cut['ratio']:.2f}× nominal{low}.")
    for held in section.get("missing") or []:
        lines.append(f"Enrichment test: {held} was held out but has no bkg_test events.")
    return lines


def _headline_table(metrics: dict[str, Any], primary: str, cells: _Cells) -> str:
    any_observable = any(best_observable(metrics, s) for s in _signals(metrics))
    header = ["signal", f"AUC ({html.escape(primary)})",
              *(_wp(p) for p in HEADLINE_POINTS)]
    if any_observable:
        header += ["best single observable", "AUC", *(_wp(p) for p in HEADLINE_POINTS)]
    rows = []
    for signal in _signals(metrics):
        entry = summary_entry(metrics, primary, signal)
        row = (_name(_signal_name(signal), _low_stats(entry))
               + _auc_eff_cells(entry, HEADLINE_POINTS, cells))
        if any_observable:
            best = best_observable(metrics, signal)
            obs = summary_entry(metrics, best, signal) if best else {}
            row += (_name(best or "—", _low_stats(obs))
                    + _auc_eff_cells(obs, HEADLINE_POINTS, cells))
        rows.append(row)
    return _table(header, rows)


def _answer(inputs: ReportInputs, plots_dir: Path) -> str:
    """The first screen: does the model find the signal, and is it generator-independent?"""
    metrics, cells = inputs.metrics, _Cells()
    parts = ["<h2>The answer</h2>"]
    if inputs.problem:
        parts.append(f'<p class="problem">Evaluation results not shown: '
                     f"{html.escape(inputs.problem)}.</p>")
    if metrics is None:
        if not inputs.problem:
            parts.append('<p class="problem">No evaluation results yet: run detect, then '
                         "plot.</p>")
        return f'<section id="answer"><div>{"".join(parts)}</div><div></div></section>'
    primary = primary_score(metrics, (metrics.get("per_signal") or {}).keys()
                            or metrics.get("scores") or [])
    headline_key = ALL_SIGNALS if len(metrics.get("signals") or []) != 1 else metrics["signals"][0]
    auc = summary_entry(metrics, primary, headline_key).get("auc")
    if metrics.get("signals"):
        where = "all signals" if headline_key == ALL_SIGNALS else html.escape(headline_key)
        auc_text = "—" if auc is None else f"{auc:.3f}"
        parts.append(f'<p class="lead">Primary score <b>{html.escape(primary)}</b>: AUC '
                     f'<span id="headline-auc">{auc_text}</span> ({where}).</p>')
        parts += [_headline_table(metrics, primary, cells), cells.footnote(),
                  bootstrap_note(metrics)]
    else:
        parts.append('<p class="lead" id="headline-auc">No signal sample: only the generator '
                     "separation was measured.</p>")
    parts.append(f'<p class="verdict">{html.escape(independence_verdict(metrics, primary))}</p>')
    verdicts = [sculpting_verdict(metrics), *enrichment_verdict(metrics, primary)]
    parts += [f'<p class="verdict">{html.escape(v)}</p>' for v in verdicts if v]
    warnings = [str(w) for w in metrics.get("warnings") or []]
    if warnings:
        parts.append('<ul class="warnings">'
                     + "".join(f"<li>⚠ {html.escape(w)}</li>" for w in warnings) + "</ul>")
    figure = plots_dir / HEADLINE_FIGURE
    image = _img(figure, "ROC curves of every score, all signals") if figure.is_file() else ""
    return f'<section id="answer"><div>{"".join(parts)}</div><div>{image}</div></section>'


def _config_rows(inputs: ReportInputs) -> list[tuple[str, str]]:
    config, history = inputs.config, inputs.history
    provenance = (inputs.metrics or {}).get("provenance") or {}
    spec = provenance.get("model_spec") or {}
    model = str(spec.get("model_name", config.model_name))
    loss = str(spec.get("loss_function", config.loss_function))
    beta = spec.get("reg_param", config.reg_param)
    rows = [("model", model),
            ("loss", loss + (f" (β = {beta:g})" if loss in LOSSES
                             and "reg_param" in loss_entry(loss).weight_keys else "")),
            ("input level", f"{spec.get('input_level', config.input_level)}, features "
                            f"{config.input_features}, normalizations {config.normalizations}"),
            ("sizes", f"{config.num_jets} jets × {config.num_constits} constituents"
                      + ("" if model in MODELS and MODELS[model].family == "density" else
                         f"; latent {spec.get('latent_dim', config.latent_space_size)}")
                      + (f"; model input {spec['n_slots']} × {spec['n_features']}"
                         if "n_slots" in spec and "n_features" in spec else ""))]
    if history is not None:
        rows.append(("training", f"{len(history.epoch)} epochs run (of {config.epochs}), best "
                                 f"epoch {history.best_epoch or '—'}, {history.seconds:.1f} s, "
                                 f"{history.events_per_second:,.0f} events/s; batch "
                                 f"{config.batch_size}, {config.optimizer}, lr {config.lr:g}"))
    if inputs.table is not None:
        table = inputs.table
        counts = [f"{g.name} {int(g.mask.sum()):,}" for g in table.background_groups()]
        counts += [f"{g.name} {int(g.mask.sum()):,}" for g in table.signal_groups()]
        rows.append(("test events", ", ".join(counts)))
    if provenance:
        prepared = str(provenance.get("scalers_sha256", "—"))[:12]
        key = provenance.get("prepared_key") or provenance.get("prepared_folder")
        rows.append(("prepared data", f"scalers.json sha256 {prepared}…"
                                      + (f" ({key})" if key else "")))
        rows.append(("scored model", f"best.pt sha256 {str(provenance.get('model_sha256'))[:12]}…"))
    return rows


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _figures(plots_dir: Path) -> str:
    sections = []
    pngs = sorted(p for p in plots_dir.rglob("*.png")
                  if p.relative_to(plots_dir).as_posix() != HEADLINE_FIGURE)
    folders = sorted({p.parent.relative_to(plots_dir).as_posix() for p in pngs},
                     key=lambda f: (list(SECTIONS).index(f) if f in SECTIONS else len(SECTIONS), f))
    for folder in folders:
        cells = []
        for png in (p for p in pngs if p.parent.relative_to(plots_dir).as_posix() == folder):
            rel = png.relative_to(plots_dir).as_posix()
            cells.append(f"<figure>{_img(png, rel)}<figcaption>{html.escape(rel)} (PDF beside "
                         "it)</figcaption></figure>")
        title = SECTIONS.get(folder, folder or "plots")
        sections.append(f'<section class="figures"><h2>{html.escape(title)}</h2>'
                        f'<div class="grid">{"".join(cells)}</div></section>')
    return "".join(sections) or "<p>No figures yet.</p>"


def _summary_rows(metrics: dict[str, Any], cells: _Cells) -> list[str]:
    rows = []
    for score, per_signal in (metrics.get("per_signal") or {}).items():
        for signal in _signals(metrics):
            entry = per_signal.get(signal) if isinstance(per_signal, dict) else None
            if entry is None:
                continue
            rows.append(_name(score) + _name(_signal_name(signal), _low_stats(entry))
                        + _auc_eff_cells(entry, TABLE_POINTS, cells, ".4f")
                        + cells.num(entry.get("max_sic"), ".2f"))
    return rows


def _generator_rows(metrics: dict[str, Any], cells: _Cells) -> list[str]:
    rows = []
    for score, per_gen in (metrics.get("per_generator") or {}).items():
        for generator, entries in (per_gen or {}).items():
            rows.append(_name(score) + _name(generator) + "".join(
                cells.num((entries.get(s) or {}).get("auc"), ".4f") for s in _signals(metrics)))
    return rows


def _sculpting_rows(metrics: dict[str, Any], cells: _Cells) -> list[str]:
    masses = ((metrics.get("sculpting") or {}).get("observables") or {})
    rows = []
    for mass, entry in masses.items():
        for point, cut in (entry.get("cuts") or {}).items():
            rows.append(_name(mass) + _name(point, _low_stats(cut))
                        + cells.num(cut.get("eff_b"), ".4f")
                        + cells.num(cut.get("n_pass_eff"), ".0f")
                        + cells.num(cut.get("jsd"), ".4f") + cells.num(cut.get("jsd_stat"), ".4f")
                        + cells.num(_jsd_ratio(cut), ".1f")
                        + cells.num(entry.get("distance_correlation"), ".3f"))
    return rows


def _enrichment_rows(metrics: dict[str, Any], cells: _Cells) -> list[str]:
    section = metrics.get("enrichment") or {}
    rows = []
    for score, per_held in (section.get("per_score") or {}).items():
        for held, entry in (per_held or {}).items():
            row = _name(score) + _name(held) + cells.num(entry.get("auc_vs_seen"), ".4f")
            for point in HEADLINE_POINTS:
                cut = (entry.get("eff_b") or {}).get(point) or {}
                row += (cells.num(cut.get("eff_b_holdout"), ".4f", cut.get("eff_b_holdout_err"))
                        + cells.num(cut.get("ratio"), ".2f"))
            rows.append(row)
    return rows


def _flat_rows(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Leaves of a nested section (sculpting, bootstrap, ...) as (path, value) rows."""
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flat_rows(v, f"{path} / {k}"
                                                                     if path else str(k))]
    if isinstance(value, list) and len(value) > 8:
        return [(path, f"[{len(value)} values]")]
    if isinstance(value, float):
        return [(path, f"{value:.4g}")]
    return [(path, "—" if value is None else str(value))]


def _tables(metrics: dict[str, Any]) -> str:
    cells = _Cells()
    signals = [_signal_name(s) for s in _signals(metrics)]
    blocks = [
        ("Signal efficiency and AUC per score and signal",
         _table(["score", "signal", "AUC", *(_wp(p) for p in TABLE_POINTS), "max SIC"],
                _summary_rows(metrics, cells))),
        ("AUC per background generator",
         _table(["score", "background generator", *(f"AUC ({html.escape(s)})" for s in signals)],
                _generator_rows(metrics, cells))),
        ("Background generator separation",
         _table(["score", "generators", "AUC (0.5 = indistinguishable)"],
                [_name(score) + _name(pair.replace("_vs_", " vs ")) + cells.num(auc, ".4f")
                 for score, pairs in (metrics.get("generator_separation") or {}).items()
                 for pair, auc in (pairs or {}).items()])),
    ]
    if (metrics.get("sculpting") or {}).get("observables"):
        score = str(metrics["sculpting"].get("score", ""))
        blocks.append((f"Mass sculpting of the background by a cut on {score}", _table(
            ["mass", "cut at ε<sub>b</sub>", "ε<sub>b</sub> kept", "events passing (eff.)",
             "JSD [bits]", "JSD of random selections", "ratio", "distance correlation"],
            _sculpting_rows(metrics, cells))))
    if isinstance(metrics.get("enrichment"), dict):
        seen = "+".join(metrics["enrichment"].get("seen_generators") or [])
        blocks.append((f"Enrichment test: held-out background at cuts placed on {seen}", _table(
            ["score", "held out", "AUC vs seen",
             *(h for p in HEADLINE_POINTS
               for h in (f"ε<sub>b</sub> held out at {p}", "ratio to nominal"))],
            _enrichment_rows(metrics, cells))))
    for key in [k for k in metrics if k not in KNOWN_SECTIONS]:
        rows = [_name(p) + f"<td>{html.escape(v)}</td>" for p, v in _flat_rows(metrics[key])]
        blocks.append((key, _table(["entry", "value"], rows)))
    provenance = metrics.get("provenance")
    if provenance:
        rows = [_name(p) + f'<td class="name">{html.escape(v)}</td>'
                for p, v in _flat_rows(provenance)]
        blocks.append(("provenance (what these results were computed from)",
                       _table(["entry", "value"], rows)))
    out = []
    for title, table in blocks:
        out.append(f"<details><summary>{html.escape(title)}</summary>{table}"
                   f"{cells.footnote()}</details>")
    return f'<section id="tables"><h2>Full tables</h2>{"".join(out)}</section>'


def _diagnostics(plots_dir: Path) -> str:
    """The last ``-m diagnostics`` run of the project (output/diagnostics), when there is one."""
    out_dir = plots_dir.parent / DIAGNOSTICS_DIR
    summary = read_summary(out_dir)
    if summary is None:
        return ""
    cells = _Cells()
    speed, memory = summary.get("throughput") or {}, summary.get("peak_memory") or {}
    gpu_mb = memory.get("gpu_allocated_mb")
    facts = [("device", f"{summary.get('device')}, torch {summary.get('torch')}, "
                        f"{summary.get('cpu_threads')} CPU threads"),
             ("model", f"{summary.get('model_name')} with {summary.get('loss_function')}, "
                       f"{summary.get('parameters', 0):,} parameters, batch "
                       f"{summary.get('batch_size')}"),
             ("throughput", f"training {speed.get('train_events_per_second') or 0:,.0f} events/s,"
                            f" scoring {speed.get('score_events_per_second') or 0:,.0f} events/s"),
             ("peak memory", f"{memory.get('rss_mb') or 0:,.0f} MB resident"
                             + (f", {gpu_mb:,.0f} MB GPU" if gpu_mb is not None else ""))]
    phases = [_name(p) + cells.num(v.get("per_batch_ms"), ".2f")
              + cells.num(100 * v["fraction"] if v.get("fraction") is not None else None, ".1f")
              for p, v in (summary.get("phases") or {}).items()]
    operators = [_name(str(op.get("name", ""))) + cells.num(op.get("calls"), ".0f")
                 + "".join(cells.num(op.get(k), ".2f") for k in OPERATOR_COLUMNS)
                 for op in summary.get("top_operators") or []]
    images = "".join(f"<figure>{_img(out_dir / name, name)}<figcaption>"
                     f"{html.escape(DIAGNOSTICS_DIR + '/' + name)}</figcaption></figure>"
                     for name in (summary.get("files") or {}).get("plots") or []
                     if name.endswith(".png") and (out_dir / name).is_file())
    return ('<section id="diagnostics"><h2>Diagnostics (last <code>-m diagnostics</code> run)'
            f"</h2>{_table(['', 'value'], [_name(k) + _name(v) for k, v in facts])}"
            f"{_table(['phase', 'ms per batch', '% of the timed steps'], phases)}"
            f'<div class="grid">{images}</div>'
            f"<details><summary>top operators by self time (trace.json opens in Perfetto)"
            f"</summary>{_table(['operator', 'calls', *OPERATOR_COLUMNS.values()], operators)}"
            "</details>"
            "</section>")


def render_report(plots_dir: Path, inputs: ReportInputs) -> str:
    """The page as a string (see the module docstring for its order)."""
    project = plots_dir.parent.parent.name if plots_dir.parent.name == "output" else ""
    sub = f"project {project}: " if project else ""
    sub += f"{inputs.config.model_name} with {inputs.config.loss_function}"
    config = [_name(k) + f'<td class="name">{html.escape(v)}</td>'
              for k, v in _config_rows(inputs)]
    body = [f"<header><h1>{html.escape(inputs.title)}</h1>"
            f'<p class="sub">{html.escape(sub)}</p></header>',
            _answer(inputs, plots_dir),
            '<section id="config"><h2>Configuration</h2>'
            f"{_table(['', 'value'], config)}</section>",
            _figures(plots_dir), _diagnostics(plots_dir)]
    if inputs.metrics is not None:
        body.append(_tables(inputs.metrics))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(inputs.title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def write_report(plots_dir: Path, inputs: ReportInputs) -> Path:
    """Write ``plots_dir/report.html`` from the inputs and the PNGs under ``plots_dir``."""
    path = Path(plots_dir) / REPORT
    atomic_write_text(path, render_report(Path(plots_dir), inputs))
    return path
