"""Bad input on the data path: what counts as missing and why, series and sensors with no
valid value, files given as (N, T) where (T, N) is expected."""

import warnings

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import (
    DataFileError,
    MissingDataWarning,
    SpatioTemporalSeries,
    load_dataset,
    make_forecast_splits,
)
from tests.data.fixtures import write_pems_npz

HOURLY = dict(step_minutes=60, start_time="2024-01-01T00:00")


def _count_data(rng, shape=(500, 6), zero_share=0.8):
    """Counts where most readings are true zeros (e.g. rare events per hour)."""
    counts = rng.poisson(4.0, size=shape).astype(np.float64) + 1.0
    counts[rng.random(shape) < zero_share] = 0.0
    return counts


# --- zeros are readings in a user's own file unless a marker is named --------------------------


def test_generic_file_keeps_its_zeros_by_default(tmp_path):
    counts = _count_data(np.random.default_rng(0))
    np.save(tmp_path / "counts.npy", counts)
    series = load_dataset("generic", path=tmp_path / "counts.npy", **HOURLY)
    np.testing.assert_array_equal(series.values, counts.astype(np.float32))
    # The scaler sees every training value, zeros included (independent float64 statistics).
    splits = make_forecast_splits(series)
    train = counts[: splits.boundaries[0]]
    assert splits.scaler.mean == pytest.approx(train.mean(), rel=1e-12)
    assert splits.scaler.std == pytest.approx(train.std(), rel=1e-12)
    missing = series.missing
    assert missing.count == 0 and missing.marker is None
    assert missing.zeros_kept == int((counts == 0).sum()) > 0.7 * counts.size
    summary = series.missing_summary()
    assert f"0 of {counts.size} values (0.00 %) treated as missing" in summary
    assert f"{int((counts == 0).sum())} zeros kept as readings" in summary


def test_missing_value_marker_is_opt_in_and_counted(tmp_path):
    rng = np.random.default_rng(1)
    counts = _count_data(rng)
    counts[rng.random(counts.shape) < 0.05] = np.nan
    counts[rng.random(counts.shape) < 0.03] = -1.0  # the file's own "no reading" code
    np.save(tmp_path / "counts.npy", counts)
    nan, code = np.isnan(counts), counts == -1.0
    series = load_dataset("generic", path=tmp_path / "counts.npy", null_value=-1, **HOURLY)
    np.testing.assert_array_equal(np.isnan(series.values), nan | code)
    assert (series.missing.nan, series.missing.marker_count) == (nan.sum(), code.sum())
    assert series.missing.marker == -1.0 and series.missing.zeros_kept == (counts == 0).sum()
    share = 100 * (nan.sum() + code.sum()) / counts.size
    assert (
        f"{nan.sum() + code.sum()} of {counts.size} values ({share:.2f} %) treated as missing: "
        f"{nan.sum()} NaN in the source, {code.sum()} equal to the missing-value marker -1 "
        "(null_value=-1.0 set by the caller)"
    ) in series.missing_summary()
    zero = load_dataset("generic", path=tmp_path / "counts.npy", null_value=0.0, **HOURLY)
    np.testing.assert_array_equal(np.isnan(zero.values), nan | (counts == 0))


def test_named_traffic_sets_keep_zeros_as_missing(tmp_path):
    data = write_pems_npz(tmp_path / "pems08" / "PEMS08.npz", num_steps=300, num_nodes=4)
    flow = data[:, :, 0]
    series = load_dataset("pems08", data_dir=tmp_path, check_shape=False)
    np.testing.assert_array_equal(np.isnan(series.values), flow == 0)
    assert series.missing.marker == 0.0 and series.missing.marker_count == (flow == 0).sum()
    assert "the published convention of pems08" in series.missing_summary()
    kept = load_dataset("pems08", data_dir=tmp_path, check_shape=False, null_value=None)
    assert not np.isnan(kept.values).any() and kept.missing.zeros_kept == (flow == 0).sum()


@pytest.mark.parametrize("bad", ["0", True, float("inf"), [0]])
def test_null_value_must_be_a_number_or_none(tmp_path, bad):
    np.save(tmp_path / "a.npy", np.ones((30, 2)))
    with pytest.raises(ValueError, match="null_value must be"):
        load_dataset("generic", path=tmp_path / "a.npy", null_value=bad, **HOURLY)


# --- no valid value: an error for the series or a split, a warning for a few sensors ------------


def test_all_nan_file_is_refused(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((100, 4), np.nan))
    with pytest.raises(ValueError, match=r"no valid value at all: 400 of 400 values .*nan\.npy"):
        load_dataset("generic", path=tmp_path / "nan.npy", **HOURLY)


def test_file_whose_every_value_is_the_marker_is_refused(tmp_path):
    data = write_pems_npz(tmp_path / "pems08" / "PEMS08.npz", num_steps=100, num_nodes=3)
    data[:, :, 0] = 0.0
    np.savez(tmp_path / "pems08" / "PEMS08.npz", data=data)
    with pytest.raises(ValueError, match="no valid value at all: .* equal to the missing-value"):
        load_dataset("pems08", data_dir=tmp_path, check_shape=False)


