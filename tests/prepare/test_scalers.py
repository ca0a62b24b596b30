"""Normalisations: invertible, mask-aware, fitted once and reloaded identically from JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bead.config import SCALERS
from bead.errors import DataError
from bead.prepare.scalers import LevelScaler, Scalers, load_scalers

NAMES = ["pt", "eta", "phi", "b_tagged", "num_constits"]
KINDS = ["energy", "signed", "angle", "binary", "count"]
RECIPES = [*SCALERS, "pj_custom", "log+standard", "log+standard+sincos", "sincos+l2+minmax",
           "power+quantile", "log+robust+maxabs"]


def sample(n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    return np.column_stack([
        rng.exponential(50.0, n) + 1.0 + shift, rng.normal(shift, 1.2, n),
        rng.uniform(-np.pi, np.pi, n), rng.integers(0, 2, n), rng.poisson(8, n) + shift,
    ])


@pytest.fixture
def rows():
    return sample(400, np.random.default_rng(1))


@pytest.mark.parametrize("recipe", RECIPES)
def test_round_trip_and_padding(recipe, rows):
    scaler = LevelScaler.fit(recipe, rows, NAMES, KINDS, seed=3)
    slots = np.zeros((40, 12, 5), dtype=np.float32)
    mask = np.zeros((40, 12), dtype=bool)
    mask[:, :10] = True
    mask[::3, 7:] = False
    slots[mask] = rows[: mask.sum()]

    out = scaler.transform(slots, mask)
    assert out.shape == (40, 12, len(scaler.output_names)) and out.dtype == np.float32
    assert (out[~mask] == 0).all()
    assert np.isfinite(out).all()
    back = scaler.inverse_transform(out, mask)
    np.testing.assert_allclose(back, slots, rtol=2e-4, atol=2e-4)
    assert (back[~mask] == 0).all()
    # binary columns pass through untouched
    np.testing.assert_array_equal(out[..., scaler.output_names.index("b_tagged")],
                                  slots[..., 3])


def test_power_stays_invertible_on_a_nearly_constant_count():
    # A b-jet count that is 0 in 199 of 200 events: unbounded Yeo-Johnson fits lambda << -10
    # and maps 1, 2 and 3 onto one float.
    count = np.zeros(200)
    count[0] = 1.0
    scaler = LevelScaler.fit("power", count[:, None], ["n_btag"], ["count"])
    x = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    out = scaler.transform(x, np.ones(4, bool))
    assert len(np.unique(out)) == 4
    np.testing.assert_allclose(scaler.inverse_transform(out, np.ones(4, bool)), x, atol=1e-3)


@pytest.mark.parametrize("recipe", ["standard", "robust", "minmax", "maxabs", "power",
                                    "quantile", "pj_custom", "log+standard"])
def test_shifted_sample_stays_shifted(recipe, rows):
    scaler = LevelScaler.fit(recipe, rows, NAMES, KINDS)
    rng = np.random.default_rng(7)
    shifted_rows = sample(2000, rng, shift=1.0)
    eta = scaler.output_names.index("eta")
    reference = scaler.transform_rows(sample(2000, rng))[:, eta].mean()
    kept = scaler.transform_rows(shifted_rows)[:, eta].mean() - reference
    refitted = LevelScaler.fit(recipe, shifted_rows, NAMES, KINDS)
    washed_out = refitted.transform_rows(shifted_rows)[:, eta].mean() - reference
    # scaled like the training data, the shift survives; a scaler refitted on the shifted
    # sample itself would have hidden it (maxabs does not centre, so it hides nothing)
    assert kept > 0.1
    if recipe != "maxabs":
        assert abs(washed_out) < kept / 3


def test_standard_is_fitted_on_training_rows_only(rows):
    scaler = LevelScaler.fit("standard", rows, NAMES, KINDS)
    y = scaler.transform_rows(rows)
    np.testing.assert_allclose(y[:, [0, 1, 2, 4]].mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(y[:, [0, 1, 2, 4]].std(0), 1.0, atol=1e-9)


def test_sincos_and_l2_column_names(rows):
    scaler = LevelScaler.fit("sincos+l2", rows, NAMES, KINDS)
    assert scaler.output_names == ["pt", "eta", "phi_sin", "phi_cos", "b_tagged",
                                   "num_constits", "l2_norm"]
    y = scaler.transform_rows(rows)
    continuous = [0, 1, 2, 3, 5]
    np.testing.assert_allclose(np.linalg.norm(y[:, continuous], axis=1), 1.0)
    np.testing.assert_allclose(y[:, 6], np.linalg.norm(
        np.column_stack([rows[:, :2], np.sin(rows[:, 2]), np.cos(rows[:, 2]), rows[:, 4]]),
        axis=1))


def test_pj_custom_recipe(rows):
    scaler = LevelScaler.fit("pj_custom", rows, NAMES, KINDS)
    assert scaler.output_names == ["pt", "eta", "phi_sin", "phi_cos", "b_tagged",
                                   "num_constits"]
    y = scaler.transform_rows(rows)
    logpt = np.log1p(rows[:, 0])
    np.testing.assert_allclose(y[:, 0], (logpt - logpt.mean()) / logpt.std())
    np.testing.assert_allclose(y[:, 2], np.sin(rows[:, 2]))
    q1, med, q3 = np.percentile(rows[:, 4], [25, 50, 75])
    np.testing.assert_allclose(y[:, 5], (rows[:, 4] - med) / (q3 - q1))


def test_log_leaves_signed_columns_alone(rows):
    scaler = LevelScaler.fit("log", rows, NAMES, KINDS)
    y = scaler.transform_rows(rows)
    np.testing.assert_allclose(y[:, 0], np.log1p(rows[:, 0]))
    np.testing.assert_array_equal(y[:, 1:4], rows[:, 1:4])
    np.testing.assert_allclose(y[:, 4], np.log1p(rows[:, 4]))


@pytest.mark.parametrize("recipe", RECIPES)
def test_json_reload_is_identical(recipe, rows, tmp_path):
    scaler = LevelScaler.fit(recipe, rows, NAMES, KINDS, seed=5)
    Scalers(recipe, {"jet": scaler}).save(tmp_path / "scalers.json")
    text = (tmp_path / "scalers.json").read_text()
    assert json.loads(text)["normalizations"] == recipe
    reloaded = load_scalers(tmp_path / "scalers.json")
    assert reloaded.normalizations == recipe
    test = sample(300, np.random.default_rng(11), shift=0.3)
    np.testing.assert_array_equal(reloaded["jet"].transform_rows(test),
                                  scaler.transform_rows(test))
    y = scaler.transform_rows(test)
    np.testing.assert_array_equal(reloaded["jet"].inverse_rows(y), scaler.inverse_rows(y))


def test_load_scalers_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_scalers(tmp_path / "scalers.json")
    (tmp_path / "scalers.json").write_text("{\"version\": 99}")
    with pytest.raises(DataError, match="unreadable"):
        load_scalers(tmp_path / "scalers.json")


def test_fit_needs_rows():
    with pytest.raises(DataError, match="no jet rows"):
        LevelScaler.fit("standard", np.zeros((0, 5)), NAMES, KINDS, level="jet")
