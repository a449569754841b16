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


class MissingDataWarning(UserWarning):
    """Some sensors of a series have no valid value at all (training proceeds without them)."""


@dataclasses.dataclass(frozen=True)
class MissingValues:
    """What was treated as missing when a series was read, and why.

    Attributes:
      num_values: entries read, ``T·N``.
      nan: entries that were NaN in the source (always missing).
      marker: the missing-value code (``null_value``) turned into NaN, or None (only NaN is
        missing).
      marker_count: entries equal to ``marker`` (0 without a marker).
      zeros_kept: entries equal to 0 kept as readings (0 when 0 is the marker).
      reason: why this marker, e.g. ``"null_value=-1.0 set by the caller"`` or the published
        convention of a named set.
    """

    num_values: int
    nan: int
    marker: float | None
    marker_count: int
    zeros_kept: int
    reason: str

    @property
    def count(self) -> int:
        """Entries treated as missing (NaN in the source or equal to the marker)."""
        return self.nan + self.marker_count

    def summary(self) -> str:
        """One line: how many values are missing, how many are NaN, how many the marker, and why."""
        share = 100.0 * self.count / max(self.num_values, 1)
        head = (
            f"{self.count} of {self.num_values} values ({share:.2f} %) treated as missing: "
            f"{self.nan} NaN in the source"
        )
        if self.marker is None:
            return (
                f"{head}; no missing-value marker ({self.reason}); {self.zeros_kept} zeros kept as "
                "readings (set null_value= to mark a code such as 0 or -1 as missing)"
            )
        return (
            f"{head}, {self.marker_count} equal to the missing-value marker {self.marker:g} "
            f"({self.reason})"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class SpatioTemporalSeries:
    """A multivariate / spatio-temporal series with its calendar.

    Attributes:
      name: data set name (``"synthetic"`` for generated data, never a real set's name).
      values: float32 ``[T, N]``, the target channel; NaN marks a missing value (the reader has
        already turned the data set's null value, zeros for the traffic sets, into NaN).
      steps_per_day: number of steps in one day (288 for 5 min, 24 for hourly, 1 for daily data and
        for steps of several whole days, such as weekly data).
      start_time: ``np.datetime64`` (minute precision) of step 0.
      step_minutes: length of one step in whole minutes: a divisor of a day (``MINUTES_PER_DAY //
        steps_per_day``) or a whole number of days (10080 for weekly data).
      adjacency: float32 ``[N, N]`` graph (row = from, column = to) or ``None`` when the set has
        none.
      default_split: chronological (train, val, test) fractions, e.g. ``(0.7, 0.1, 0.2)``.
      node_ids: optional names of the N nodes (sensor ids, column names).
      source: where the values came from (file paths and their SHA-256), for the record.
      missing: what the reader treated as missing and why (``MissingValues``), or None when not
        recorded (e.g. a series built by hand).

    A series with no valid value at all raises ValueError (nothing to scale, train or evaluate).
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
    missing: MissingValues | None = None

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
        if not (~np.isnan(values)).any():
            why = self.missing.summary() if self.missing is not None else "all NaN"
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: no valid value at all: {why}"
                + (f" [{self.source}]" if self.source else "")
            )
        check_step_minutes(self.step_minutes, f"SpatioTemporalSeries {self.name!r}: step_minutes")
        if self.steps_per_day != steps_per_day_of(self.step_minutes):
            raise ValueError(
                f"SpatioTemporalSeries {self.name!r}: steps_per_day={self.steps_per_day} disagrees "
                f"with step_minutes={self.step_minutes} (expected "
                f"{steps_per_day_of(self.step_minutes)})"
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

    def never_valid_nodes(self) -> np.ndarray:
        """int64 indices of the nodes with no valid value at any step."""
        return np.flatnonzero(np.isnan(self.values).all(axis=0))

    def describe_nodes(self, nodes: np.ndarray, limit: int = 10) -> str:
        """``"index 3 (id '773869'), index 7 (id '717445')"``: the first ``limit`` nodes."""
        names = [
            f"index {i} (id {self.node_ids[i]!r})" if self.node_ids is not None else f"index {i}"
            for i in nodes[:limit]
        ]
        more = f" and {len(nodes) - limit} more" if len(nodes) > limit else ""
        return ", ".join(names) + more

    def missing_summary(self) -> str:
        """What is missing and why, and which sensors are never valid (for logs, ``--describe``)."""
        if self.missing is not None:
            text = self.missing.summary()
        else:
            count = int(np.isnan(self.values).sum())
            text = (
                f"{count} of {self.values.size} values ({100.0 * count / self.values.size:.2f} %) "
                "missing (NaN; how they were read is not recorded)"
            )
        dead = self.never_valid_nodes()
        if len(dead):
            text += (
                f"; {len(dead)} of {self.num_nodes} sensors never valid: "
                f"{self.describe_nodes(dead)}"
            )
        return text

    def time_of_day(self) -> np.ndarray:
        """int32 ``[T]``: step of the day in ``[0, steps_per_day)`` (the slot holding each step's
        start time, ``minutes since midnight // step_minutes``)."""
        return time_features(self.start_time, self.step_minutes, self.num_steps)[0]

    def day_of_week(self) -> np.ndarray:
        """int32 ``[T]``: 0 = Monday .. 6 = Sunday."""
        return time_features(self.start_time, self.step_minutes, self.num_steps)[1]


def check_step_minutes(step_minutes: object, option: str = "step_minutes") -> int:
    """The step length in minutes as an int: a divisor of a day (5, 60, 1440) or a whole number of
    days (10080 for a week); ValueError naming ``option`` otherwise. Calendar months have no fixed
    length in minutes and are not a step."""
    if (
        isinstance(step_minutes, bool)
        or not isinstance(step_minutes, (int, np.integer))
        or step_minutes < 1
        or (MINUTES_PER_DAY % step_minutes and step_minutes % MINUTES_PER_DAY)
    ):
        raise ValueError(
            f"{option}={step_minutes!r} must divide a day ({MINUTES_PER_DAY} minutes) or be a "
            "whole number of days (e.g. 10080 for weekly steps)"
        )
    return int(step_minutes)


def steps_per_day_of(step_minutes: int) -> int:
    """Steps in one day: ``1440 // step_minutes`` for sub-daily steps, 1 for steps of whole days."""
    return max(1, MINUTES_PER_DAY // int(step_minutes))


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
    """Calendar of steps ``0 .. num_steps-1``, as integers. O(num_steps).

    Returns:
      ``(time_of_day, day_of_week)``, int32 ``[num_steps]`` each: time of day as the step of the
      day, ``minutes since midnight // step_minutes`` in ``[0, 1440 // step_minutes)``; day of week
      0 (Monday) .. 6 (Sunday).
    """
    start = np.datetime64(start_time, "m")
    times = start + np.arange(num_steps, dtype=np.int64) * np.timedelta64(int(step_minutes), "m")
    days = times.astype("datetime64[D]")
    minutes = (times - days.astype("datetime64[m]")).astype(np.int64)
    time_of_day = (minutes // int(step_minutes)).astype(np.int32)
    # 1970-01-01 (day 0 of the epoch) was a Thursday, i.e. 3 with Monday = 0.
    day_of_week = ((days.astype(np.int64) + 3) % 7).astype(np.int32)
    return time_of_day, day_of_week


def check_null_value(null_value: object, option: str = "null_value") -> float | None:
    """The missing-value marker as a float (None, or NaN, mean only NaN is missing); ValueError for
    anything but a real number or None."""
    if null_value is None:
        return None
    if isinstance(null_value, bool) or not isinstance(null_value, (int, float, np.number)):
        raise ValueError(
            f"{option} must be a number (the value that marks a missing reading, e.g. 0 or -1) or "
            f"None (only NaN is missing), got {null_value!r}"
        )
    value = float(null_value)
    if np.isinf(value):
        raise ValueError(f"{option} must be finite (or None), got {null_value!r}")
    return None if np.isnan(value) else value


def mark_missing(
    raw: np.ndarray, null_value: float | None, *, reason: str
) -> tuple[np.ndarray, MissingValues]:
    """Float32 copy of ``raw`` with NaN where missing, and the record of what was missing and why.

    NaN is always missing; so is every entry equal to ``null_value`` unless it is None. ``reason``
    says why this marker (kept in the record). O(T·N).
    """
    marker = check_null_value(null_value)
    values = np.array(raw, dtype=np.float32, copy=True)
    nan = np.isnan(values)
    marked = ~nan & (values == np.float32(marker)) if marker is not None else np.zeros_like(nan)
    values[marked] = np.nan
    zeros_kept = 0 if marker == 0.0 else int((values == 0.0).sum())
    record = MissingValues(
        num_values=int(values.size),
        nan=int(nan.sum()),
        marker=marker,
        marker_count=int(marked.sum()),
        zeros_kept=zeros_kept,
        reason=reason,
    )
    return values, record


def apply_null_value(raw: np.ndarray, null_value: float | None) -> np.ndarray:
    """Float32 copy of ``raw`` with NaN where missing: NaN is always missing, and so is
    ``null_value`` (``0.0`` for the traffic sets) unless it is ``None``."""
    return mark_missing(raw, null_value, reason="")[0]
