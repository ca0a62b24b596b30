"""The helpers behind the plots: weighted ROC, binning, subsampling, labels, the score choice,
latent views, and the two speed-ups (recycled figures, shared mathtext layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.font_manager import FontProperties
from matplotlib.mathtext import MathTextParser
from plot_inputs import write_all
from sklearn.metrics import roc_auc_score

from bead.config import Config
from bead.evaluation.metrics import roc_summary, sic_points
from bead.evaluation.scores import Group, read_scores
from bead.plotting import scores as score_plots
from bead.plotting import style
from bead.plotting.inputs import primary_score
from bead.plotting.latent import latent_views, subsample
from bead.plotting.roc import roc_curve
from bead.plotting.scores import common_bins, plot_score_distribution
from bead.plotting.style import safe_name, sample_label


def test_weighted_roc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400).astype(bool)
    score = np.round(rng.normal(size=400) + y, 1)  # rounding makes many ties
    weight = rng.uniform(0.1, 2.0, 400)
    curve = roc_curve(score, y, weight)
    assert curve.auc == pytest.approx(roc_auc_score(y, score, sample_weight=weight), abs=1e-12)
    assert curve.eps_b[0] == 0 and curve.eps_s[-1] == 1 and curve.eps_b[-1] == 1
    assert np.all(np.diff(curve.eps_b) >= 0)


def test_roc_of_a_perfect_score() -> None:
    curve = roc_curve(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool), np.ones(4))
    assert curve.auc == 1.0
    np.testing.assert_allclose(curve.eps_s, [0, 0.5, 1, 1, 1])


def test_plotted_roc_uses_the_metrics_weight_policy() -> None:
    # Negative weights (NLO samples) count as zero in the curve as in metrics.json, so the
    # drawn curve stays monotonic and its AUC is the recorded one.
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500).astype(bool)
    score = rng.normal(size=500) + y
    weight = rng.uniform(-0.5, 1.0, 500)
    curve = roc_curve(score, y, weight)
    assert np.all(np.diff(curve.eps_b) >= 0) and np.all(np.diff(curve.eps_s) >= 0)
    assert curve.auc == pytest.approx(roc_summary(y.astype(np.int8), score, weight)["auc"])


def test_sic_points_need_ten_effective_background_events() -> None:
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(200, bool), np.ones(200, bool)]
    score = rng.normal(size=400) + 2 * y
    curve = roc_curve(score, y, np.ones(400))
    eps_s, sic = sic_points(curve.eps_b, curve.eps_s, curve.bkg_weight)
    eps_b = (eps_s[sic > 0] / sic[sic > 0]) ** 2
    assert eps_b.min() == pytest.approx(10 / 200)
    recorded = roc_summary(y.astype(np.int8), score, np.ones(400))["max_sic"]
    assert sic.max() == pytest.approx(recorded)


def test_roc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both signal and background"):
        roc_curve(np.arange(3.0), np.zeros(3, bool), np.ones(3))


def test_common_bins_switch_to_log_when_scores_span_decades() -> None:
    edges, log_x = common_bins(np.geomspace(1e-3, 1e3, 1000))
    assert log_x and edges[0] > 0
    assert np.allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))
    edges, log_x = common_bins(np.linspace(-1.0, 1.0, 1000))
    assert not log_x and edges[0] == pytest.approx(-0.998, abs=1e-3)


def test_subsample_gives_each_group_an_equal_share() -> None:
    mask_big = np.zeros(1000, bool)
    mask_big[:900] = True
    groups = [Group("bkg", mask_big, False), Group("sig", ~mask_big, True)]
    chosen = subsample(groups, Config(subsample_size=100, seed=1))
    assert [len(c) for c in chosen] == [50, 50]
    assert set(chosen[1]) <= set(np.flatnonzero(~mask_big))
    full = subsample(groups, Config(subsample_plot=False))
    assert [len(c) for c in full] == [900, 100]


def test_primary_score_is_recorded_then_total_then_first_model_score() -> None:
    names = ["reco", "total", "obs_met"]
    assert primary_score({"primary_score": "reco"}, names) == "reco"
    assert primary_score({"primary_score": "gone"}, names) == "total"
    assert primary_score({}, ["obs_met", "kl"]) == "kl"  # never an observable by default


def test_sample_labels_drop_the_flag_and_stay_short() -> None:
    assert sample_label("sig_test_svj_rinv03") == ("svj_rinv03", False)
    label, shortened = sample_label("sig_test_svj_mz1500_mdark20_rinv0.3_alpha0.2")
    assert label == "svj_mz1500_mdark20_\nrinv0.3_alpha0.2" and not shortened
    label, shortened = sample_label("sig_test_" + "_".join(["svj_mz1500_mdark20"] * 4))
    assert shortened and label.endswith("…")
    assert all(len(line) <= style.LABEL_WIDTH for line in label.split("\n"))


def test_identical_latent_views_are_drawn_once(tmp_path: Path) -> None:
    table = read_scores(write_all(tmp_path / "results", n_bkg=20, n_sig=10) / "scores.h5")
    views = latent_views(table)
    assert list(views) == ["z0", "zk"]  # mu equals z0 (a VAE's mean in eval mode)
    assert views["z0"][0] == "$z_0$ = $\\mu$"
    table.latents.clear()
    assert list(latent_views(table)) == ["latent"]


def test_score_distribution_y_range_fits_the_data(tmp_path: Path, monkeypatch) -> None:
    table = read_scores(write_all(tmp_path / "results", n_bkg=200, n_sig=100) / "scores.h5")
    seen = {}
    monkeypatch.setattr(score_plots, "save_figure",
                        lambda fig, base: seen.setdefault("ylim", fig.axes[0].get_ylim()))
    plot_score_distribution(table, "total", tmp_path)
    lo, hi = seen["ylim"]
    highest = max(np.histogram(table.scores["total"][g.mask], common_bins(
        table.scores["total"])[0])[0].max() / g.mask.sum()
                  for g in table.background_groups() + table.signal_groups())
    # The legend sits under the axes, so the data fill the frame (log axis) but for the
    # label's room at the top, far below the earlier upper limit of about 1e2.
    filled = (np.log10(highest) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
    assert lo > 0 and filled > 0.7 and hi < 1.0


def test_a_recycled_figure_draws_like_a_fresh_one(tmp_path: Path) -> None:
    def draw(name: str, log_scale: bool) -> bytes:
        with style.hep_style():
            fig, ax = style.new_figure()
            ax.plot([1e-3, 1e-2, 1], [0.1, 0.5, 1.0], label="curve")
            if log_scale:
                ax.set_xscale("log")
            ax.legend()
            style.add_caption(fig, ["a_long_sample_name"] if log_scale else [])
            style.bead_label(ax, rlabel=name)
            style.save_figure(fig, tmp_path / name)
        return (tmp_path / f"{name}.png").read_bytes()

    style._POOL.clear()
    fresh = draw("linear", False)
    draw("log", True)  # leaves a recycled figure with a log axis and a caption behind
    assert style._POOL and draw("linear", False) == fresh


def test_mathtext_layouts_are_shared_between_renderers() -> None:
    style.share_text_layouts()
    style.share_text_layouts()  # idempotent
    prop = FontProperties(size=12)
    first = MathTextParser("path").parse(r"$10^{-2}$", 72, prop)
    assert MathTextParser("path").parse(r"$10^{-2}$", 72, prop) is first
    assert MathTextParser("agg").parse(r"$10^{-2}$", 72, prop) is not first  # other output


def test_safe_name() -> None:
    assert safe_name("kl/flow term") == "kl_flow_term"
    assert safe_name("...") == "unnamed"


def test_long_sample_names_are_given_in_full_under_the_axes(tmp_path: Path,
                                                            monkeypatch) -> None:
    long_name = "sig_test_" + "_".join(["svj_mz1500_mdark20_rinv0p3"] * 3)
    results = write_all(tmp_path / "results", n_bkg=30, n_sig=20, signals=[long_name])
    table = read_scores(results / "scores.h5")
    seen = {}

    def capture(fig, base):
        seen["texts"] = [t.get_text() for t in fig.texts]
        seen["legend"] = [t.get_text() for t in fig.legends[0].get_texts()]

    monkeypatch.setattr(score_plots, "save_figure", capture)
    plot_score_distribution(table, "total", tmp_path)
    assert seen["texts"] == [f"Full names: {long_name}"]
    shortened = next(label for label in seen["legend"] if "signal" in label)
    assert "…" in shortened and long_name not in shortened
