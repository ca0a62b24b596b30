"""Speed of the bootstrap uncertainties (bead.evaluation.bootstrap) against the plain way.

A synthetic detect output: 10,000 background events, two signal samples of 2,000 events,
15 scores, unit weights. Timed in one call:

- baseline: sklearn's weighted ``roc_curve`` + ``auc`` and the ε_s interpolation once per
  resample (the loop a first implementation would write), on 10 resamples, scaled to 100;
- vectorised: ``bootstrap_errors`` with 100 resamples for the same scores and selections;
- ``compute_metrics`` with ``bootstrap_resamples`` 0 and 100: what the bootstrap adds to detect.

    python benchmarks/bootstrap.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import auc, roc_curve

from bead.evaluation.bootstrap import bootstrap_errors, resample_counts
from bead.evaluation.metrics import BKG_EFFICIENCIES, compute_metrics, tpr_at
from bead.evaluation.scores import ScoreTable

N_BKG, N_SIG, N_SCORES, RESAMPLES = 10_000, 2_000, 15, 100


def make_table() -> ScoreTable:
    rng = np.random.default_rng(0)
    n = N_BKG + 2 * N_SIG
    label = np.r_[np.zeros(N_BKG), np.ones(2 * N_SIG)].astype(np.int8)
    sample = np.r_[np.zeros(N_BKG), np.ones(N_SIG), np.full(N_SIG, 2)].astype(np.int16)
    scores = {f"s{i}": rng.normal(size=n) + label * 0.1 * i for i in range(N_SCORES)}
    return ScoreTable(label=label, weight=np.ones(n, np.float32), evt_id=np.arange(n),
                      sample_index=sample, generator_index=np.minimum(sample, 1),
                      latent=np.zeros((n, 1), np.float32), scores=scores,
                      sample_names=["bkg_test_a", "sig_test_x", "sig_test_y"],
                      generator_names=["a", "svj"], signal_samples=["sig_test_x", "sig_test_y"])


def selections(table: ScoreTable) -> list[np.ndarray]:
    bkg = table.label == 0
    return [bkg | (table.sample_index == 1), bkg | (table.sample_index == 2), np.ones(
        len(table), bool)]


def baseline(table: ScoreTable, resamples: int) -> None:
    rng = np.random.default_rng(0)
    for keep in selections(table):
        label, weight = table.label[keep], table.weight[keep].astype(float)
        counts = resample_counts(label, resamples, rng)
        for score in table.scores.values():
            for row in counts:
                fpr, tpr, _ = roc_curve(label, score[keep], sample_weight=weight * row,
                                        drop_intermediate=False)
                auc(fpr, tpr)
                for eff in BKG_EFFICIENCIES:
                    tpr_at(fpr, tpr, eff)


def vectorised(table: ScoreTable, resamples: int) -> None:
    for keep in selections(table):
        bootstrap_errors(table.label[keep], {k: v[keep] for k, v in table.scores.items()},
                         table.weight[keep], BKG_EFFICIENCIES, resamples, 0)


def timed(fn, *args) -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time shows the work when other jobs share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    table = make_table()
    print(f"{N_BKG} background + 2 x {N_SIG} signal events, {N_SCORES} scores, 3 selections "
          f"(each signal and both), {RESAMPLES} resamples; seconds wall / CPU")
    base = tuple(t * RESAMPLES / 10 for t in timed(baseline, table, 10))
    fast = timed(vectorised, table, RESAMPLES)
    plain = timed(compute_metrics, table)
    full = timed(lambda: compute_metrics(table, bootstrap_resamples=RESAMPLES))
    print(f"sklearn per resample (baseline, from 10 resamples): {base[0]:7.2f} / {base[1]:7.2f}"
          "   1.00x")
    print(f"bootstrap_errors (vectorised):                      {fast[0]:7.2f} / {fast[1]:7.2f}"
          f"  {base[1] / fast[1]:5.1f}x less CPU")
    print(f"compute_metrics without the bootstrap:              {plain[0]:7.2f} / {plain[1]:7.2f}")
    print(f"compute_metrics with {RESAMPLES} resamples:                {full[0]:7.2f} / "
          f"{full[1]:7.2f}")


if __name__ == "__main__":
    main()
