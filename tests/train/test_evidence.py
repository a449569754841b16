"""The guard's validation evidence: the block t-test's p-values against a NumPy / SciPy reference
and on differences of known sign."""

from __future__ import annotations

import numpy as np
import pytest

from eala_jax.train.evidence import block_p_values, horizon_p_value


def _reference(difference: np.ndarray) -> np.ndarray:
    stats = pytest.importorskip("scipy.stats")
    w, t_out = difference.shape
    out = np.ones(t_out)
    for h in range(t_out):
        n = w // (h + 1)
        if n < 2:
            continue
        means = np.array([difference[b * (h + 1) : (b + 1) * (h + 1), h].mean() for b in range(n)])
        t = means.mean() / (means.std(ddof=1) / np.sqrt(n))
        out[h] = stats.t.cdf(t, n - 1)
    return out


def test_p_values_equal_the_reference():
    rng = np.random.default_rng(11)
    difference = rng.normal(-0.1, 1.0, (50, 30)) + np.linspace(-0.5, 0.5, 30)
    got = block_p_values(difference)
    np.testing.assert_allclose(got, _reference(difference), rtol=2e-5, atol=1e-6)
    assert (got[25:] == 1.0).all()  # 50 windows hold fewer than two blocks of 26 or more


def test_p_values_follow_the_sign_and_the_overlap():
    rng = np.random.default_rng(0)
    better = rng.normal(-1.0, 0.5, (400, 4))
    assert (block_p_values(better) < 1e-6).all()
    assert (block_p_values(-better) > 1 - 1e-6).all()
    nan = better.copy()
    nan[::7, 0] = np.nan  # windows without a valid target are left out of their block's mean
    assert block_p_values(nan)[0] < 1e-6


def test_overlapping_windows_do_not_inflate_the_evidence():
    """No true difference, errors shared by overlapping windows (at lead h, a moving sum of h + 1
    increments, as on a random walk): p < 5 % in about 5 % of the validation sets; a t-test that
    took the windows as independent would claim it far more often."""
    rng = np.random.default_rng(3)
    h = 7
    hits = naive_hits = 0
    for _ in range(200):
        increments = rng.normal(0, 1, 400 + h)
        shared = np.convolve(increments, np.ones(h + 1), "valid")[:400]  # [W]
        difference = np.zeros((400, h + 1))
        difference[:, h] = shared
        hits += block_p_values(difference)[h] < 0.05
        naive_t = shared.mean() / (shared.std(ddof=1) / np.sqrt(len(shared)))
        naive_hits += naive_t < -1.65
    assert hits <= 20, hits  # 5 % of 200 is 10
    assert naive_hits >= 2 * hits + 10, (naive_hits, hits)


def test_the_horizon_p_value_pools_each_window_over_its_steps():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    difference = rng.normal(-0.05, 1.0, (100, 6))
    difference[3, 2] = np.nan
    per_window = np.nanmean(difference, axis=1)
    means = per_window[:96].reshape(16, 6).mean(1)
    t = means.mean() / (means.std(ddof=1) / np.sqrt(16))
    assert horizon_p_value(difference) == pytest.approx(stats.t.cdf(t, 15), rel=2e-5, abs=1e-6)
    assert horizon_p_value(difference[:11]) == 1.0  # fewer than two blocks of 6 windows
