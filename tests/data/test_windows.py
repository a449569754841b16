"""Windows, features and chronological splits, checked against hand computations."""

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import (
    SpatioTemporalSeries,
    load_dataset,
    make_forecast_splits,
    make_loader,
    make_synthetic_series,
)
from tests.data.fixtures import needs_shared

T, N = 40, 2


def _series(values=None, split=(0.5, 0.25, 0.25)):
    if values is None:
        values = (10.0 * np.arange(T)[:, None] + np.arange(N)[None, :]).astype(np.float32)
        values[5, 1] = np.nan
        values[22, 0] = np.nan
    return SpatioTemporalSeries(
        name="hand",
        values=values,
        steps_per_day=96,
        start_time=np.datetime64("2024-01-07T23:30"),  # a Sunday
        step_minutes=15,
        default_split=split,
    )


def test_split_counts_and_boundaries():
    splits = make_forecast_splits(_series(), in_steps=3, out_steps=2)
    # b1 = 20, b2 = 30, end = 40; a window belongs to the split holding all its targets [s, s + 2).
    assert splits.boundaries == (20, 30, 40)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (
        16,
        9,
        9,
    )  # s in [3,18], [20,28], [30,38]
    assert [
        splits.train.target_start(0),
        splits.val.target_start(0),
        splits.test.target_start(8),
    ] == [3, 20, 38]
    assert (
        splits.num_nodes == N
        and splits.steps_per_day == 96
        and splits.in_steps == 3
        and splits.out_steps == 2
    )
    with pytest.raises(IndexError):
        splits.train[16]


def test_window_contents_match_hand_computation():
    series = _series()
    splits = make_forecast_splits(series, in_steps=3, out_steps=2)
    train_values = series.values[:20].astype(np.float64)
    mean, std = np.nanmean(train_values), np.nanstd(train_values)
    window = splits.train[2]  # s = 5: inputs steps 2, 3, 4; targets 5, 6
    expected_z = (np.array([[20, 21], [30, 31], [40, 41]]) - mean) / std
    np.testing.assert_allclose(window["x"], expected_z, rtol=1e-5)
    np.testing.assert_array_equal(window["x_mask"], np.ones((3, N), bool))
    # Step 2 is 2024-01-08 00:00 (Monday, step 0 of the day), steps 3, 4 are 00:15 and 00:30.
    np.testing.assert_array_equal(window["time_of_day"], [0, 1, 2])
    np.testing.assert_array_equal(window["day_of_week"], [0, 0, 0])
    np.testing.assert_array_equal(window["y_time_of_day"], [3, 4])
    np.testing.assert_array_equal(window["y_day_of_week"], [0, 0])
    first = splits.train[0]  # inputs steps 0, 1 (Sunday 23:30, 23:45: steps 94, 95) and 2 (Monday)
    np.testing.assert_array_equal(first["time_of_day"], [94, 95, 0])
    np.testing.assert_array_equal(first["day_of_week"], [6, 6, 0])
    # Targets: raw values, 0 where missing, and the mask.
    np.testing.assert_array_equal(window["y"], [[50, 0], [60, 61]])
    np.testing.assert_array_equal(window["y_mask"], [[True, False], [True, True]])
    # A missing input is 0 after scaling and False in x_mask (step 5, node 1 is an input of s = 7).
    later = splits.train[4]
    assert later["x"][1, 1] == 0.0 and later["x"][1, 0] == pytest.approx((50 - mean) / std, 1e-5)
    np.testing.assert_array_equal(later["x_mask"], [[True, True], [True, False], [True, True]])
    # The val split's first window reaches back into the training steps for its inputs.
    val0 = splits.val[0]
    np.testing.assert_allclose(val0["x"][:, 0], (np.array([170, 180, 190]) - mean) / std, 1e-5)
    np.testing.assert_array_equal(val0["y"], [[200, 201], [210, 211]])


CONTRACT = {  # key: (dtype, shape in (in_steps, out_steps, N) terms)
    "x": (np.float32, ("in", "N")),
    "x_mask": (np.bool_, ("in", "N")),
    "time_of_day": (np.int32, ("in",)),
    "day_of_week": (np.int32, ("in",)),
    "y": (np.float32, ("out", "N")),
    "y_mask": (np.bool_, ("out", "N")),
    "y_time_of_day": (np.int32, ("out",)),
    "y_day_of_week": (np.int32, ("out",)),
}


def _pandas_calendar(series):
    """Step of the day and weekday of every step, from pandas' own timestamps (independent)."""
    stamps = pd.date_range(
        pd.Timestamp(series.start_time), periods=series.num_steps, freq=f"{series.step_minutes}min"
    )
    return (stamps.hour * 60 + stamps.minute) // series.step_minutes, stamps.dayofweek


