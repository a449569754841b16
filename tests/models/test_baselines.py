"""Last-value and historical-average baselines, and their metrics on a split's windows against an
independent NumPy / pandas computation on the raw series."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import load_dataset, make_forecast_splits
from eala_jax.models import HistoricalAverage, evaluate_baselines, fill_missing, last_value_forecast
from eala_jax.models.baselines import fit_historical_average
from tests.data.fixtures import SHARED_DATA


def test_last_value_skips_missing_inputs():
    x = np.array([[[1.0, 5.0, np.nan], [2.0, np.nan, np.nan]]])  # [B=1, T=2, N=3]
    pred = last_value_forecast(x, out_steps=3)
    assert pred.shape == (1, 3, 3)
    np.testing.assert_array_equal(pred[0, :, 0], 2.0)
    np.testing.assert_array_equal(pred[0, :, 1], 5.0)
    assert np.all(np.isnan(pred[0, :, 2]))
    np.testing.assert_array_equal(fill_missing(pred, 7.0)[0, :, 2], 7.0)


def test_historical_average_week_slot_then_time_of_day_fallback():
    spd = 4
    # Two days: Monday (0) and Tuesday (1); sensor value = 10 * weekday + slot.
    tod = np.tile(np.arange(spd), 2)
    dow = np.repeat([0, 1], spd)
    values = (10.0 * dow + tod)[:, None].repeat(2, axis=1)
    values[1, 1] = np.nan  # a missing reading is skipped
    ha = HistoricalAverage.fit(values, tod, dow, spd)
    pred = ha.predict(np.array([[1, 2]]), np.array([[1, 5]]))
    # Seen slot: Tuesday slot 1 = 11. Unseen weekday (Saturday): mean over days of slot 2 = (2 + 12)
    # / 2.
    np.testing.assert_allclose(pred[0, 0], [11.0, 11.0])
    np.testing.assert_allclose(pred[0, 1], [7.0, 7.0])
    # Monday slot 1 of sensor 1 is missing, so that slot falls back to the time-of-day mean
    # (Tuesday's 11).
    np.testing.assert_allclose(ha.predict(np.array([[1]]), np.array([[0]]))[0, 0], [1.0, 11.0])


def _reference(series, splits, split_name):
    """The baselines from the raw series in float64, by other means than the code under test:
    the historical average by pandas group-by over training steps [0, b1), the last value and the
    seasonal naive by plain loops over windows and sensors, the metrics by their formulas."""
    in_steps, out_steps = splits.in_steps, splits.out_steps
    b1 = splits.boundaries[0]
    values = series.values.astype(np.float64)
    stamps = pd.date_range(
        pd.Timestamp(series.start_time), periods=series.num_steps, freq=f"{series.step_minutes}min"
    )
    tod = ((stamps.hour * 60 + stamps.minute) // series.step_minutes).to_numpy()
    dow = stamps.dayofweek.to_numpy()
    train = pd.DataFrame(values[:b1])
    week = train.groupby([dow[:b1], tod[:b1]]).mean()  # skips NaN
    day = train.groupby(tod[:b1]).mean()
    sensor, overall = train.mean(), np.nanmean(values[:b1])
    source = splits[split_name]
    starts = [source.target_start(i) for i in range(len(source))]
    num_nodes = series.num_nodes
    ha_step = {}  # target step -> historical average [N]
    for t in range(starts[0], starts[-1] + out_steps):
        key = (dow[t], tod[t])
        row = week.loc[key] if key in week.index else pd.Series(np.nan, index=train.columns)
        ha_step[t] = row.fillna(day.loc[tod[t]]).fillna(sensor).fillna(overall).to_numpy()
    ha = np.stack([[ha_step[s + h] for h in range(out_steps)] for s in starts])
    lv = np.empty_like(ha)
    no_input = 0
    for w, s in enumerate(starts):
        for n in range(num_nodes):
            observed = np.flatnonzero(~np.isnan(values[s - in_steps : s, n]))
            if len(observed):
                lv[w, :, n] = values[s - in_steps + observed[-1], n]
            else:
                lv[w, :, n] = ha[w, :, n]
                no_input += 1
    # Seasonal naive: the value a day (288 steps) before each target, k days for lead h >= 288;
    # NaN or before the series -> the historical average.
    period = series.steps_per_day
    sn = np.empty_like(ha)
    for w, s in enumerate(starts):
        for h in range(out_steps):
            back = s + h - (h // period + 1) * period
            row = values[back] if back >= 0 else np.full(num_nodes, np.nan)
            sn[w, h] = np.where(np.isnan(row), ha[w, h], row)
    target = np.stack([values[s : s + out_steps] for s in starts])
    valid = ~np.isnan(target)
    out = {}
    for name, pred in (("last_value", lv), ("historical_average", ha), ("seasonal_naive", sn)):
        err = np.where(valid, np.abs(pred - target), 0.0)
        pct_ok = valid & (np.abs(np.nan_to_num(target)) >= 1e-3)
        pct = np.where(pct_ok, err / np.where(pct_ok, np.abs(target), 1.0), 0.0)
        out[name] = {
            "mae": err.sum((0, 2)) / valid.sum((0, 2)),
            "rmse": np.sqrt((err**2).sum((0, 2)) / valid.sum((0, 2))),
            "mape": 100 * pct.sum((0, 2)) / pct_ok.sum((0, 2)),
            "mae_mean": err.sum() / valid.sum(),
            "rmse_mean": np.sqrt((err**2).sum() / valid.sum()),
            "mape_mean": 100 * pct.sum() / pct_ok.sum(),
            "count": valid.sum((0, 2)),
        }
    return out, no_input


def _check_against_reference(series, splits, split_name, **kwargs):
    got = evaluate_baselines(splits, split_name, scaler=splits.scaler, **kwargs)
    want, no_input = _reference(series, splits, split_name)
    assert set(got) == {"last_value", "historical_average", "seasonal_naive"}
    # A few days at 5 min: a day is the only period the training span allows.
    assert got["seasonal_naive"]["period"] == "day" and set(got["seasonal_naive"]["period_choice"])
    for name in want:
        for key, value in want[name].items():
            np.testing.assert_allclose(got[name][key], value, rtol=2e-5, err_msg=f"{name} {key}")
    return no_input


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_baselines_match_the_raw_series_reference(seed):
    rng = np.random.default_rng(seed)
    # 4 days from a Monday, 7:1:2: the test windows fall on Thursday, a weekday the training steps
    # never see, so the historical average falls back to the time-of-day means; long missing
    # stretches leave some sensors without any observed input (the last value falls back too).
    series = load_dataset(
        "synthetic",
        seed=seed,
        num_nodes=6,
        num_days=4,
        missing_stretches_per_node=4.0,
    )
    in_steps, out_steps = int(rng.integers(3, 13)), int(rng.integers(2, 13))
    splits = make_forecast_splits(series, in_steps=in_steps, out_steps=out_steps)
    for split_name in ("val", "test"):
        no_input = _check_against_reference(series, splits, split_name, batch_size=37)
        if split_name == "test":
            assert no_input > 0  # the fallback was exercised


@pytest.mark.skipif(not (SHARED_DATA / "los_loop").is_dir(), reason="Los-loop files absent")
def test_evaluate_baselines_on_los_loop_match_the_raw_series_reference():
    series = load_dataset("los_loop")
    splits = make_forecast_splits(series, in_steps=12, out_steps=12)
    _check_against_reference(series, splits, "test")


def test_historical_average_sees_the_training_steps_only():
    series = load_dataset("synthetic", num_nodes=3, num_days=3)
    changed = series.values.copy()
    b1 = make_forecast_splits(series).boundaries[0]
    changed[b1:] += 100.0  # val and test steps only
    other = dataclasses.replace(series, values=changed)
    fits = []
    for s in (series, other):
        splits = make_forecast_splits(s)
        fits.append(fit_historical_average(splits.train, scaler=splits.scaler, steps_per_day=288))
    np.testing.assert_array_equal(fits[0].week, fits[1].week)
    assert fits[0].overall == fits[1].overall
    # Every training step counts, inputs included: step 0 (Monday 00:00, the only one in three
    # days) is an input of the first window and never a target.
    assert np.isfinite(fits[0].week[0, 0]).all()
    np.testing.assert_allclose(fits[0].week[0, 0], series.values[0], rtol=1e-5)


def test_evaluate_baselines_bad_input():
    splits = make_forecast_splits(load_dataset("synthetic", num_nodes=3, num_days=3))
    with pytest.raises(ValueError, match="split_name must be one of .* got 'tset'"):
        evaluate_baselines(splits, "tset", scaler=splits.scaler)
    with pytest.raises(TypeError, match="scaler must be a StandardScaler"):
        evaluate_baselines(splits, "test", scaler=(1.0, 2.0))
    with pytest.raises(TypeError, match="splits must be a ForecastSplits"):
        evaluate_baselines(splits.test, "test", scaler=splits.scaler)


def _hourly_series(values: np.ndarray, start: str = "2024-01-01T00:00"):
    from eala_jax.data import SpatioTemporalSeries

    return SpatioTemporalSeries(
        name="hand",
        values=values.astype(np.float32),
        steps_per_day=24,
        start_time=np.datetime64(start),
        step_minutes=60,
    )


def test_seasonal_periods_follow_the_step_and_the_training_span():
    from eala_jax.models import seasonal_periods

    assert seasonal_periods(step_minutes=5, steps_per_day=288, train_steps=288 * 13) == (
        ("day", 288),
    )
    assert seasonal_periods(step_minutes=60, steps_per_day=24, train_steps=24 * 14) == (
        ("day", 24),
        ("week", 168),
    )
    assert seasonal_periods(step_minutes=1440, steps_per_day=1, train_steps=13) == ()
    assert seasonal_periods(step_minutes=1440, steps_per_day=1, train_steps=14) == (("week", 7),)
    assert seasonal_periods(step_minutes=10080, steps_per_day=1, train_steps=104) == (("year", 52),)


def test_seasonal_naive_reads_k_periods_back_and_picks_the_week_on_validation():
    from eala_jax.models import seasonal_naive_forecast

    rng = np.random.default_rng(3)
    num_days, nodes = 35, 3
    hours = np.arange(24 * num_days)
    weekday = (hours // 24) % 7  # 2024-01-01 is a Monday
    # A weekly pattern (weekends differ) plus a little noise: a week back beats a day back.
    values = 10 + 5 * (weekday[:, None] >= 5) + np.sin(hours / 24 * 2 * np.pi)[:, None]
    values = values + rng.normal(0, 0.1, (len(hours), nodes))
    values[rng.random(values.shape) < 0.05] = np.nan
    series = _hourly_series(values)
    splits = make_forecast_splits(series, in_steps=3, out_steps=30)  # leads 24.. look 2 days back
    source = splits.test
    starts = source.first_target + np.arange(len(source))
    got = seasonal_naive_forecast(source, starts, period=24)
    for w, s in enumerate(starts[:40]):
        for h in range(30):
            back = s + h - (24 if h < 24 else 48)
            np.testing.assert_array_equal(got[w, h], values[back].astype(np.float32))
    result = evaluate_baselines(splits, "test", scaler=splits.scaler)["seasonal_naive"]
    assert result["period"] == "week" and result["period_steps"] == 168
    assert result["period_choice"]["week"] < result["period_choice"]["day"]
    with pytest.raises(ValueError, match="offsets must be negative"):
        source.history(starts, np.array([0]))
