"""Synthetic traffic speeds on a random geometric graph: the embedded default that needs no files.

Clearly synthetic (its name is ``"synthetic"``), seeded and small by default (20 nodes, 14 days at 5
min = 4032 steps), so a short training run on it is fast. The signal is a speed in mph-like units:

  speed = free-flow level x (1 - daily rush-hour dips, weaker at weekends) - congestion + noise

where congestion comes from random incidents that spread to neighbours through the graph and decay
over time (``c_t = decay * c_{t-1} @ P + incidents_t``, ``P`` the row-normalised graph), and the
noise is AR(1) per node. Missing stretches are written as zeros, the convention of the real files,
and then read as missing like any other set.
"""

from __future__ import annotations

import numpy as np

from eala_jax.data.series import MINUTES_PER_DAY, SpatioTemporalSeries, mark_missing


def random_geometric_graph(
    num_nodes: int, rng: np.random.Generator, *, radius: float = 0.3
) -> np.ndarray:
    """float32 ``[N, N]`` symmetric Gaussian-kernel weights of nodes within ``radius`` in the unit
    square
    (every node linked at least to its nearest neighbour), zero diagonal."""
    points = rng.uniform(size=(num_nodes, 2))
    dist = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    np.fill_diagonal(dist, np.inf)
    linked = dist < radius
    nearest = np.argmin(dist, axis=1)
    linked[np.arange(num_nodes), nearest] = True
    linked |= linked.T
    weights = np.where(linked, np.exp(-np.square(dist / radius)), 0.0)
    return weights.astype(np.float32)


