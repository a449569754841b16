"""The in-memory form of every data set: one target channel over time and nodes, plus its calendar.

A ``SpatioTemporalSeries`` holds values ``[T, N]`` (float32, NaN where missing), the calendar needed
to derive time-of-day / day-of-week features (start time, step length, steps per day), an optional
graph ``[N, N]`` and the data set's conventional chronological split.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MINUTES_PER_DAY = 24 * 60
Split = tuple[float, float, float]


@dataclasses.dataclass(frozen=True, eq=False)
class SpatioTemporalSeries:
    """A multivariate / spatio-temporal series with its calendar.

    Attributes:
      name: data set name (``"synthetic"`` for generated data, never a real set's name).
      values: float32 ``[T, N]``, the target channel; NaN marks a missing value (the reader has
        already turned the data set's null value, zeros for the traffic sets, into NaN).
      steps_per_day: number of steps in one day (288 for 5 min, 24 for hourly, 1 for daily data).
      start_time: ``np.datetime64`` (minute precision) of step 0.
      step_minutes: length of one step in whole minutes (``MINUTES_PER_DAY // steps_per_day``).
      adjacency: float32 ``[N, N]`` graph (row = from, column = to) or ``None`` when the set has
        none.
      default_split: chronological (train, val, test) fractions, e.g. ``(0.7, 0.1, 0.2)``.
      node_ids: optional names of the N nodes (sensor ids, column names).
      source: where the values came from (file paths and their SHA-256), for the record.
    """

    name: str
    values: np.ndarray
    steps_per_day: int
    start_time: np.datetime64
    step_minutes: int
    adjacency: np.ndarray | None = None
    default_split: Split = (0.7, 0.1, 0.2)
    node_ids: tuple[str, ...] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        values = self.values
        if not isinstance(values, np.ndarray) or values.ndim != 2 or values.dtype != np.float32:
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: values must be a float32 numpy array [T, N], "
                f"got {type(values).__name__} {getattr(values, 'dtype', '')} shape "
                f"{getattr(values, 'shape', '')}"
            )
        if values.shape[0] < 1 or values.shape[1] < 1:
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: values shape {values.shape} is empty"
            )
        if np.isinf(values).any():
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: values contain +-inf (use NaN for missing)"
            )
        if self.step_minutes < 1 or MINUTES_PER_DAY % self.step_minutes:
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: step_minutes={self.step_minutes} must divide "
                f"a day ({MINUTES_PER_DAY} minutes)"
            )
        if self.steps_per_day != MINUTES_PER_DAY // self.step_minutes:
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: steps_per_day={self.steps_per_day} disagrees "
                f"with step_minutes={self.step_minutes} (expected "
                f"{MINUTES_PER_DAY // self.step_minutes})"
            )
        object.__setattr__(self, "start_time", np.datetime64(self.start_time, "m"))
        if self.adjacency is not None:
            adj = self.adjacency
            n = values.shape[1]
            if adj.shape != (n, n):
                raise ValueError(
                    f"SpatioTemporalSeries {self.name!r}: the graph has shape {adj.shape} but the "
                    f"signal has {n} nodes (expected adjacency [{n}, {n}])"
                )
            object.__setattr__(self, "adjacency", np.asarray(adj, dtype=np.float32))
        check_split(self.default_split, "default_split")
        if self.node_ids is not None and len(self.node_ids) != values.shape[1]:
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: {len(self.node_ids)} node_ids for "
                f"{values.shape[1]} nodes"
            )

    @property
    def num_steps(self) -> int:
        """T, the number of time steps."""
        return int(self.values.shape[0])

    @property
    def num_nodes(self) -> int:
        """N, the number of nodes (sensors, roads or variables)."""
        return int(self.values.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """bool ``[T, N]``: True where a value is present."""
        return ~np.isnan(self.values)

    @property
    def missing_fraction(self) -> float:
        """Fraction of missing entries in ``values``."""
        return float(np.isnan(self.values).mean())

    def time_of_day(self) -> np.ndarray:
        """float32 ``[T]`` in [0, 1): minutes since midnight / 1440 (= step-of-day /
        steps_per_day)."""
        return time_features(self.start_time, self.step_minutes, self.num_steps)[0]

    def day_of_week(self) -> np.ndarray:
        """float32 ``[T]``: 0 = Monday .. 6 = Sunday, as whole numbers."""
        return time_features(self.start_time, self.step_minutes, self.num_steps)[1]


def check_split(split: Split, option: str = "split") -> Split:
    """Checks three non-negative fractions with positive train part summing to at most 1; returns
    floats."""
    try:
        fractions = tuple(float(f) for f in split)
    except TypeError:
        raise ValueError(
            f"{option} must be three fractions (train, val, test), got {split!r}"
        ) from None
    if (
        len(fractions) != 3
        or not all(math.isfinite(f) and f >= 0 for f in fractions)
        or fractions[0] <= 0
        or sum(fractions) > 1 + 1e-9
    ):
        raise ValueError(
            f"{option} must be three fractions (train, val, test), each >= 0, train > 0, sum <= 1; "
            f"got {split!r}"
        )
    return fractions  # type: ignore[return-value]


def time_features(
    start_time: np.datetime64 | str, step_minutes: int, num_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Time of day and day of week of steps ``0 .. num_steps-1``.

    Returns:
      ``(time_of_day, day_of_week)``, float32 ``[num_steps]`` each: time of day in [0, 1) as minutes
      since midnight / 1440, day of week 0 (Monday) .. 6 (Sunday).
    """
    start = np.datetime64(start_time, "m")
    times = start + np.arange(num_steps, dtype=np.int64) * np.timedelta64(int(step_minutes), "m")
    days = times.astype("datetime64[D]")
    minutes = (times - days.astype("datetime64[m]")).astype(np.int64)
    time_of_day = (minutes / MINUTES_PER_DAY).astype(np.float32)
    # 1970-01-01 (day 0 of the epoch) was a Thursday, i.e. 3 with Monday = 0.
    day_of_week = ((days.astype(np.int64) + 3) % 7).astype(np.float32)
    return time_of_day, day_of_week


def apply_null_value(raw: np.ndarray, null_value: float | None) -> np.ndarray:
    """Float32 copy of ``raw`` with NaN where missing: NaN is always missing, and so is
    ``null_value``
    (``0.0`` for the traffic sets) unless it is ``None``."""
    values = np.array(raw, dtype=np.float32, copy=True)
    if null_value is not None and not np.isnan(null_value):
        values[values == np.float32(null_value)] = np.nan
    return values
