"""Host-side (NumPy) baseline forecasters: last value, historical average and seasonal naive, and
their metrics on a split's windows (``evaluate_baselines``).

- `last_value_forecast`: repeat each sensor's last observed input value over the horizon
  (missing inputs are skipped: the latest valid value in the window is used; a sensor with no
  valid input in the window gets NaN, which `fill_missing` replaces).
- `HistoricalAverage`: the mean of the training split at the same (day of week, time of day) slot.
  When that weekday's slot never occurs in the training split (Los-loop's test days, for one),
  it falls back to the mean of the same time of day over all training days; then to the
  sensor's training mean, then to the global training mean. For daily data whose training split
  spans two years or more it may add a smoothed day-of-year term (`eala_jax.models.year_term`),
  kept where it lowers the validation MAE (`choose_average`). The same table, read at every series
  step (`seasonal_profile`), is the seasonal profile the model can take as an input channel or a
  residual target (docs/training.md).
- `seasonal_naive_forecast`: the value one period before each target step (a day, or a week; k
  periods before when the horizon passes a period), read from the series where it falls before
  the input window (`WindowSource.history`), or a year before for daily data spanning two years;
  missing values fall back to the historical average.
  `seasonal_periods` lists the periods the step and the training span allow; `evaluate_baselines`
  picks one by validation MAE, never by test.

Both read the same windows as the model (``WindowSource``, through ``make_eval_loader``): inputs
are put back in the data's units with the training scaler, missing inputs are known from
``x_mask``, and the targets' calendar comes with the window (``y_time_of_day``,
``y_day_of_week``). See docs/data.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from eala_jax.data.loader import make_eval_loader
from eala_jax.data.scaler import StandardScaler
from eala_jax.data.windows import SPLIT_NAMES, ForecastSplits, WindowSource
from eala_jax.metrics import MetricAccumulator, horizon_sums
from eala_jax.models.year_term import (
    MIN_GAIN,
    YEAR_HARMONICS,
    fit_year_term,
    year_term_applies,
)

__all__ = [
    "BASELINE_NAMES",
    "HistoricalAverage",
    "choose_average",
    "evaluate_baselines",
    "fill_missing",
    "fit_historical_average",
    "last_value_forecast",
    "seasonal_naive_forecast",
    "seasonal_periods",
    "seasonal_profile",
]

EVAL_BATCH_SIZE = 256
#: The tables `evaluate_baselines` returns, in the order reports show them (the seasonal naive is
#: absent where the data has no candidate period).
BASELINE_NAMES = ("last_value", "seasonal_naive", "historical_average")


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


@dataclass
class HistoricalAverage:
    """Per-sensor slot means fitted on the training split.

    `week [7, steps_per_day, N]` (NaN where a slot was never observed), `day [steps_per_day, N]`,
    `sensor [N]`, `overall` (scalars are float64 means of raw values); `year [366, N]` float64,
    the smoothed day-of-year term added to them (indexed by `eala_jax.data.yearday.year_day`), or
    None; `year_choice`: the validation MAE of the candidates `choose_average` compared, if it did.
    """

    week: np.ndarray
    day: np.ndarray
    sensor: np.ndarray
    overall: float
    year: np.ndarray | None = None
    year_choice: dict[str, float] | None = None

    @classmethod
    def fit(
        cls,
        values: np.ndarray,
        tod: np.ndarray,
        dow: np.ndarray,
        steps_per_day: int,
        *,
        day: np.ndarray | None = None,
        harmonics: int = 0,
    ) -> HistoricalAverage:
        """`values [T, N]` raw (NaN = missing), `tod [T]` in 0..steps_per_day-1, `dow [T]` in
        0..6. With `harmonics` > 0 also the day-of-year term from `day [T]` (days of the year):
        the slot means, the term fitted to what they leave (`fit_year_term`), then the slot means
        again of the values less the term."""
        if harmonics:
            if day is None:
                raise ValueError("HistoricalAverage.fit: harmonics > 0 needs day= (days of year)")
            slots = cls.fit(values, tod, dow, steps_per_day)
            residual = np.asarray(values, np.float64) - slots.slots(tod[None], dow[None], 64)[0]
            year = fit_year_term(residual, day, harmonics=harmonics)
            adjusted = np.asarray(values, np.float64) - year[np.asarray(day, np.int64)]
            return dataclasses.replace(cls.fit(adjusted, tod, dow, steps_per_day), year=year)
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

    def slots(self, tod: np.ndarray, dow: np.ndarray, bits: int = 32) -> np.ndarray:
        """The slot means without the day-of-year term: `tod, dow [B, T]` (integers) -> `[B, T, N]`
        (float32, or float64 with ``bits=64``), with the documented fallbacks."""
        pred = self.week[dow, tod]
        pred = np.where(np.isfinite(pred), pred, self.day[tod])
        pred = np.where(np.isfinite(pred), pred, self.sensor)
        pred = np.where(np.isfinite(pred), pred, self.overall)
        return pred.astype(np.float64 if bits == 64 else np.float32)

    def year_table(self) -> np.ndarray | None:
        """float32 ``[366, N]``, the day-of-year term as the forecaster adds it, or None."""
        return None if self.year is None else self.year.astype(np.float32)

    def predict(
        self, tod: np.ndarray, dow: np.ndarray, day: np.ndarray | None = None
    ) -> np.ndarray:
        """`tod, dow [B, T_out]` (integers) -> `[B, T_out, N]` float32, with the documented
        fallbacks; plus the day-of-year term at `day [B, T_out]` (days of the year) when the
        average has one (a float32 sum, as the forecaster's graph computes it)."""
        pred = self.slots(tod, dow)
        if self.year is None:
            return pred
        if day is None:
            raise ValueError(
                "this historical average has a day-of-year term: pass day= (the days of the year "
                "of the predicted steps, eala_jax.data.yearday.year_day)"
            )
        return pred + self.year_table()[np.asarray(day, np.int64)]


def _raw_inputs(batch: dict[str, np.ndarray], scaler: StandardScaler) -> np.ndarray:
    """A batch's inputs in the data's units, float64 ``[B, T_in, N]``, NaN where not observed."""
    return np.where(
        batch["x_mask"], scaler.inverse_transform(batch["x"].astype(np.float64)), np.nan
    )


def fit_historical_average(
    source: WindowSource,
    *,
    scaler: StandardScaler,
    steps_per_day: int,
    batch_size: int = EVAL_BATCH_SIZE,
    harmonics: int = 0,
) -> HistoricalAverage:
    """A `HistoricalAverage` fitted on every series step the windows of ``source`` see, once each
    (with a day-of-year term of ``harmonics`` harmonics when > 0).

    The steps are the windows' inputs and targets (for the training split: steps ``[0, b1)``, the
    steps the scaler is fitted on). A step's value comes from a target where one covers it (``y``,
    the data's own float32 values), else from an input (``x`` inverse-scaled with ``scaler``, equal
    to the data up to float32 rounding of the z-score). O(windows · (T_in + T_out) · N) time,
    O(steps · N) memory.
    """
    first = source.target_start(0) - source.in_steps
    span = source.target_start(len(source) - 1) + source.out_steps - first
    num_nodes = source[0]["y"].shape[1]
    values = np.full((span, num_nodes), np.nan)
    from_target = np.zeros(span, bool)
    time_of_day = np.zeros(span, np.int64)
    day_of_week = np.zeros(span, np.int64)
    seen = np.zeros(span, bool)
    lags = np.arange(-source.in_steps, 0)
    leads = np.arange(source.out_steps)
    for b, (batch, n) in enumerate(make_eval_loader(source, batch_size=batch_size)):
        starts = np.array([source.target_start(b * batch_size + r) for r in range(n)]) - first
        steps = starts[:, None] + lags[None, :]  # [n, T_in]
        x_raw = _raw_inputs(batch, scaler)[:n]
        keep = from_target[steps][..., None]  # a target already wrote these steps exactly
        values[steps] = np.where(keep, values[steps], x_raw)
        time_of_day[steps], day_of_week[steps] = batch["time_of_day"][:n], batch["day_of_week"][:n]
        seen[steps] = True
        steps = starts[:, None] + leads[None, :]  # [n, T_out]
        values[steps] = np.where(batch["y_mask"][:n], batch["y"][:n], np.nan)
        time_of_day[steps] = batch["y_time_of_day"][:n]
        day_of_week[steps] = batch["y_day_of_week"][:n]
        from_target[steps] = seen[steps] = True
    day = source.day_of_year[first : first + span][seen] if harmonics else None
    return HistoricalAverage.fit(
        values[seen],
        time_of_day[seen],
        day_of_week[seen],
        steps_per_day,
        day=day,
        harmonics=harmonics,
    )


def seasonal_profile(
    average: HistoricalAverage, source: WindowSource, *, weekly: bool = True
) -> np.ndarray:
    """float32 ``[T, N]``: ``average`` read at the calendar slot of every step of the series of
    ``source`` (the profile ``ForecastSplits.with_profile`` attaches). O(T·N).

    ``weekly=False`` reads the time-of-day means only (``average.day``, then the documented
    fallbacks), never the weekday slots. Use it where the training split holds a weekday on one day
    only: there a training window's weekday slot is its own target, so a model trained on that
    profile learns to copy it, and meets the time-of-day means at validation and test, whose
    weekdays training never saw (Los-loop: one week, five weekdays once each).
    """
    if not weekly:
        average = dataclasses.replace(average, week=np.full_like(average.week, np.nan))
    time_of_day, day_of_week = source.calendar
    day = None if average.year is None else source.day_of_year[None]
    return average.predict(time_of_day[None], day_of_week[None], day)[0]


def seasonal_periods(
    *, step_minutes: int, steps_per_day: int, train_steps: int
) -> tuple[tuple[str, int], ...]:
    """Candidate seasonal periods ``(name, steps)`` for the seasonal-naive baseline.

    A day for sub-daily steps; a week for steps under a week when the training split spans at
    least two weeks (so a week-ago value exists for most training and every validation window);
    a year (365 daily steps, 52 weekly ones) for daily or weekly data spanning two years. None may
    be left (then the baseline is not reported).
    """
    candidates = []
    if steps_per_day > 1:
        candidates.append(("day", steps_per_day))
    week = 7 * steps_per_day if step_minutes <= 1440 else 10080 // step_minutes
    if step_minutes < 10080 and 10080 % step_minutes == 0 and week > 1:
        if train_steps >= 2 * week:
            candidates.append(("week", week))
    if step_minutes == 1440 and train_steps >= 2 * 365:
        candidates.append(("year", 365))
    if step_minutes == 10080 and train_steps >= 2 * 52:
        candidates.append(("year", 52))
    return tuple(candidates)


def seasonal_naive_forecast(source: WindowSource, starts: np.ndarray, *, period: int) -> np.ndarray:
    """Value ``k·period`` steps before each target step, ``k = h // period + 1`` for lead ``h``
    (the latest one known at forecast time): float32 ``[B, out_steps, N]`` in the data's units,
    NaN where that value is missing or before the series. ``starts``: first target steps."""
    leads = np.arange(source.out_steps)
    offsets = leads - (leads // period + 1) * period
    return source.history(starts, offsets).astype(np.float32)


def _window_starts(source: WindowSource, batch_index: int, batch_size: int) -> np.ndarray:
    """First target steps of the rows of batch ``batch_index`` (padding rows repeat the last)."""
    rows = np.minimum(batch_index * batch_size + np.arange(batch_size), len(source) - 1)
    return source.first_target + rows


def _average_forecast(
    average: HistoricalAverage,
    source: WindowSource,
    batch: dict[str, np.ndarray],
    b: int,
    size: int,
) -> np.ndarray:
    """The historical average at the targets of batch ``b`` (of ``size`` rows) of ``source``."""
    day = None
    if average.year is not None:
        steps = _window_starts(source, b, size)[:, None] + np.arange(source.out_steps)
        day = source.day_of_year[steps]
    return average.predict(batch["y_time_of_day"], batch["y_day_of_week"], day)


def _score_seasonal(
    source: WindowSource, period: int, average: HistoricalAverage, batch_size: int
) -> dict[str, Any]:
    accumulator = MetricAccumulator()
    for b, (batch, _) in enumerate(make_eval_loader(source, batch_size=batch_size)):
        pred = seasonal_naive_forecast(source, _window_starts(source, b, batch_size), period=period)
        fallback = _average_forecast(average, source, batch, b, batch_size)
        accumulator.add(horizon_sums(fill_missing(pred, fallback), batch["y"], batch["y_mask"]))
    return accumulator.result()


def evaluate_baselines(
    splits: ForecastSplits,
    split_name: str,
    *,
    scaler: StandardScaler,
    batch_size: int = EVAL_BATCH_SIZE,
    average: HistoricalAverage | None = None,
) -> dict[str, dict[str, Any]]:
    """Last-value and historical-average metrics on the windows of ``splits[split_name]``.

    The historical average is fitted on the training split's windows only (`fit_historical_average`:
    steps ``[0, b1)``); the last value repeats each sensor's last observed input (inputs
    inverse-scaled with ``scaler``, missing ones known from ``x_mask``) and falls back to the
    historical average where a sensor has no observed input in the window. Metrics are those of the
    model (`horizon_sums` summed by `MetricAccumulator`, targets in the data's units, masked by
    ``y_mask``).

    Args:
      splits: the forecast splits (``make_forecast_splits``).
      split_name: ``"train"``, ``"val"`` or ``"test"``.
      scaler: the training scaler of ``splits`` (``splits.scaler``).
      batch_size: windows per batch (memory only; results do not depend on it beyond float
        rounding).
      average: the training split's historical average when already fitted (else
        `choose_average`'s, as a training run has it).

    The seasonal naive takes the value one period before each target (`seasonal_naive_forecast`,
    falling back to the historical average where it is missing); its period is the candidate of
    `seasonal_periods` with the lowest validation MAE (never chosen on test) and is named in its
    result (``"period"``, ``"period_steps"``, and ``"period_choice"``, the validation MAE of each
    candidate). With no candidate (daily data spanning under two weeks) it is left out.

    Returns:
      ``{"last_value": result, "historical_average": result, "seasonal_naive": result}``, each a
      ``MetricAccumulator().result()`` dict.
    """
    if not isinstance(splits, ForecastSplits):
        raise TypeError(f"splits must be a ForecastSplits, got {type(splits).__name__}")
    if split_name not in SPLIT_NAMES:
        raise ValueError(f"split_name must be one of {SPLIT_NAMES}, got {split_name!r}")
    if not isinstance(scaler, StandardScaler):
        raise TypeError(f"scaler must be a StandardScaler, got {type(scaler).__name__}")
    if average is None:  # as the training run chooses it (`choose_average`)
        average, _ = choose_average(splits, batch_size=batch_size)
    accumulators = {"last_value": MetricAccumulator(), "historical_average": MetricAccumulator()}
    source = splits[split_name]
    for b, (batch, _) in enumerate(make_eval_loader(source, batch_size=batch_size)):
        average_pred = _average_forecast(average, source, batch, b, batch_size)
        last_pred = fill_missing(
            last_value_forecast(_raw_inputs(batch, scaler), splits.out_steps), average_pred
        )
        for name, pred in (("last_value", last_pred), ("historical_average", average_pred)):
            accumulators[name].add(horizon_sums(pred, batch["y"], batch["y_mask"]))
    results = {name: acc.result() for name, acc in accumulators.items()}
    candidates = seasonal_periods(
        step_minutes=splits.step_minutes,
        steps_per_day=splits.steps_per_day,
        train_steps=splits.boundaries[0],
    )
    if candidates:
        choice = {
            name: _score_seasonal(splits.val, period, average, batch_size)["mae_mean"]
            for name, period in candidates
        }
        name, period = min(candidates, key=lambda c: choice[c[0]])
        seasonal = _score_seasonal(splits[split_name], period, average, batch_size)
        results["seasonal_naive"] = {
            **seasonal,
            "period": name,
            "period_steps": period,
            "period_choice": choice,
        }
    return results


def _score_average(source: WindowSource, average: HistoricalAverage, batch_size: int) -> float:
    """Mean MAE of the historical average over the windows of ``source``."""
    accumulator = MetricAccumulator()
    for b, (batch, _) in enumerate(make_eval_loader(source, batch_size=batch_size)):
        pred = _average_forecast(average, source, batch, b, batch_size)
        accumulator.add(horizon_sums(pred, batch["y"], batch["y_mask"]))
    return float(accumulator.result()["mae_mean"])


def choose_average(
    splits: ForecastSplits, *, batch_size: int = EVAL_BATCH_SIZE
) -> tuple[HistoricalAverage, str]:
    """The training split's historical average (`fit_historical_average`), with the smoothed
    day-of-year term (`YEAR_HARMONICS` harmonics) where the data is daily and its training split
    spans two years (`year_term_applies`) and the term lowers the historical average's validation
    MAE by `MIN_GAIN` (1 %) or more; and a log line saying what was compared. The candidates'
    validation MAE is kept in ``year_choice``. O(training + validation steps · N)."""
    plain = fit_historical_average(
        splits.train,
        scaler=splits.scaler,
        steps_per_day=splits.steps_per_day,
        batch_size=batch_size,
    )
    if not year_term_applies(
        step_minutes=splits.step_minutes,
        steps_per_day=splits.steps_per_day,
        train_steps=splits.boundaries[0],
    ):
        return plain, ""
    yearly = fit_historical_average(
        splits.train,
        scaler=splits.scaler,
        steps_per_day=splits.steps_per_day,
        batch_size=batch_size,
        harmonics=YEAR_HARMONICS,
    )
    choice = {
        "weekday": _score_average(splits.val, plain, batch_size),
        "weekday+day_of_year": _score_average(splits.val, yearly, batch_size),
    }
    use = choice["weekday+day_of_year"] < (1 - MIN_GAIN) * choice["weekday"]
    chosen = dataclasses.replace(yearly if use else plain, year_choice=choice)
    with_term, without = choice["weekday+day_of_year"], choice["weekday"]
    line = (
        f"Historical average: {'with' if use else 'without'} a day-of-year term "
        f"({YEAR_HARMONICS} harmonics of the year, fitted on the training split's "
        f"{splits.boundaries[0]} steps), chosen on validation: MAE {with_term:.4g} with it "
        f"against {without:.4g} with weekday means only (kept where it gains "
        f"{100 * MIN_GAIN:g} % or more)."
    )
    return chosen, line
