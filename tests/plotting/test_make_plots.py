"""make_plots end to end on synthetic train/detect outputs: every figure, what is drawn when
results are missing or stale, and the same figures from one process or several."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import pytest
from plot_inputs import SCORES, SMALL_SIGNALS, write_all, write_history, write_models, write_scores

from bead.config import Config
from bead.errors import DataError, MissingExtraError, UsageError
from bead.plotting import make_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"
LOSS = ["loss/loss_total", "loss/loss_reco", "loss/loss_kl", "loss/lr"]
PER_SCORE = [f"{d}/{p}_{s}{suffix}" for s in SCORES
             for d, p, suffix in (("roc", "roc", ""), ("roc", "roc", "_per_generator"),
                                  ("sic", "sic", ""), ("scores", "scores", ""))]
LATENT = ["latent_space/z0_pca", "latent_space/zk_pca", "latent_space/uncertainty"]
TEST = [*PER_SCORE, "roc/roc_all_scores", *LATENT]
MISSING = "run detect for the ROC, SIC, score and latent plots"
SMALL = {"scores": ["total"], "signals": SMALL_SIGNALS}  # fewer figures, faster tests


def assert_figures(plots_dir: Path, bases: list[str]) -> None:
    for base in bases:
        png, pdf = plots_dir / f"{base}.png", plots_dir / f"{base}.pdf"
        assert png.read_bytes()[:8] == PNG_MAGIC, png
        assert pdf.read_bytes()[:5] == PDF_MAGIC, pdf
        assert png.stat().st_size > 5000 and pdf.stat().st_size > 5000


def figures(plots_dir: Path) -> set[str]:
    return {p.relative_to(plots_dir).with_suffix("").as_posix()
            for p in plots_dir.rglob("*.png")}


@pytest.fixture(scope="module")
def plotted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """One full make_plots run (two workers) shared by the tests that only inspect it."""
    root = tmp_path_factory.mktemp("project")
    results = write_all(root / "results")
    return results, root / "plots", make_plots(Config(parallel_workers=2), results,
                                               root / "plots")


def test_all_writes_every_plot_and_report(plotted: tuple[Path, Path, list[Path]]) -> None:
    _, plots, written = plotted
    assert_figures(plots, [*LOSS, *TEST])
    assert figures(plots) == {*LOSS, *TEST}
    on_disk = {p for p in plots.rglob("*") if p.is_file()}
    assert set(written) == on_disk  # everything returned, nothing else (no temp files)
    assert len(written) == 2 * (len(LOSS) + len(TEST)) + 1
    assert plt.get_fignums() == []  # nothing registered with pyplot: no figure leaks


def test_one_worker_draws_the_same_figures(plotted: tuple[Path, Path, list[Path]],
                                           tmp_path: Path) -> None:
    results, plots, _ = plotted
    serial = tmp_path / "plots"
    make_plots(Config(parallel_workers=1), results, serial)
    assert figures(serial) == figures(plots)
    for name in ("roc/roc_total", "latent_space/zk_pca", "loss/lr"):
        assert (serial / f"{name}.png").read_bytes() == (plots / f"{name}.png").read_bytes()


def test_train_metrics_needs_only_history(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_history(results)
    plots = tmp_path / "plots"
    written = make_plots(Config(), results, plots, which="train_metrics")
    assert_figures(plots, LOSS)
    assert {p.parent.name for p in written} == {"loss", "plots"}
    assert MISSING in (plots / "report.html").read_text(encoding="utf-8")


def test_plot_without_detect_draws_the_training_plots_and_names_what_is_missing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    results = tmp_path / "results"
    write_history(results)
    write_models(tmp_path / "models")
    with caplog.at_level(logging.WARNING):
        make_plots(Config(), results, tmp_path / "plots")
    assert figures(tmp_path / "plots") == set(LOSS)
    assert f"no {results / 'scores.h5'}: {MISSING}; drew the training plots only" in caplog.text


def test_test_metrics_skips_loss_plots_and_draws_tsne(tmp_path: Path) -> None:
    results = write_all(tmp_path / "results", n_bkg=60, n_sig=30, views=False, **SMALL)
    (results / "history.json").unlink()
    plots = tmp_path / "plots"
    make_plots(Config(latent_space_plot_style="tsne"), results, plots, which="test_metrics")
    assert_figures(plots, ["roc/roc_total", "latent_space/latent_tsne"])
    assert not (plots / "loss").exists()
    assert "epochs run" not in (plots / "report.html").read_text(encoding="utf-8")


def test_without_signal_draws_everything_but_roc_and_sic(tmp_path: Path, caplog) -> None:
    results = write_all(tmp_path / "results", n_bkg=60, n_sig=0)
    plots = tmp_path / "plots"
    make_plots(Config(), results, plots)
    assert figures(plots) == {*LOSS, *(f"scores/scores_{s}" for s in SCORES), *LATENT}
    assert not (plots / "roc").exists() and not (plots / "sic").exists()
    assert "no ROC or SIC curves" in caplog.text


def test_older_scores_without_latent_views_draw_the_one_latent(tmp_path: Path) -> None:
    results = write_all(tmp_path / "results", n_bkg=60, n_sig=30, views=False, **SMALL)
    make_plots(Config(), results, tmp_path / "plots", which="test_metrics")
    latent = {f for f in figures(tmp_path / "plots") if f.startswith("latent_space/")}
    assert latent == {"latent_space/latent_pca"}


@pytest.mark.parametrize(("which", "present", "message"), [
    ("all", [], r"history\.json: not found \(run train first\)"),
    ("train_metrics", [], r"history\.json: not found \(run train first\)"),
    ("test_metrics", [], rf"no .*scores\.h5: {MISSING}"),
    ("test_metrics", ["scores"], r"metrics\.json: not found \(run detect first\)"),
])
def test_missing_input_names_file_and_mode(tmp_path: Path, which: str, present: list[str],
                                           message: str) -> None:
    results = tmp_path / "results"
    results.mkdir()
    if "scores" in present:
        write_scores(results, models_dir=write_models(tmp_path / "models"))
    with pytest.raises(DataError, match=message):
        make_plots(Config(), results, tmp_path / "plots", which=which)
    assert not (tmp_path / "plots").exists()


def test_retrained_model_makes_results_stale(tmp_path: Path, caplog) -> None:
    # Issue 7: after a retrain without detect, the report must not show the new training next
    # to the old model's ROC. plot draws the training plots, removes the old evaluation
    # figures and says to run detect; -o test_metrics refuses.
    results = write_all(tmp_path / "results", n_bkg=60, n_sig=30, **SMALL)
    plots = tmp_path / "plots"
    make_plots(Config(), results, plots)
    evaluation = figures(plots) - set(LOSS)
    assert "roc/roc_total" in evaluation
    write_models(tmp_path / "models", version="retrained")  # train wrote a new best.pt
    with caplog.at_level(logging.WARNING):
        make_plots(Config(), results, plots)
    assert figures(plots) == set(LOSS)
    assert "scored another best.pt than the one in" in caplog.text
    assert (f"run detect; drew the training plots only (removed {2 * len(evaluation)} "
            "evaluation figures") in caplog.text
    page = (plots / "report.html").read_text(encoding="utf-8")
    assert "Evaluation results not shown" in page and 'id="headline-auc"' not in page
    with pytest.raises(DataError, match=r"scored another best\.pt .*: run detect"):
        make_plots(Config(), results, plots, which="test_metrics")


def drop_provenance(path: Path) -> None:
    with h5py.File(path, "a") as f:
        del f.attrs["provenance"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: (r.parent / "models" / "model.json").write_text('{"model_name": "AE"}'),
     r"computed with another model\.json"),
    (lambda r: (r.parent / "models" / "best.pt").unlink(),
     r"best\.pt: not found \(run train first\); cannot tell which model"),
    (lambda r: drop_provenance(r / "scores.h5"), r"does not record which model it scored"),
    (lambda r: write_scores(r, seed=5, models_dir=write_models(r.parent / "m2", "other")),
     r"metrics\.json and scores\.h5 come from different detect runs"),
])
def test_every_kind_of_stale_result_is_named(tmp_path: Path, edit, message: str) -> None:
    results = write_all(tmp_path / "results", n_bkg=40, n_sig=20)
    edit(results)
    with pytest.raises(DataError, match=message):
        make_plots(Config(), results, tmp_path / "plots", which="test_metrics")


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
