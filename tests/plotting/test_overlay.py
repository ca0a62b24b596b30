"""The ROC overlay across projects: the current project always drawn, each project's primary
(or configured) score rather than its best one, a JSON summary, stale or missing projects named;
and `bead -m plot -o overlay_roc` end to end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from plot_inputs import SMALL_SIGNALS, write_all, write_models

from bead.config import make_config
from bead.config.toml import save_config
from bead.errors import DataError
from bead.pipeline import RunOptions, run_mode
from bead.plotting import OverlaySource, overlay_roc
from bead.project import ProjectPaths


def project(root: Path, name: str, seed: int, **metrics) -> OverlaySource:
    results = write_all(root / name / "results", n_bkg=80, n_sig=40, seed=seed,
                        signals=SMALL_SIGNALS, metrics=metrics)
    return OverlaySource(name, results, root / name / "models")


def test_each_project_draws_its_primary_score_and_the_summary_says_so(tmp_path: Path) -> None:
    a = project(tmp_path, "a", 1, primary_score="kl")
    b = project(tmp_path, "b", 2)
    written = overlay_roc([a, b], tmp_path / "overlay", "combined_roc")
    assert sorted(p.name for p in written) == ["combined_roc.json", "combined_roc.pdf",
                                               "combined_roc.png"]
    summary = json.loads((tmp_path / "overlay" / "combined_roc.json").read_text())
    entries = {e["project"]: e for e in summary["projects"]}
    assert [e["project"] for e in summary["projects"]] == ["a", "b"]
    assert (entries["a"]["score"], entries["a"]["score_choice"]) == ("kl", "primary_score")
    assert entries["b"]["score"] == "total"
    metrics = json.loads((a.results_dir / "metrics.json").read_text())
    recorded = metrics["per_signal"]["kl"]["all_signals"]
    best = max(metrics["scores"], key=lambda s: metrics["per_signal"][s]["all_signals"]["auc"])
    assert best != "kl"  # choosing the best AUC on the shown sample would have drawn another
    assert entries["a"]["auc"] == pytest.approx(recorded["auc"])
    assert entries["a"]["eff_s"] == {"1e-02": pytest.approx(recorded["eff_s"]["1e-02"]),
                                     "1e-03": recorded["eff_s"]["1e-03"]}
    assert len(entries["a"]["curve"]["eps_b"]) == len(entries["a"]["curve"]["eps_s"]) == 200


def test_the_configured_score_is_drawn_for_every_project(tmp_path: Path) -> None:
    a, b = project(tmp_path, "a", 1), project(tmp_path, "b", 2)
    overlay_roc([a, b], tmp_path / "o", "roc", score="reco")
    summary = json.loads((tmp_path / "o" / "roc.json").read_text())
    assert {e["score"] for e in summary["projects"]} == {"reco"}
    with pytest.raises(DataError, match=r"overlay_roc_score = 'nope': project a has no such"):
        overlay_roc([a, b], tmp_path / "o", "roc", score="nope")


def test_missing_or_stale_projects_are_named_in_one_line(tmp_path: Path) -> None:
    a = project(tmp_path, "a", 1)
    missing = OverlaySource("ws/second", tmp_path / "second" / "results",
                            tmp_path / "second" / "models")
    with pytest.raises(DataError, match=r"^overlay_roc_projects: ws/second: no .*scores\.h5 "
                                        r"\(run detect for that project first\)$"):
        overlay_roc([a, missing], tmp_path / "o", "roc")
    b = project(tmp_path, "b", 2)
    write_models(b.models_dir, version="retrained")
    with pytest.raises(DataError, match=r"overlay_roc_projects: b: .*scored another best\.pt"):
        overlay_roc([a, b], tmp_path / "o", "roc")
    assert not (tmp_path / "o").exists()


def test_plot_overlay_mode_draws_this_project_first_and_says_where(tmp_path: Path,
                                                                    caplog) -> None:
    # Issue 7: with overlay_roc_projects = ["second"] the current project used to vanish.
    for name, seed in (("first", 1), ("second", 2)):
        paths = ProjectPaths(tmp_path, "ws", name)
        write_all(paths.results_dir, n_bkg=80, n_sig=40, seed=seed, signals=SMALL_SIGNALS)
        save_config(make_config({"overlay_roc_projects": ["second"]}), paths.config_file)
    with caplog.at_level(logging.INFO):
        result = run_mode(RunOptions(mode="plot", project=("ws", "first"),
                                     options="overlay_roc", workspaces=str(tmp_path)))
    out = ProjectPaths(tmp_path, "ws", "first").plots_dir / "overlay_roc"
    assert {p.name for p in result.plots} == {"combined_roc.pdf", "combined_roc.png",
                                              "combined_roc.json"}
    summary = json.loads((out / "combined_roc.json").read_text())
    assert [e["project"] for e in summary["projects"]] == ["ws/first", "second"]
    assert f"{out / 'combined_roc'} (PDF, PNG) and its summary {out / 'combined_roc.json'}" \
        in caplog.text
    assert not (out.parent / "report.html").exists()  # -o overlay_roc draws only the overlay
