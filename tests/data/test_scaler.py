"""StandardScaler: statistics of valid values only, exact inverse, numpy and jit alike."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax.data import StandardScaler


def test_fit_ignores_missing_and_matches_numpy_float64():
    values = np.array([[1.0, np.nan], [3.0, 10.0], [np.nan, 2.0]], np.float32)
    scaler = StandardScaler.fit(values)
    ref = np.array([1.0, 3.0, 10.0, 2.0])
    assert scaler.mean == pytest.approx(ref.mean(), rel=1e-12)
    assert scaler.std == pytest.approx(ref.std(), rel=1e-12)


def test_transform_round_trip_numpy_and_jax():
    scaler = StandardScaler(mean=50.0, std=10.0)
    x = np.array([[40.0, 65.0]], np.float32)
    z = scaler.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, [[-1.0, 1.5]])
    np.testing.assert_allclose(scaler.inverse_transform(z), x)
    zj = jax.jit(lambda s, a: s.transform(a))(
        scaler, jnp.asarray(x)
    )  # a pytree: passes through jit
    assert zj.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(jax.jit(scaler.inverse_transform)(zj)), x, rtol=1e-6)


def test_fit_errors():
    with pytest.raises(ValueError, match="no valid"):
        StandardScaler.fit(np.full((3, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="constant"):
        StandardScaler.fit(np.full((3, 2), 4.0, np.float32))
