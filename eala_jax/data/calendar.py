"""Which calendar features fit a series: time of day and day of week, from its step and the span of
its training split (``choose_calendar``). O(training steps)."""

from __future__ import annotations

import dataclasses

import numpy as np

from eala_jax.data.series import SpatioTemporalSeries

MINUTES_PER_WEEK = 7 * 24 * 60
#: Each weekday must occur on at least this many distinct training days for day of week to be used.
MIN_DAYS_PER_WEEKDAY = 2


@dataclasses.dataclass(frozen=True)
class CalendarChoice:
    """The calendar features a model of this series should use, and why (for the training log)."""

    time_of_day: bool
    day_of_week: bool
    reason: str


def choose_calendar(series: SpatioTemporalSeries, train_steps: int) -> CalendarChoice:
    """Time of day only for sub-daily steps (with a step of a day or longer it is constant); day of
    week only for steps under a week whose training steps ``[0, train_steps)`` hold every weekday on
    at least ``MIN_DAYS_PER_WEEKDAY`` distinct days (with fewer, a weekday's embedding row is
    trained on one day or none: Los-loop's training split holds five weekdays once each, so its
    test weekdays would meet untrained rows).
    """
    if not isinstance(series, SpatioTemporalSeries):
        raise TypeError(f"series must be a SpatioTemporalSeries, got {type(series).__name__}")
    if not 1 <= train_steps <= series.num_steps:
        raise ValueError(f"train_steps must be in [1, {series.num_steps}], got {train_steps}")
    step = series.step_minutes
    time_of_day = series.steps_per_day > 1
    tod_why = (
        f"time of day on ({series.steps_per_day} steps a day)"
        if time_of_day
        else f"time of day off (a step of {step} min is a day or longer: one slot a day)"
    )
    if step >= MINUTES_PER_WEEK:
        return CalendarChoice(
            time_of_day, False, f"{tod_why}; day of week off (a step of a week or longer)"
        )
    times = series.start_time + np.arange(train_steps) * np.timedelta64(step, "m")
    days = np.unique(times.astype("datetime64[D]").astype(np.int64))
    per_weekday = np.bincount((days + 3) % 7, minlength=7)  # 1970-01-01 was a Thursday (3)
    day_of_week = bool(per_weekday.min() >= MIN_DAYS_PER_WEEKDAY)
    dow_why = (
        f"day of week {'on' if day_of_week else 'off'} (the training split holds each weekday on "
        f"{per_weekday.min()}-{per_weekday.max()} days; on needs >= {MIN_DAYS_PER_WEEKDAY} each)"
    )
    return CalendarChoice(time_of_day, day_of_week, f"{tod_why}; {dow_why}")
