"""The smoothed day-of-year term of the historical average: its fit against a NumPy least-squares
reference, and the validation choice on daily series of three years (a yearly cycle: chosen) and of
one year (not tried)."""

from __future__ import annotations

import numpy as np
import pytest

from eala_jax.data import SpatioTemporalSeries, make_forecast_splits
from eala_jax.models import HistoricalAverage, evaluate_baselines, seasonal_periods
from eala_jax.models.baselines import choose_average, fit_historical_average
from eala_jax.models.year_term import fit_year_term, year_term_applies


def _reference_term(residual: np.ndarray, day: np.ndarray, harmonics: int) -> np.ndarray:
    """Per node, float64 `np.linalg.lstsq` on the valid rows of explicit cos / sin columns."""
    table = np.zeros((366, residual.shape[1]))
    grid = np.arange(366)
    for n in range(residual.shape[1]):
        ok = np.isfinite(residual[:, n])
        columns = lambda d: np.stack(
            [
                f(2 * np.pi * k * d / 365.25)
                for f in (np.cos, np.sin)
                for k in range(1, harmonics + 1)
            ],
            axis=1,
        )
        coef, *_ = np.linalg.lstsq(columns(day[ok]), residual[ok, n], rcond=None)
        table[:, n] = columns(grid) @ coef
    return table


def test_year_term_equals_the_least_squares_reference():
    rng = np.random.default_rng(7)
    t, n = 900, 5
    day = rng.integers(0, 366, t)
    residual = rng.normal(0, 2, (t, n)) + 3 * np.cos(2 * np.pi * day / 365.25)[:, None]
    residual[rng.random((t, n)) < 0.2] = np.nan
    got = fit_year_term(residual, day, harmonics=3)
    np.testing.assert_allclose(got, _reference_term(residual, day, 3), rtol=1e-9, atol=1e-10)
    # The yearly cosine is recovered (amplitude 3, noise averaged over ~720 points per node).
    np.testing.assert_allclose(got[0], 3.0, atol=0.5)
    np.testing.assert_allclose(got[183], -3.0, atol=0.5)


def test_year_term_is_zero_for_a_node_that_misses_part_of_the_year():
    rng = np.random.default_rng(0)
    day = np.arange(730) % 365
    residual = rng.normal(0, 1, (730, 2))
    residual[(day > 100) & (day < 200), 1] = np.nan  # node 1 has no reading in those months
    got = fit_year_term(residual, day, harmonics=2)
    assert np.abs(got[:, 0]).max() > 0
    np.testing.assert_array_equal(got[:, 1], 0.0)
    with pytest.raises(ValueError, match="residual must be \\[T, N\\] and day \\[T\\]"):
        fit_year_term(residual, day[:-1], harmonics=2)


def test_an_average_with_the_term_needs_the_days_of_the_year():
    values = np.arange(14.0)[:, None]
    tod, dow = np.zeros(14, int), np.arange(14) % 7
    ha = HistoricalAverage.fit(values, tod, dow, 1, day=np.arange(14) * 26, harmonics=1)
    assert ha.year is not None and ha.year.shape == (366, 1)
    with pytest.raises(ValueError, match="has a day-of-year term: pass day="):
        ha.predict(tod[None], dow[None])


def _daily_series(years: float, *, yearly: float = 8.0, seed: int = 0) -> SpatioTemporalSeries:
    """Daily values of 4 sensors: a yearly cycle (amplitude ``yearly``, a phase per sensor), a
    weekday effect, AR(1) noise and a few gaps; starts on a Monday."""
    rng = np.random.default_rng(seed)
    steps = int(years * 365)
    days = np.arange(steps)
    phase = rng.uniform(0, 2 * np.pi, 4)
    weekday = np.array([0.0, 1, 1, 1, 1, -3, -2])[days % 7][:, None]
    cycle = yearly * np.sin(2 * np.pi * days[:, None] / 365.25 + phase)
    noise = np.zeros((steps, 4))
    for t in range(1, steps):
        noise[t] = 0.6 * noise[t - 1] + rng.normal(0, 1, 4)
    values = (30 + weekday + cycle + noise).astype(np.float32)
    values[rng.random(values.shape) < 0.02] = np.nan
    return SpatioTemporalSeries(
        name="daily", values=values, steps_per_day=1, start_time="2018-01-01", step_minutes=1440
    )


def test_three_years_with_a_yearly_cycle_choose_the_term_and_beat_weekday_means():
    splits = make_forecast_splits(
        _daily_series(3.2), in_steps=28, out_steps=7, split=(0.7, 0.1, 0.2)
    )
    assert year_term_applies(step_minutes=1440, steps_per_day=1, train_steps=splits.boundaries[0])
    average, line = choose_average(splits)
    assert average.year is not None, line
    choice = average.year_choice
    assert choice["weekday+day_of_year"] < 0.5 * choice["weekday"], choice
    assert "with a day-of-year term" in line
    # On test too (the choice was made on validation): the baselines' table uses the term.
    with_term = evaluate_baselines(splits, "test", scaler=splits.scaler, average=average)
    weekday_only = fit_historical_average(splits.train, scaler=splits.scaler, steps_per_day=1)
    without = evaluate_baselines(splits, "test", scaler=splits.scaler, average=weekday_only)
    mae = lambda tables: tables["historical_average"]["mae_mean"]
    assert mae(with_term) < 0.6 * mae(without)
    # A year ago is a seasonal-naive candidate for daily data over two years.
    assert ("year", 365) in seasonal_periods(
        step_minutes=1440, steps_per_day=1, train_steps=splits.boundaries[0]
    )


def test_one_year_of_daily_data_does_not_try_the_term():
    splits = make_forecast_splits(_daily_series(1.2), in_steps=28, out_steps=7)
    assert not year_term_applies(
        step_minutes=1440, steps_per_day=1, train_steps=splits.boundaries[0]
    )
    average, line = choose_average(splits)
    assert average.year is None and average.year_choice is None and line == ""
    assert ("year", 365) not in seasonal_periods(
        step_minutes=1440, steps_per_day=1, train_steps=splits.boundaries[0]
    )


def test_without_a_yearly_cycle_validation_keeps_weekday_means():
    """Three years of weekday effect and noise only: the term fits noise, validation cannot tell
    the two apart (within 1 %), and the weekday means are kept."""
    splits = make_forecast_splits(
        _daily_series(3.2, yearly=0.0, seed=3), in_steps=28, out_steps=7, split=(0.7, 0.1, 0.2)
    )
    average, _ = choose_average(splits)
    choice = average.year_choice
    assert average.year is None, choice
    assert abs(choice["weekday+day_of_year"] - choice["weekday"]) < 0.01 * choice["weekday"]
