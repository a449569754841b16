"""The synthetic set: seeded, and shaped like traffic (daily and weekly profile, incidents, gaps,
graph)."""

import numpy as np
import pytest

from eala_jax.data import load_dataset, make_synthetic_series


def test_seeded_and_small_by_default():
    a, b = load_dataset("synthetic"), make_synthetic_series(seed=0)
    assert a.name == "synthetic" and a.values.shape == (14 * 288, 20)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.adjacency, b.adjacency)
    c = load_dataset("synthetic", seed=1)
    assert not np.array_equal(np.nan_to_num(a.values), np.nan_to_num(c.values))


def test_traffic_like_structure():
    series = make_synthetic_series(seed=2, num_days=14)
    values = series.values
    hour = series.time_of_day() / 12  # 12 steps of 5 min an hour
    dow = series.day_of_week()
    weekday, weekend = dow < 5, dow >= 5
    night = (hour >= 2) & (hour < 4)
    rush = (hour >= 7.5) & (hour < 8.5)
    # Daily profile: weekday morning rush is slower than the night; weekends dip less (weekly
    # profile).
    weekday_dip = np.nanmean(values[weekday & night]) - np.nanmean(values[weekday & rush])
    weekend_dip = np.nanmean(values[weekend & night]) - np.nanmean(values[weekend & rush])
    assert weekday_dip > 5.0 and weekend_dip < 0.6 * weekday_dip
    # Missing stretches written as zeros are read as NaN, in runs of at least an hour.
    missing = np.isnan(values)
    assert 0.001 < missing.mean() < 0.2
    node = int(np.argmax(missing.sum(0)))
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, missing[:, node].astype(int), 0])))[::2]
    assert runs.min() >= 12
    # Zeros stay values when null_value=None.
    raw = make_synthetic_series(seed=2, null_value=None).values
    assert not np.isnan(raw).any() and (raw == 0).sum() == missing.sum()
    # Graph: symmetric, no self loops, every node linked.
    adjacency = series.adjacency
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert np.all(np.diag(adjacency) == 0) and np.all(adjacency.sum(1) > 0)


def test_incidents_spread_to_neighbours():
    quiet = make_synthetic_series(
        seed=4, incidents_per_day=0.0, noise_std=0.0, missing_stretches_per_node=0.0
    )
    busy = make_synthetic_series(
        seed=4, incidents_per_day=20.0, noise_std=0.0, missing_stretches_per_node=0.0
    )
    drop = quiet.values - busy.values  # same profile, same graph; the difference is congestion
    assert drop.min() >= -1e-4 and drop.max() > 5.0
    t, node = np.unravel_index(np.argmax(drop), drop.shape)
    neighbours = np.flatnonzero(busy.adjacency[node] > 0)
    later = drop[t + 1 : t + 7, neighbours].max()
    assert later > 0.05  # the shock reaches the graph neighbours within half an hour


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed must be an integer"):
        make_synthetic_series(seed=1.5)
    with pytest.raises(ValueError, match="step_minutes=7 must divide a day"):
        make_synthetic_series(step_minutes=7)