def test_sensors_never_valid_are_named_in_a_warning(tmp_path):
    rng = np.random.default_rng(2)
    values = rng.uniform(1.0, 9.0, size=(200, 5))
    values[:, 1] = np.nan
    values[:, 4] = 0.0  # never valid once 0 marks a missing reading
    values[::7, 3] = np.nan  # sometimes missing: not named
    frame = pd.DataFrame(values, columns=["a", "b", "c", "d", "e"])
    frame.insert(0, "time", pd.date_range("2024-01-01", periods=200, freq="h"))
    frame.to_csv(tmp_path / "s.csv", index=False)
    with pytest.warns(MissingDataWarning) as record:
        series = load_dataset("generic", path=tmp_path / "s.csv", time_column="time", null_value=0)
    message = str(record[0].message)
    assert "2 of 5 sensors have no valid value at all: index 1 (id 'b'), index 4 (id 'e')" in (
        message
    )
    np.testing.assert_array_equal(series.never_valid_nodes(), [1, 4])
    assert "2 of 5 sensors never valid" in series.missing_summary()
    make_forecast_splits(series)  # training can proceed on the other sensors


def test_fully_valid_file_gives_no_warning(tmp_path):
    np.save(tmp_path / "a.npy", np.random.default_rng(3).uniform(1, 2, size=(60, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        load_dataset("generic", path=tmp_path / "a.npy", **HOURLY)


def test_split_without_valid_target_names_the_marker(tmp_path):
    values = np.random.default_rng(4).uniform(1.0, 9.0, size=(300, 3))
    values[210:240] = 0.0  # the whole validation part (7:1:2 of 300 steps) is zeros
    np.save(tmp_path / "a.npy", values)
    series = load_dataset("generic", path=tmp_path / "a.npy", null_value=0.0, **HOURLY)
    with pytest.raises(
        ValueError,
        match=r"split 'val' .* no valid target .*90 equal to the missing-value marker 0",
    ):
        make_forecast_splits(series, in_steps=6, out_steps=6)


def test_series_built_by_hand_with_no_valid_value_is_refused():
    with pytest.raises(ValueError, match="no valid value at all"):
        SpatioTemporalSeries(
            name="t",
            values=np.full((10, 2), np.nan, np.float32),
            steps_per_day=24,
            start_time=np.datetime64("2024-01-01T00:00"),
            step_minutes=60,
        )


# --- (N, T) given where (T, N) is expected -------------------------------------------------------


def test_more_sensors_than_steps_is_ambiguous(tmp_path):
    by_sensor = np.random.default_rng(5).uniform(1.0, 9.0, size=(30, 400))  # 30 sensors, 400 steps
    np.save(tmp_path / "nt.npy", by_sensor)
    with pytest.raises(
        DataFileError,
        match=r"400 sensors: more sensors than steps.*transpose=True to read it as "
        r"\(T, N\) = \(400, 30\), or transpose=False",
    ):
        load_dataset("generic", path=tmp_path / "nt.npy", **HOURLY)
    series = load_dataset("generic", path=tmp_path / "nt.npy", transpose=True, **HOURLY)
    np.testing.assert_array_equal(series.values, by_sensor.T.astype(np.float32))
    as_given = load_dataset("generic", path=tmp_path / "nt.npy", transpose=False, **HOURLY)
    assert (as_given.num_steps, as_given.num_nodes) == (30, 400)


def test_three_channel_array_transposes_sensor_and_time_axes(tmp_path):
    data = np.random.default_rng(6).uniform(1.0, 9.0, size=(8, 50, 3))  # (N, T, C)
    np.savez(tmp_path / "nt.npz", data=data)
    series = load_dataset("generic", path=tmp_path / "nt.npz", channel=2, transpose=True, **HOURLY)
    np.testing.assert_array_equal(series.values, data[:, :, 2].T.astype(np.float32))


def test_timestamps_as_column_names_are_ambiguous(tmp_path):
    by_sensor = np.random.default_rng(7).uniform(1.0, 9.0, size=(3, 48))
    stamps = pd.date_range("2020-02-03 06:00", periods=48, freq="30min")
    pd.DataFrame(by_sensor, columns=stamps.astype(str)).to_csv(tmp_path / "nt.csv", index=False)
    with pytest.raises(DataFileError, match=r"column names look like timestamps .*transpose=True"):
        load_dataset("generic", path=tmp_path / "nt.csv")
    series = load_dataset("generic", path=tmp_path / "nt.csv", transpose=True)
    np.testing.assert_allclose(series.values, by_sensor.T, rtol=1e-6)
    assert series.start_time == np.datetime64("2020-02-03T06:00") and series.step_minutes == 30
    with pytest.raises(ValueError, match="step_minutes=60 but .* steps of 30 min"):
        load_dataset("generic", path=tmp_path / "nt.csv", transpose=True, step_minutes=60)


def test_transpose_refused_when_rows_carry_timestamps(tmp_path):
    frame = pd.DataFrame(np.ones((40, 2)), columns=["a", "b"])
    frame.insert(0, "date", pd.date_range("2020-01-01", periods=40, freq="h").astype(str))
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataFileError, match="transpose=True, but its rows carry timestamps"):
        load_dataset("generic", path=tmp_path / "t.csv", time_column="date", transpose=True)
    with pytest.raises(ValueError, match="transpose must be True, False or None"):
        load_dataset("generic", path=tmp_path / "t.csv", time_column="date", transpose="yes")
