"""The synthetic hourly counts: mostly zeros, daily and weekly cycles, seeded, and its csv read back
through the generic path unchanged."""

import numpy as np

from eala_jax.data import load_dataset
from eala_jax.data.synthetic import make_synthetic_counts, write_series_csv


def test_counts_have_zeros_and_daily_and_weekly_cycles():
    series = make_synthetic_counts(num_nodes=40, num_days=14)
    v = series.values.astype(np.float64)
    assert v.shape == (14 * 24, 40) and series.step_minutes == 60
    assert np.array_equal(v, np.round(v)) and v.min() >= 0
    assert 0.7 < (v == 0).mean() < 0.9
    hour = np.arange(len(v)) % 24
    weekend = (np.arange(len(v)) // 24) % 7 >= 5  # starts on a Monday
    assert v[(hour >= 1) & (hour < 5)].sum() < 0.01 * v.sum()  # no service at night
    assert v[~weekend].mean() > 1.3 * v[weekend].mean()
    np.testing.assert_array_equal(v, make_synthetic_counts(num_nodes=40, num_days=14).values)


def test_csv_round_trip_through_the_generic_path(tmp_path):
    series = make_synthetic_counts(num_nodes=6, num_days=3, seed=2)
    write_series_csv(series, tmp_path / "counts.csv")
    back = load_dataset("generic", path=tmp_path / "counts.csv", time_column="time")
    np.testing.assert_array_equal(back.values, series.values)
    assert back.step_minutes == 60 and back.start_time == series.start_time
    assert back.node_ids == series.node_ids and back.missing.count == 0
