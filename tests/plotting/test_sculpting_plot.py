"""The mass-sculpting figures, drawn from the sculpting section compute_metrics writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bead.evaluation.metrics import compute_metrics
from bead.evaluation.scores import ScoreTable
from bead.plotting.sculpting import plot_sculpting, sculpting_masses


def test_one_figure_per_mass_in_pdf_and_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_bkg, n_sig = 3000, 300
    n = n_bkg + n_sig
    obs = {"j1_mass": rng.exponential(60.0, n), "mjj": 400 + rng.exponential(300.0, n),
           "mt": 500 + rng.exponential(400.0, n)}
    label = np.r_[np.zeros(n_bkg), np.ones(n_sig)].astype(np.int8)
    table = ScoreTable(
        label=label, weight=np.ones(n, np.float32), evt_id=np.arange(n),
        sample_index=label.astype(np.int16), generator_index=label.astype(np.int16),
        latent=np.zeros((n, 1), np.float32), scores={"total": obs["mjj"] + rng.normal(0, 50, n)},
        sample_names=["bkg_test_a", "sig_test_x"], generator_names=["a", "x"],
        signal_samples=["sig_test_x"], observables=obs)
    metrics = compute_metrics(table)
    assert sculpting_masses(metrics) == list(obs)
    written = [p for m in sculpting_masses(metrics)
               for p in plot_sculpting(table, metrics, m, tmp_path)]
    assert sorted(p.name for p in written) == sorted(
        f"sculpting_{m}.{fmt}" for m in obs for fmt in ("pdf", "png"))
    for path in written:
        assert path.stat().st_size > 5000
    # metrics.json of an older detect, without the section: nothing to draw.
    assert sculpting_masses({}) == []
    assert sculpting_masses({"sculpting": {"score": "total", "observables": {}}}) == []
