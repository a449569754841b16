"""Last-value and historical-average baselines."""

import numpy as np

from eala_jax.models import HistoricalAverage, fill_missing, last_value_forecast, target_slots


def test_last_value_skips_missing_inputs():
    x = np.array([[[1.0, 5.0, np.nan], [2.0, np.nan, np.nan]]])  # [B=1, T=2, N=3]
    pred = last_value_forecast(x, out_steps=3)
    assert pred.shape == (1, 3, 3)
    np.testing.assert_array_equal(pred[0, :, 0], 2.0)
    np.testing.assert_array_equal(pred[0, :, 1], 5.0)
    assert np.all(np.isnan(pred[0, :, 2]))
    np.testing.assert_array_equal(fill_missing(pred, 7.0)[0, :, 2], 7.0)


def test_target_slots_wrap_midnight_and_week():
    tod, dow = target_slots(np.array([22 / 24]), np.array([6]), out_steps=3, steps_per_day=24)
    np.testing.assert_array_equal(tod, [[23, 0, 1]])
    np.testing.assert_array_equal(dow, [[6, 0, 0]])


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
