"""Windows, features and chronological splits, checked against hand computations."""

import numpy as np
import pytest

from eala_jax.data import SpatioTemporalSeries, make_forecast_splits

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
    assert window["x"].shape == (3, N, 3) and window["x"].dtype == np.float32
    assert (
        window["y"].shape == (2, N)
        and window["y"].dtype == np.float32
        and window["y_mask"].dtype == bool
    )
    expected_z = (np.array([[20, 21], [30, 31], [40, 41]]) - mean) / std
    np.testing.assert_allclose(window["x"][..., 0], expected_z, rtol=1e-5)
    # Step 2 is 2024-01-08 00:00 (Monday 00:00), steps 3, 4 are 00:15 and 00:30 of Monday.
    np.testing.assert_allclose(window["x"][:, 0, 1], [0.0, 15 / 1440, 30 / 1440], atol=1e-7)
    np.testing.assert_array_equal(window["x"][:, :, 2], np.zeros((3, N)))
    first = splits.train[0]  # inputs steps 0, 1 (Sunday 23:30, 23:45) and 2 (Monday)
    np.testing.assert_allclose(first["x"][:, 1, 1], [1410 / 1440, 1425 / 1440, 0.0], atol=1e-7)
    np.testing.assert_array_equal(first["x"][:, 1, 2], [6, 6, 0])
    # Targets: raw values, 0 where missing, and the mask.
    np.testing.assert_array_equal(window["y"], [[50, 0], [60, 61]])
    np.testing.assert_array_equal(window["y_mask"], [[True, False], [True, True]])
    # A missing input is 0 after scaling (step 5, node 1 is an input of s = 7).
    later = splits.train[4]
    assert later["x"][1, 1, 0] == 0.0 and later["x"][1, 0, 0] == pytest.approx(
        (50 - mean) / std, rel=1e-5
    )
    # The val split's first window reaches back into the training steps for its inputs.
    val0 = splits.val[0]
    np.testing.assert_allclose(
        val0["x"][:, 0, 0], (np.array([170, 180, 190]) - mean) / std, rtol=1e-5
    )
    np.testing.assert_array_equal(val0["y"], [[200, 201], [210, 211]])


def test_no_leakage_into_scaler_or_training_windows():
    series = _series()
    changed = series.values.copy()
    changed[20:] *= 1000.0  # val and test values change wildly
    a = make_forecast_splits(series, in_steps=3, out_steps=2)
    b = make_forecast_splits(_series(changed), in_steps=3, out_steps=2)
    assert a.scaler == b.scaler
    for i in range(len(a.train)):
        for key in ("x", "y", "y_mask"):
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
