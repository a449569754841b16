"""choose_calendar: time of day for sub-daily steps, day of week when the training split holds every
weekday twice; steps of whole days and weeks are accepted by the series."""

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import SpatioTemporalSeries
from eala_jax.data.calendar import choose_calendar


def _series(num_steps, step_minutes, start="2012-03-01T00:00"):
    return SpatioTemporalSeries(
        name="t",
        values=np.ones((num_steps, 2), np.float32),
        steps_per_day=max(1, 1440 // step_minutes),
        start_time=np.datetime64(start),
        step_minutes=step_minutes,
    )


def _weekday_days(start, step_minutes, train_steps):
    """Distinct training days per weekday, by pandas (an independent calendar)."""
    stamps = pd.date_range(pd.Timestamp(start), periods=train_steps, freq=f"{step_minutes}min")
    days = pd.Series(stamps.normalize().unique())
    return np.bincount(days.dt.dayofweek, minlength=7)


@pytest.mark.parametrize(
    ("num_steps", "step_minutes", "train_steps", "start"),
    [
        (2016, 5, 1411, "2012-03-01T00:00"),  # Los-loop: one week, 7:1:2
        (2976, 15, 2083, "2015-01-01T00:00"),  # SZ-taxi: a month
        (720, 60, 504, "2024-03-04T06:00"),  # a month of hourly counts
        (40, 1440, 28, "1990-01-01T00:00"),  # daily, four weeks of training
        (20, 1440, 13, "1990-01-01T00:00"),  # daily, under two weeks
        (60, 10080, 42, "2020-01-06T00:00"),  # weekly
    ],
)
def test_choice_follows_the_step_and_the_training_span(num_steps, step_minutes, train_steps, start):
    choice = choose_calendar(_series(num_steps, step_minutes, start), train_steps)
    assert choice.time_of_day == (step_minutes < 1440)
    expected_dow = (
        step_minutes < 10080 and _weekday_days(start, step_minutes, train_steps).min() >= 2
    )
    assert choice.day_of_week == expected_dow
    assert ("day of week on" if expected_dow else "day of week off") in choice.reason


def test_multi_day_steps_are_accepted_and_odd_ones_refused():
    weekly = _series(10, 10080)
    assert weekly.steps_per_day == 1
    np.testing.assert_array_equal(weekly.day_of_week(), np.full(10, 3))  # 2012-03-01 a Thursday
    with pytest.raises(ValueError, match="whole number of days"):
        _series(10, 2000)
    with pytest.raises(ValueError, match=r"train_steps must be in \[1, 10\]"):
        choose_calendar(weekly, 11)
