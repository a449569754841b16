"""Checks of the forecaster's inputs against the run: history shape, nodes, missing values and
timestamps. Each raises `ForecastInputError` naming what was expected; O(B·T·N)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eala_jax.train.runinfo import ForecastInputError

__all__ = ["as_time", "check_history", "first_times", "head", "minutes", "node_order"]

MAX_MINUTES = np.iinfo(np.int32).max  # the graph's timestamps are int32 minutes since 1970


def minutes(times: np.ndarray) -> np.ndarray:
    """datetime64 -> int32 minutes since 1970 (ForecastInputError when out of int32's range)."""
    minutes = np.asarray(times, "datetime64[m]").astype(np.int64)
    if np.any(np.abs(minutes) > MAX_MINUTES):
        raise ForecastInputError(
            f"timestamps {times} are outside the int32 minutes since 1970 (years -2113 .. 6053)"
        )
    return minutes.astype(np.int32)


def as_time(value: Any, option: str) -> np.datetime64:
    """``value`` as a minute timestamp; ForecastInputError naming ``option`` otherwise."""
    try:
        return np.datetime64(value, "m")
    except (ValueError, TypeError):
        raise ForecastInputError(
            f"{option}={value!r} is not a timestamp (expected e.g. '2024-01-03T10:00')"
        ) from None


def check_history(fc: Any, history: Any, node_ids: Sequence[str] | None) -> tuple[np.ndarray, bool]:
    """``history`` as float32 ``[B, T, N]`` in the run's node order (`Forecaster` ``fc``), and
    whether it came batched."""
    try:
        values = np.asarray(history, np.float32)
    except (TypeError, ValueError):
        raise ForecastInputError(
            f"history must be numbers [T, N] or [B, T, N], got {type(history).__name__}"
        ) from None
    if values.ndim not in (2, 3):
        raise ForecastInputError(
            f"history must be [T, N] or [B, T, N] (T >= {fc.in_steps} steps, N = "
            f"{fc.info.num_nodes} nodes), got shape {values.shape}"
        )
    batched = values.ndim == 3
    values = values if batched else values[None]
    b, t, n = values.shape
    if node_ids is not None:
        values = values[:, :, node_order(fc, node_ids, n)]
    elif n != fc.info.num_nodes:
        raise ForecastInputError(
            f"history has {n} columns but the run forecasts {fc.info.num_nodes} nodes "
            f"(ids {head(fc.node_ids)})"
        )
    if t < fc.in_steps:
        raise ForecastInputError(
            f"history has {t} steps but the model reads the last in_steps={fc.in_steps}: "
            f"give at least {fc.in_steps} steps"
        )
    if np.isinf(values).any():
        raise ForecastInputError("history holds +-inf; mark missing values with NaN")
    empty = np.isnan(values[:, -fc.in_steps :]).all(axis=(1, 2))
    if empty.any():
        raise ForecastInputError(
            f"history's last {fc.in_steps} steps are all missing (NaN)"
            + (f" in batch rows {np.flatnonzero(empty)[:10].tolist()}" if batched else "")
            + ": nothing to forecast from"
        )
    return values, batched


def node_order(fc: Any, node_ids: Sequence[str], n: int) -> np.ndarray:
    """Column indices that put ``node_ids`` (each of the run's nodes once) in the run's order."""
    ids = [str(i) for i in node_ids]
    if len(ids) != n:
        raise ForecastInputError(f"{len(ids)} node_ids for history's {n} columns")
    known = {k: i for i, k in enumerate(fc.node_ids)}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ForecastInputError(
            f"unknown node ids {head(unknown)}: the run forecasts nodes {head(fc.node_ids)}"
        )
    missing = [k for k in fc.node_ids if k not in set(ids)]
    if missing or len(set(ids)) != len(ids):
        raise ForecastInputError(
            f"node_ids must name each of the run's {fc.info.num_nodes} nodes once; missing "
            f"{head(missing)}" + (", some repeated" if len(set(ids)) != len(ids) else "")
        )
    position = {k: i for i, k in enumerate(ids)}
    return np.array([position[k] for k in fc.node_ids])


def first_times(fc: Any, b: int, t: int, start_time: Any, times: Any) -> np.ndarray:
    """datetime64[m] ``[B]``: the time of each history's first row."""
    if (start_time is None) == (times is None):
        raise ForecastInputError(
            "give start_time= (the time of history's first row) or times= (each row's), "
            "one of them: the model reads the calendar"
        )
    if times is not None:
        stamps = np.asarray(times)
        try:
            stamps = stamps.astype("datetime64[m]")
        except (ValueError, TypeError):
            raise ForecastInputError(f"times must be timestamps, got {times!r:.80}") from None
        stamps = np.broadcast_to(stamps, (b, t)) if stamps.ndim == 1 else stamps
        if stamps.shape != (b, t):
            raise ForecastInputError(
                f"times has shape {np.shape(times)}; expected [{t}] or [{b}, {t}] (one per "
                "history row)"
            )
        gaps = np.diff(stamps, axis=1)
        if gaps.size and (gaps != fc.step).any():
            row, col = np.argwhere(gaps != fc.step)[0]
            raise ForecastInputError(
                f"times do not follow the run's step of {fc.info.step_minutes} min: "
                f"{stamps[row, col]} is followed by {stamps[row, col + 1]}"
            )
        first = stamps[:, 0]
    else:
        first = np.asarray(start_time)
        if first.ndim == 0:
            first = np.full(b, as_time(start_time, "start_time"))
        elif first.shape != (b,):
            raise ForecastInputError(
                f"start_time has shape {first.shape}; expected a timestamp or [{b}]"
            )
        else:
            first = np.array([as_time(v, "start_time") for v in first])
    if fc.info.step_minutes < 1440:
        off = (first - first.astype("datetime64[D]")).astype(np.int64) % fc.info.step_minutes
        if off.any():
            raise ForecastInputError(
                f"start time {first[np.flatnonzero(off)[0]]} is not on the run's "
                f"{fc.info.step_minutes}-min grid (minutes since midnight must be a "
                f"multiple of {fc.info.step_minutes})"
            )
    return first.astype("datetime64[m]")


def head(items: Sequence[Any], limit: int = 8) -> str:
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(repr(i) for i in items[:limit]) + more