def make_synthetic_series(
    *,
    seed: int = 0,
    num_nodes: int = 20,
    num_days: int = 14,
    step_minutes: int = 5,
    start_time: str = "2024-01-01T00:00",
    incidents_per_day: float = 1.5,
    noise_std: float = 1.5,
    missing_stretches_per_node: float = 1.0,
    null_value: float | None = 0.0,
) -> SpatioTemporalSeries:
    """Generates the synthetic set; same arguments, same array.

    Args:
      seed: seed of ``numpy.random.default_rng``.
      num_nodes, num_days, step_minutes: size (``T = num_days * 1440 / step_minutes``).
      start_time: time of step 0 (default a Monday, midnight).
      incidents_per_day: mean number of incidents per day over the whole network.
      noise_std: standard deviation of the AR(1) noise (mph).
      missing_stretches_per_node: mean number of missing stretches (1-12 h, written as zeros) per
        node.
      null_value: value read as missing (the stretches are zeros, so keep 0.0 to see them as
        missing).

    Returns:
      ``SpatioTemporalSeries`` named ``"synthetic"``, values ``[T, num_nodes]``, with its graph.
    """
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"synthetic: seed must be an integer, got {seed!r}")
    if num_nodes < 2 or num_days < 1:
        raise ValueError(
            f"synthetic: need num_nodes >= 2 and num_days >= 1, got {num_nodes}, {num_days}"
        )
    if step_minutes < 1 or MINUTES_PER_DAY % step_minutes:
        raise ValueError(f"synthetic: step_minutes={step_minutes} must divide a day")
    rng = np.random.default_rng(seed)
    steps_per_day = MINUTES_PER_DAY // step_minutes
    num_steps = num_days * steps_per_day
    adjacency = random_geometric_graph(num_nodes, rng)

    start = np.datetime64(start_time, "m")
    times = start + np.arange(num_steps) * np.timedelta64(step_minutes, "m")
    hours = (times - times.astype("datetime64[D]")).astype(np.int64) / 60.0
    weekday = (times.astype("datetime64[D]").astype(np.int64) + 3) % 7
    weekend = (weekday >= 5)[:, None]

    free_flow = rng.uniform(50.0, 70.0, size=num_nodes)
    am_depth = rng.uniform(0.15, 0.45, size=num_nodes)
    pm_depth = rng.uniform(0.2, 0.5, size=num_nodes)
    am_peak = 8.0 + rng.normal(0.0, 0.3, size=num_nodes)
    pm_peak = 17.5 + rng.normal(0.0, 0.3, size=num_nodes)
    h = hours[:, None]
    dips = am_depth * np.exp(-0.5 * np.square((h - am_peak) / 1.0)) + pm_depth * np.exp(
        -0.5 * np.square((h - pm_peak) / 1.3)
    )
    dips = np.where(weekend, 0.35 * dips, dips)
    profile = free_flow * (1.0 - dips)

    # Incidents: random (time, node) shocks that spread through the graph and decay.
    transition = adjacency / adjacency.sum(axis=1, keepdims=True)
    shocks = np.zeros((num_steps, num_nodes))
    num_incidents = rng.poisson(incidents_per_day * num_days)
    shocks[rng.integers(0, num_steps, num_incidents), rng.integers(0, num_nodes, num_incidents)] = (
        rng.uniform(8.0, 20.0, num_incidents)
    )
    decay = np.exp(-step_minutes / 30.0)  # half-life about 20 minutes
    congestion = np.zeros((num_steps, num_nodes))
    state = np.zeros(num_nodes)
    for t in range(num_steps):
        state = decay * (0.6 * state + 0.4 * state @ transition) + shocks[t]
        congestion[t] = state

    noise = np.zeros((num_steps, num_nodes))
    innovations = rng.normal(0.0, noise_std * np.sqrt(1 - 0.8**2), size=(num_steps, num_nodes))
    for t in range(1, num_steps):
        noise[t] = 0.8 * noise[t - 1] + innovations[t]

    speed = np.clip(profile - congestion + noise, 3.0, None)

    # Missing stretches, written as zeros as in the real files.
    num_stretches = rng.poisson(missing_stretches_per_node * num_nodes)
    for _ in range(num_stretches):
        node = rng.integers(0, num_nodes)
        length = rng.integers(60 // step_minutes or 1, 12 * 60 // step_minutes + 1)
        begin = rng.integers(0, max(1, num_steps - length))
        speed[begin : begin + length, node] = 0.0

    reason = (
        "synthetic writes its missing stretches as zeros"
        if null_value == 0.0
        else f"null_value={null_value!r} set by the caller"
    )
    values, missing = mark_missing(speed, null_value, reason=reason)
    return SpatioTemporalSeries(
        name="synthetic",
        values=values,
        missing=missing,
        steps_per_day=steps_per_day,
        start_time=start,
        step_minutes=step_minutes,
        adjacency=adjacency,
        default_split=(0.7, 0.1, 0.2),
        node_ids=tuple(f"synthetic_{i}" for i in range(num_nodes)),
        source=(
            f"synthetic(seed={seed}, num_nodes={num_nodes}, num_days={num_days},"
            f" step_minutes={step_minutes})"
        ),
    )


def make_synthetic_counts(
    *,
    seed: int = 0,
    num_nodes: int = 200,
    num_days: int = 42,
    start_time: str = "2024-01-01T00:00",
    mean_count: float = 0.35,
) -> SpatioTemporalSeries:
    """Hourly passenger counts at ``num_nodes`` stops, most hours zero; same arguments, same array.

    Per stop ``i`` and hour ``t`` the count is Poisson with rate

      ``base_i x daily_i(hour) x weekly_i(weekday) x region_{r(i)}(day) x exp(z_{t,i}) + event``

    where ``base_i`` is log-normal (a few busy stops, many quiet ones), ``daily_i`` a commuter
    (peaks at 8 h and 17 h) or leisure (midday to evening) shape with no service from 1 to 5 h,
    ``weekly_i`` halves (commuter) or keeps 80 % (leisure) of the load at weekends, ``region``
    a day-level factor shared by the stops of one of four regions (AR(1) over days: busy days come
    in runs), ``z`` hourly AR(1) noise per stop, and ``event`` a few bursts of 2-4 h at random
    stops that spill to their graph neighbours. ``mean_count`` scales every rate (0.55 gives
    about 80 % zeros). Missing: none (every hour is a reading, zeros included).

    Returns:
      ``SpatioTemporalSeries`` named ``"synthetic_counts"``, values ``[24 * num_days, num_nodes]``
      (whole counts as float32), with its graph; hourly steps from ``start_time`` (a Monday).
    """
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"synthetic_counts: seed must be an integer, got {seed!r}")
    if num_nodes < 2 or num_days < 1 or not mean_count > 0:
        raise ValueError(
            f"synthetic_counts: need num_nodes >= 2, num_days >= 1, mean_count > 0; got "
            f"{num_nodes}, {num_days}, {mean_count}"
        )
    rng = np.random.default_rng(seed)
    num_steps = 24 * num_days
    adjacency = random_geometric_graph(num_nodes, rng, radius=0.12)
    points_region = rng.integers(0, 4, size=num_nodes)
    hours = np.arange(num_steps) % 24
    days = np.arange(num_steps) // 24
    start = np.datetime64(start_time, "m")
    weekday = (days + (start.astype("datetime64[D]").astype(np.int64) + 3)) % 7
    weekend = weekday >= 5

    base = rng.lognormal(mean=0.0, sigma=1.0, size=num_nodes)
    commuter = rng.uniform(size=num_nodes) < 0.6
    h = hours[:, None].astype(np.float64)
    commute = np.exp(-0.5 * np.square((h - 8.0) / 1.2)) + 0.9 * np.exp(
        -0.5 * np.square((h - 17.5) / 1.5)
    )
    leisure = np.exp(-0.5 * np.square((h - 15.0) / 3.5))
    daily = np.where(commuter, commute, leisure) + 0.05
    daily = np.where((h >= 1) & (h < 5), 0.0, daily)
    weekly = np.where(weekend[:, None], np.where(commuter, 0.5, 0.8), 1.0)
    region_day = np.zeros((num_days, 4))
    level = np.zeros(4)
    for d in range(num_days):
        level = 0.7 * level + rng.normal(0.0, 0.25, size=4)
        region_day[d] = level
    region = np.exp(region_day[days][:, points_region])
    noise = np.zeros((num_steps, num_nodes))
    innovations = rng.normal(0.0, 0.3 * np.sqrt(1 - 0.8**2), size=(num_steps, num_nodes))
    for t in range(1, num_steps):
        noise[t] = 0.8 * noise[t - 1] + innovations[t]
    rate = base * daily * weekly * region * np.exp(noise)
    rate *= mean_count / rate.mean()
    spill = adjacency / np.maximum(adjacency.sum(axis=1, keepdims=True), 1e-9)
    for _ in range(rng.poisson(0.5 * num_days)):
        node, begin = rng.integers(num_nodes), rng.integers(num_steps)
        burst = np.zeros(num_nodes)
        burst[node] = rng.uniform(5.0, 15.0)
        burst += 0.5 * burst[node] * spill[node]
        rate[begin : begin + rng.integers(2, 5)] += burst
    rate = np.where(daily > 0, rate, 0.0)  # no service, no passengers (events included)
    counts = rng.poisson(rate).astype(np.float64)
    values, missing = mark_missing(counts, None, reason="counts: every hour is a reading")
    return SpatioTemporalSeries(
        name="synthetic_counts",
        values=values,
        missing=missing,
        steps_per_day=24,
        start_time=start,
        step_minutes=60,
        adjacency=adjacency,
        default_split=(0.7, 0.1, 0.2),
        node_ids=tuple(f"stop_{i:03d}" for i in range(num_nodes)),
        source=f"synthetic_counts(seed={seed}, num_nodes={num_nodes}, num_days={num_days})",
    )


def write_series_csv(series: SpatioTemporalSeries, path: str) -> None:
    """Writes ``series`` as the csv a user would bring: a ``time`` column (ISO timestamps) and one
    column per node (its id), one row per step; missing values as empty cells. Read it back with
    ``load_dataset("generic", path=path, time_column="time")``."""
    import pandas as pd

    times = series.start_time + np.arange(series.num_steps) * np.timedelta64(
        series.step_minutes, "m"
    )
    columns = series.node_ids or tuple(f"node_{i}" for i in range(series.num_nodes))
    frame = pd.DataFrame(series.values, columns=list(columns))
    frame.insert(0, "time", pd.to_datetime(times).strftime("%Y-%m-%dT%H:%M"))
    frame.to_csv(path, index=False, float_format="%g")
