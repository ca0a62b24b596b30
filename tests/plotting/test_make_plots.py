"""make_plots and overlay_roc end to end on synthetic train/detect outputs."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import pytest
from plot_inputs import SCORES, write_all, write_history, write_scores

from bead.config import Config
from bead.errors import DataError, MissingExtraError, UsageError
from bead.plotting import make_plots, overlay_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"
LOSS = ["loss/loss_total", "loss/loss_reco", "loss/loss_kl", "loss/lr"]
TEST = [f"{d}/{p}_{s}{suffix}" for s in SCORES
        for d, p, suffix in (("roc", "roc", ""), ("roc", "roc", "_per_generator"),
                             ("sic", "sic", ""), ("scores", "scores", ""))]


def assert_figures(plots_dir: Path, bases: list[str]) -> None:
    for base in bases:
        png, pdf = plots_dir / f"{base}.png", plots_dir / f"{base}.pdf"
        assert png.read_bytes()[:8] == PNG_MAGIC, png
        assert pdf.read_bytes()[:5] == PDF_MAGIC, pdf
        assert png.stat().st_size > 5000 and pdf.stat().st_size > 5000


@pytest.fixture(scope="module")
def plotted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """One full make_plots run shared by the tests that only inspect its output."""
    root = tmp_path_factory.mktemp("project")
    results = write_all(root / "results")
    return results, root / "plots", make_plots(Config(), results, root / "plots")


def test_all_writes_every_plot_and_report(plotted: tuple[Path, Path, list[Path]]) -> None:
    _, plots, written = plotted
    assert_figures(plots, [*LOSS, *TEST, "latent_space/latent_pca"])
    on_disk = {p for p in plots.rglob("*") if p.is_file()}
    assert set(written) == on_disk  # everything returned, nothing else (no temp files)
    assert len(written) == 2 * (len(LOSS) + len(TEST) + 1) + 1
    assert plt.get_fignums() == []  # nothing registered with pyplot: no figure leaks


def test_report_shows_every_png_and_the_metrics(plotted: tuple[Path, Path, list[Path]]) -> None:
    results_dir, plots, _ = plotted
    page = (plots / "report.html").read_text(encoding="utf-8")
    referenced = set(re.findall(r'<img src="([^"]+)"', page))
    assert referenced == {p.relative_to(plots).as_posix() for p in plots.rglob("*.png")}
    metrics = json.loads((results_dir / "metrics.json").read_text())
    for score in SCORES:
        for entry in metrics["per_signal"][score].values():
            assert f"{entry['auc']:.4f}" in page
    assert "0.1234" in page and "0.0456" in page  # eff_s at 1e-2 and 1e-3
    assert "pythia vs vincia" in page and "0.5101" in page  # generator separation
    assert "best epoch 10" in page


def test_train_metrics_needs_only_history(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_history(results)
    plots = tmp_path / "plots"
    written = make_plots(Config(), results, plots, which="train_metrics")
    assert_figures(plots, LOSS)
    assert {p.parent.name for p in written} == {"loss", "plots"}
    assert "No metrics yet" in (plots / "report.html").read_text(encoding="utf-8")


def test_test_metrics_skips_loss_plots_and_draws_tsne(tmp_path: Path) -> None:
    results = write_all(tmp_path / "results", n_bkg=60, n_sig=30)
    (results / "history.json").unlink()
    plots = tmp_path / "plots"
    make_plots(Config(latent_space_plot_style="tsne"), results, plots, which="test_metrics")
    assert_figures(plots, [*TEST, "latent_space/latent_tsne"])
    assert not (plots / "loss").exists()
    assert "Training:" not in (plots / "report.html").read_text(encoding="utf-8")


def test_without_signal_draws_everything_but_roc_and_sic(tmp_path: Path, caplog) -> None:
    results = write_all(tmp_path / "results", n_bkg=60, n_sig=0)
    plots = tmp_path / "plots"
    make_plots(Config(), results, plots)
    assert_figures(plots, [*LOSS, *(f"scores/scores_{s}" for s in SCORES),
                           "latent_space/latent_pca"])
    assert not (plots / "roc").exists() and not (plots / "sic").exists()
    assert "no ROC or SIC curves" in caplog.text


@pytest.mark.parametrize(("which", "present", "missing", "mode"), [
    ("all", [], "history.json", "train"),
    ("train_metrics", [], "history.json", "train"),
    ("test_metrics", [], "scores.h5", "detect"),
    ("test_metrics", ["scores"], "metrics.json", "detect"),
])
def test_missing_input_names_file_and_mode(tmp_path: Path, which: str, present: list[str],
                                           missing: str, mode: str) -> None:
    results = tmp_path / "results"
    results.mkdir()
    if "scores" in present:
        write_scores(results)
    with pytest.raises(DataError, match=rf"{missing}: not found \(run {mode} first\)"):
        make_plots(Config(), results, tmp_path / "plots", which=which)
    assert not (tmp_path / "plots").exists()


def test_unknown_selection_is_a_usage_error(results_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="train_metrics"):
        make_plots(Config(), results_dir, tmp_path / "plots", which="loss")


def test_scores_file_without_latent_is_a_data_error(results_dir: Path, tmp_path: Path) -> None:
    with h5py.File(results_dir / "scores.h5", "a") as f:
        del f["latent"]
    with pytest.raises(DataError, match=r"scores\.h5: missing dataset 'latent'"):
        make_plots(Config(), results_dir, tmp_path / "plots", which="test_metrics")


@pytest.mark.parametrize(("style", "package"), [("umap", "umap-learn"), ("trimap", "trimap")])
def test_umap_and_trimap_need_the_viz_extra(results_dir: Path, tmp_path: Path, style: str,
                                            package: str) -> None:
    if importlib.util.find_spec(style) is not None:
        pytest.skip(f"{style} is installed here")
    config = Config(latent_space_plot_style=style)
    with pytest.raises(MissingExtraError, match=rf"needs '{package}'.*bead-hep\[viz\]"):
        make_plots(config, results_dir, tmp_path / "plots", which="test_metrics")
    assert not (tmp_path / "plots").exists()  # fails before drawing anything


def test_overlay_roc_across_projects(tmp_path: Path) -> None:
    a = write_all(tmp_path / "a" / "results", seed=1)
    b = write_all(tmp_path / "b" / "results", seed=2)
    out = tmp_path / "overlay"
    written = overlay_roc([("proj_a", a), ("proj_b", b)], out, "combined_roc")
    assert sorted(p.name for p in written) == ["combined_roc.pdf", "combined_roc.png"]
    assert_figures(out, ["combined_roc"])


def test_overlay_roc_missing_project_results(tmp_path: Path) -> None:
    a = write_all(tmp_path / "a" / "results")
    empty = tmp_path / "b" / "results"
    with pytest.raises(DataError, match=r"b/results/metrics.json: not found \(run detect"):
        overlay_roc([("a", a), ("b", empty)], tmp_path / "overlay", "combined_roc")
    with pytest.raises(UsageError, match="overlay_roc_projects"):
        overlay_roc([], tmp_path / "overlay", "combined_roc")


def test_scores_file_with_uneven_or_no_scores_is_a_data_error(results_dir: Path,
                                                              tmp_path: Path) -> None:
    with h5py.File(results_dir / "scores.h5", "a") as f:
        f["scores/short"] = f["scores/total"][:10]
    with pytest.raises(DataError, match=r"scores\.h5: short has 10 rows, label has 1200"):
        make_plots(Config(), results_dir, tmp_path / "plots", which="test_metrics")
    with h5py.File(results_dir / "scores.h5", "a") as f:
        del f["scores"]
        f.create_group("scores")
    with pytest.raises(DataError, match=r"scores\.h5: group 'scores' is empty"):
        make_plots(Config(), results_dir, tmp_path / "plots", which="test_metrics")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda h: h.pop("val"), r"history\.json: missing key 'val'"),
    (lambda h: h["train"]["kl"].pop(), r"history\.json: train\.kl has 11 values for 12 epochs"),
    (lambda h: h.update(lr="fast"), r"history\.json: malformed history"),
])
def test_malformed_history_is_a_data_error(tmp_path: Path, edit, message: str) -> None:
    path = write_history(tmp_path / "results")
    history = json.loads(path.read_text())
    edit(history)
    path.write_text(json.dumps(history))
    with pytest.raises(DataError, match=message):
        make_plots(Config(), path.parent, tmp_path / "plots", which="train_metrics")
    assert not (tmp_path / "plots").exists()
