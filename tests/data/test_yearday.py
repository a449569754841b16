"""The day of the year from March 1, in NumPy and in JAX, against datetime arithmetic."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from eala_jax.data.yearday import YEAR_DAYS, epoch_days, year_day


def _reference(days: np.ndarray) -> np.ndarray:
    """Days since the last March 1, by NumPy's calendar."""
    dates = days.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = (dates.astype("datetime64[M]").astype(np.int64) % 12) + 1
    march_year = np.where(months >= 3, years, years - 1)
    march_first = np.array([np.datetime64(f"{y:04d}-03-01") for y in march_year])
    return (dates - march_first).astype(np.int64)


def test_year_day_matches_the_calendar_in_numpy_and_jax():
    # 1896-2104: the leap-year exceptions 1900 and 2100, the 400-year one 2000, dates before 1970.
    days = np.arange(np.datetime64("1896-01-01"), np.datetime64("2104-12-31")).astype(np.int64)
    expected = _reference(days)
    np.testing.assert_array_equal(year_day(days), expected)
    np.testing.assert_array_equal(np.asarray(year_day(jnp.asarray(days, jnp.int32), jnp)), expected)
    assert expected.min() == 0 and expected.max() == YEAR_DAYS - 1
    # The leap day is 365, March 1 is 0, New Year's Day is 306 every year.
    leap = np.datetime64("2024-02-29").astype(np.int64)
    assert year_day(np.array([leap]))[0] == 365
    for y in (1999, 2000, 2023, 2024):
        assert year_day(np.datetime64(f"{y}-03-01").astype(np.int64)) == 0
        assert year_day(np.datetime64(f"{y}-01-01").astype(np.int64)) == 306


def test_epoch_days_of_sub_daily_steps():
    days = epoch_days("1970-01-01T22:00", 60, 4)
    np.testing.assert_array_equal(days, [0, 0, 1, 1])
