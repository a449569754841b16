"""Host-side (NumPy) baseline forecasters: last value and historical average.

- `last_value_forecast`: repeat each sensor's last observed input value over the horizon
  (missing inputs are skipped: the latest valid value in the window is used; a sensor with no
  valid input in the window gets NaN, which `fill_missing` replaces).
- `HistoricalAverage`: the mean of the training split at the same (day of week, time of day) slot.
  When that weekday's slot never occurs in the training split (Los-loop's test days, for one),
  it falls back to the mean of the same time of day over all training days; then to the
  sensor's training mean, then to the global training mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HistoricalAverage", "fill_missing", "last_value_forecast", "target_slots"]


def last_value_forecast(x_raw: np.ndarray, out_steps: int) -> np.ndarray:
    """`x_raw [B, T_in, N]` (raw units, NaN = missing) -> `[B, out_steps, N]`."""
    x_raw = np.asarray(x_raw, np.float64)
    valid = np.isfinite(x_raw)
    # Index of the last valid step per (window, sensor); -1 if none.
    steps = np.arange(x_raw.shape[1])[None, :, None]
    last = np.max(np.where(valid, steps, -1), axis=1)  # [B, N]
    value = np.take_along_axis(x_raw, np.maximum(last, 0)[:, None, :], axis=1)[:, 0]
    value = np.where(last >= 0, value, np.nan)
    return np.repeat(value[:, None, :], out_steps, axis=1).astype(np.float32)


def fill_missing(pred: np.ndarray, fallback: np.ndarray | float) -> np.ndarray:
    """Replace NaN predictions by `fallback` (same shape or broadcastable)."""
    return np.where(np.isfinite(pred), pred, fallback).astype(np.float32)


def target_slots(
    last_tod: np.ndarray, last_dow: np.ndarray, out_steps: int, steps_per_day: int
) -> tuple[np.ndarray, np.ndarray]:
    """Time-of-day index and weekday of the `out_steps` targets after an input window.

    `last_tod [B]` is the last input step's time of day in [0, 1) and `last_dow [B]` its weekday
    (0..6). Returns `tod [B, out_steps]` in 0..steps_per_day-1 and `dow [B, out_steps]` in 0..6.
    """
    start = (
        np.round(np.asarray(last_tod, np.float64) * steps_per_day).astype(np.int64) % steps_per_day
    )
    absolute = start[:, None] + np.arange(1, out_steps + 1)[None, :]
    dow = (np.round(np.asarray(last_dow)).astype(np.int64)[:, None] + absolute // steps_per_day) % 7
    return absolute % steps_per_day, dow


@dataclass
class HistoricalAverage:
    """Per-sensor slot means fitted on the training split.

    `week [7, steps_per_day, N]` (NaN where a slot was never observed), `day [steps_per_day, N]`,
    `sensor [N]`, `overall` (scalars are float64 means of raw values).
    """

    week: np.ndarray
    day: np.ndarray
    sensor: np.ndarray
    overall: float

    @classmethod
    def fit(
        cls, values: np.ndarray, tod: np.ndarray, dow: np.ndarray, steps_per_day: int
    ) -> HistoricalAverage:
        """`values [T, N]` raw (NaN = missing), `tod [T]` in 0..steps_per_day-1, `dow [T]` in
        0..6."""
        values = np.asarray(values, np.float64)
        tod = np.asarray(tod, np.int64)
        dow = np.asarray(dow, np.int64)
        valid = np.isfinite(values)
        v = np.where(valid, values, 0.0)
        n = values.shape[1]
        week_sum = np.zeros((7, steps_per_day, n))
        week_cnt = np.zeros((7, steps_per_day, n))
        np.add.at(week_sum, (dow, tod), v)
        np.add.at(week_cnt, (dow, tod), valid)
        day_sum, day_cnt = week_sum.sum(0), week_cnt.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            week = np.where(week_cnt > 0, week_sum / week_cnt, np.nan)
            day = np.where(day_cnt > 0, day_sum / day_cnt, np.nan)
            sensor = np.where(valid.sum(0) > 0, v.sum(0) / valid.sum(0), np.nan)
        overall = float(v.sum() / max(valid.sum(), 1))
        return cls(week=week, day=day, sensor=sensor, overall=overall)

    def predict(self, tod: np.ndarray, dow: np.ndarray) -> np.ndarray:
        """`tod, dow [B, T_out]` (integers) -> `[B, T_out, N]` float32, with the documented
        fallbacks."""
        pred = self.week[dow, tod]
        pred = np.where(np.isfinite(pred), pred, self.day[tod])
        pred = np.where(np.isfinite(pred), pred, self.sensor)
        return np.where(np.isfinite(pred), pred, self.overall).astype(np.float32)