@pytest.mark.parametrize("seed", [0, 1])
def test_every_window_follows_the_batch_contract(seed):
    rng = np.random.default_rng(seed)
    in_steps, out_steps = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    series = make_synthetic_series(
        seed=seed, num_nodes=5, num_days=3, missing_stretches_per_node=3.0
    )
    assert np.isnan(series.values).any()
    splits = make_forecast_splits(series, in_steps=in_steps, out_steps=out_steps)
    values = series.values.astype(np.float64)
    tod, dow = _pandas_calendar(series)
    sizes = {"in": in_steps, "out": out_steps, "N": series.num_nodes}
    for name in ("train", "val", "test"):
        source = splits[name]
        for i in range(len(source)):
            window, s = source[i], source.target_start(i)
            assert set(window) == set(CONTRACT)
            for key, (dtype, shape) in CONTRACT.items():
                assert window[key].dtype == dtype, key
                assert window[key].shape == tuple(sizes[d] for d in shape), key
            inputs, targets = values[s - in_steps : s], values[s : s + out_steps]
            np.testing.assert_array_equal(window["x_mask"], ~np.isnan(inputs))
            np.testing.assert_array_equal(window["y_mask"], ~np.isnan(targets))
            z = (inputs - splits.scaler.mean) / splits.scaler.std
            np.testing.assert_allclose(window["x"], np.nan_to_num(z, nan=0.0), rtol=0, atol=1e-5)
            np.testing.assert_array_equal(window["y"], np.nan_to_num(targets, nan=0.0))
            np.testing.assert_array_equal(window["time_of_day"], tod[s - in_steps : s])
            np.testing.assert_array_equal(window["day_of_week"], dow[s - in_steps : s])
            np.testing.assert_array_equal(window["y_time_of_day"], tod[s : s + out_steps])
            np.testing.assert_array_equal(window["y_day_of_week"], dow[s : s + out_steps])
            assert 0 <= window["time_of_day"].min() and window["time_of_day"].max() < 288
            assert 0 <= window["day_of_week"].min() and window["day_of_week"].max() < 7


def test_windows_are_copies():
    splits = make_forecast_splits(_series(), in_steps=3, out_steps=2)
    window = splits.train[2]
    for value in window.values():
        value[...] = 0
    again = splits.train[2]
    assert again["y"][1, 1] == 61 and again["time_of_day"][2] == 2 and again["x_mask"].all()


@needs_shared
def test_los_loop_calendar_integers_equal_the_series_calendar():
    series = load_dataset("los_loop")
    splits = make_forecast_splits(series, in_steps=12, out_steps=12)
    tod, dow = _pandas_calendar(series)
    # The float features the windows carried before (minutes / 1440 in float32; weekday as a
    # float), decoded as the model did: round(f * steps_per_day) % steps_per_day.
    minutes = (tod * 5).to_numpy()
    old_tod = np.round((minutes / 1440).astype(np.float32) * np.float32(288)).astype(int) % 288
    np.testing.assert_array_equal(old_tod, tod)
    for name in ("train", "val", "test"):
        source = splits[name]
        batch = next(iter(make_loader(source, batch_size=len(source), shuffle=False)))
        starts = np.array([source.target_start(i) for i in range(len(source))])
        steps = starts[:, None] + np.arange(-12, 0)[None, :]
        np.testing.assert_array_equal(batch["time_of_day"], tod.to_numpy()[steps])
        np.testing.assert_array_equal(batch["day_of_week"], dow.to_numpy()[steps])
        np.testing.assert_array_equal(batch["y_time_of_day"], tod.to_numpy()[steps + 12])
        np.testing.assert_array_equal(batch["y_day_of_week"], dow.to_numpy()[steps + 12])
    first = splits.train[0]  # inputs from step 0: 2012-03-01 00:00, a Thursday
    assert first["time_of_day"][0] == 0 and first["day_of_week"][0] == 3


def test_no_leakage_into_scaler_or_training_windows():
    series = _series()
    changed = series.values.copy()
    changed[20:] *= 1000.0  # val and test values change wildly
    a = make_forecast_splits(series, in_steps=3, out_steps=2)
    b = make_forecast_splits(_series(changed), in_steps=3, out_steps=2)
    assert a.scaler == b.scaler
    for i in range(len(a.train)):
        for key in CONTRACT:
            np.testing.assert_array_equal(a.train[i][key], b.train[i][key])
    last = a.train.target_start(len(a.train) - 1)
    assert last + 2 <= 20  # no training target beyond b1
    assert a.scaler.mean == pytest.approx(np.nanmean(series.values[:20].astype(np.float64)))


def test_default_and_explicit_split():
    series = _series(split=(0.6, 0.2, 0.2))
    assert make_forecast_splits(series, in_steps=2, out_steps=1).boundaries == (24, 32, 40)
    assert make_forecast_splits(
        series, in_steps=2, out_steps=1, split=(0.7, 0.1, 0.2)
    ).boundaries == (28, 32, 40)


def test_bad_windows_and_splits_raise_clear_errors():
    series = _series()
    with pytest.raises(ValueError, match="longer than the series"):
        make_forecast_splits(series, in_steps=30, out_steps=12)
    with pytest.raises(ValueError, match="in_steps must be a positive integer"):
        make_forecast_splits(series, in_steps=0)
    with pytest.raises(ValueError, match="split 'val' .* has no window"):
        make_forecast_splits(series, in_steps=3, out_steps=3, split=(0.9, 0.05, 0.05))
    with pytest.raises(ValueError, match="split must be three fractions"):
        make_forecast_splits(series, split=(0.5, 0.5))
    values = series.values.copy()
    values[20:30] = np.nan
    with pytest.raises(ValueError, match="split 'val' .* has no valid target"):
        make_forecast_splits(_series(values), in_steps=3, out_steps=2)
    with pytest.raises(TypeError, match="SpatioTemporalSeries"):
        make_forecast_splits(series.values)
