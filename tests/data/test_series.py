"""SpatioTemporalSeries validation, calendar features and null handling."""

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import SpatioTemporalSeries, time_features
from eala_jax.data.series import apply_null_value


def _series(**overrides):
    fields = dict(
        name="t",
        values=np.ones((10, 3), np.float32),
        steps_per_day=288,
        start_time=np.datetime64("2024-01-01T00:00"),
        step_minutes=5,
    )
    fields.update(overrides)
    return SpatioTemporalSeries(**fields)


def test_time_features_match_a_hand_computation():
    # 2024-01-06 is a Saturday (Monday = 0, so 5); 23:50 is 1430 minutes after midnight, step 286.
    tod, dow = time_features("2024-01-06T23:50", 5, 2 + 288 + 1)
    assert tod.dtype == np.int32 and dow.dtype == np.int32
    np.testing.assert_array_equal(tod[:3], [286, 287, 0])
    np.testing.assert_array_equal(dow[:3], [5, 5, 6])  # midnight rolls into Sunday
    assert tod[2 + 288] == 0 and dow[2 + 288] == 0  # Monday midnight
    assert tod[2 + 144] == 144 and dow[2 + 144] == 6  # Sunday noon


def test_time_features_hourly_and_daily_steps():
    tod, dow = time_features("2016-07-01T00:00", 60, 25)  # 2016-07-01 was a Friday
    np.testing.assert_array_equal(tod[:3], [0, 1, 2])
    assert tod[24] == 0 and dow[0] == 4 and dow[23] == 4 and dow[24] == 5
    tod, dow = time_features("1990-01-01T00:00", 1440, 8)  # a Monday
    np.testing.assert_array_equal(tod, np.zeros(8))
    np.testing.assert_array_equal(dow, [0, 1, 2, 3, 4, 5, 6, 0])


def test_time_features_off_grid_start_is_the_slot_holding_the_time():
    # 00:08 with 15-minute steps: steps at 00:08, 00:23, 00:38, ... fall in slots 0, 1, 2, ...
    # (the nearest slot boundary would say 1, 2, 3, ...).
    tod, _ = time_features("2024-01-01T00:08", 15, 97)
    np.testing.assert_array_equal(tod[:3], [0, 1, 2])
    assert tod[95] == 95 and tod[96] == 0 and tod.max() == 95


def test_time_features_agree_with_pandas_over_years():
    # An independent calendar: pandas' own hour, minute and weekday (Monday = 0), across a leap
    # day, from a start off the step grid.
    start, step, count = "2023-12-30T22:17", 10, 20_000
    tod, dow = time_features(start, step, count)
    stamps = pd.date_range(start, periods=count, freq=f"{step}min")
    np.testing.assert_array_equal(tod, (stamps.hour * 60 + stamps.minute) // step)
    np.testing.assert_array_equal(dow, stamps.dayofweek)


def test_series_features_and_properties():
    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    values[2, 1] = np.nan
    series = _series(values=values, start_time="2024-01-01T23:45")
    assert series.num_steps == 10 and series.num_nodes == 3
    assert series.missing_fraction == pytest.approx(1 / 30)
    assert series.time_of_day()[3] == 0 and series.day_of_week()[3] == 1  # Tuesday midnight
    assert series.valid.sum() == 29


def test_null_value_handling():
    raw = np.array([[0.0, 1.5], [np.nan, -2.0]])
    out = apply_null_value(raw, 0.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), [[True, False], [True, False]])
    out = apply_null_value(raw, None)  # only NaN missing: zeros are real readings
    np.testing.assert_array_equal(np.isnan(out), [[False, False], [True, False]])
    out = apply_null_value(raw, -2.0)
    np.testing.assert_array_equal(np.isnan(out), [[False, False], [True, True]])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(values=np.ones((10, 3), np.float64)), "float32"),
        (dict(values=np.ones((10,), np.float32)), r"\[T, N\]"),
        (dict(step_minutes=7, steps_per_day=205), "divide a day"),
        (dict(steps_per_day=96), "disagrees with step_minutes"),
        (dict(adjacency=np.ones((4, 4))), "signal has 3 nodes"),
        (dict(default_split=(0.7, 0.2, 0.2)), "sum <= 1"),
        (dict(values=np.full((4, 2), np.inf, np.float32)), "inf"),
        (dict(node_ids=("a",)), "node_ids"),
    ],
)
def test_series_rejects_bad_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        _series(**overrides)
