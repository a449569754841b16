"""Your own data: any ``(T, N)`` or ``(T, N, C)`` array in ``.npz`` / ``.npy`` / ``.csv[.gz]`` /
``.h5`` as a series (`load_generic`, ``load_dataset("generic", path=...)``), with its step and
start from its timestamps or given, its orientation checked, an optional graph."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eala_jax.data.download import fetch_file
from eala_jax.data.readers import (
    DataFileError,
    FileSpec,
    MissingOptionsError,
    fill_time_gaps,
    read_graph,
    read_signal,
    regular_step_minutes,
    verify_file,
)
from eala_jax.data.series import (
    SpatioTemporalSeries,
    Split,
    check_null_value,
    check_step_minutes,
    mark_missing,
    steps_per_day_of,
)

__all__ = ["load_generic", "read_given_graph"]


def read_given_graph(
    graph_path: str | os.PathLike[str],
    graph_url: str | None,
    num_nodes: int,
    *,
    weight: str,
    node_ids: list[str] | None,
    check: FileSpec | None = None,
) -> np.ndarray:
    """The adjacency `[N, N]` of the graph file ``graph_path`` (downloaded from ``graph_url``
    first where given and the file is absent), checked against ``check`` (its name only by
    default). Shared by the catalogue's sets and your own files."""
    graph_file = Path(graph_path)
    check = check or FileSpec(graph_file.name)
    if graph_url is not None:
        fetch_file(
            graph_url,
            graph_file,
            check,
            accept=lambda tmp: read_graph(tmp, num_nodes, weight=weight, node_ids=node_ids),
        )
    verify_file(graph_file, check, option="graph_path=")
    return read_graph(graph_file, num_nodes, weight=weight, node_ids=node_ids)


def load_generic(
    *,
    path: str | os.PathLike[str],
    step_minutes: int | None = None,
    start_time: str | np.datetime64 | None = None,
    series_name: str = "generic",
    channel: int = 0,
    npz_key: str = "data",
    h5_key: str | None = None,
    csv_header: bool = True,
    time_column: str | None = None,
    graph_path: str | os.PathLike[str] | None = None,
    graph_weight: str = "binary",
    null_value: float | None = None,
    transpose: bool | None = None,
    default_split: Split = (0.7, 0.1, 0.2),
    sha256: str | None = None,
    url: str | None = None,
    graph_url: str | None = None,
) -> SpatioTemporalSeries:
    """Any ``(T, N)`` or ``(T, N, C)`` array in ``.npz`` / ``.npy`` / ``.csv[.gz]`` / ``.h5`` as a
    series.

    ``step_minutes`` and ``start_time`` are required unless the file has timestamps (an ``.h5``
    frame's index or a csv ``time_column``), which then give them (and must agree if both are
    given). ``series_name`` names the result (default ``"generic"``). ``url=`` downloads the file to
    ``path`` first unless ``path`` exists (likewise ``graph_url=`` to ``graph_path``); see
    ``load_dataset``.

    Missing values: NaN only, unless ``null_value=`` names a code (e.g. ``0.0`` or ``-1``) that
    marks a missing reading; the file's zeros are readings by default. The result's ``missing``
    records how many values were treated as missing and why.

    Orientation: ``transpose=True`` reads a file holding one row per sensor, ``(N, T[, C])``
    (column names that are timestamps then give the calendar); ``False`` takes the file as
    ``(T, N)`` unchecked. The default (None) refuses a file whose orientation is ambiguous (more
    sensors than steps, or timestamps as column names) and names these two options.
    """
    signal_path = Path(path)
    null_value = check_null_value(null_value)
    if transpose is not None and not isinstance(transpose, bool):
        raise ValueError(f"generic: transpose must be True, False or None, got {transpose!r}")

    def read(file: Path) -> tuple[np.ndarray, Any, list[str] | None]:
        return read_signal(
            file,
            channel=channel,
            npz_key=npz_key,
            h5_key=h5_key,
            csv_header=csv_header,
            time_column=time_column,
        )

    if url is not None:
        fetch_file(url, signal_path, FileSpec(signal_path.name, sha256=sha256), accept=read)
    verify_file(signal_path, FileSpec(signal_path.name, sha256=sha256), option="path=")
    raw, index, columns = read(signal_path)
    if transpose:
        if index is not None:
            raise DataFileError(
                f"{signal_path}: transpose=True, but its rows carry timestamps "
                f"({time_column or 'the frame index'}), so they are time steps already: "
                "drop transpose"
            )
        raw, index, columns = raw.T, _timestamps(columns), None
    elif transpose is None:
        _check_orientation(raw, index, columns, signal_path)
    gaps = 0
    if index is not None:
        raw, index, gaps = fill_time_gaps(raw, index, signal_path)  # missing steps -> NaN rows
        file_start, file_step = regular_step_minutes(index, signal_path)
        if step_minutes is not None and step_minutes != file_step:
            raise ValueError(
                f"step_minutes={step_minutes} but {signal_path} has steps of {file_step} min"
            )
        if start_time is not None and np.datetime64(start_time, "m") != file_start:
            raise ValueError(f"start_time={start_time} but {signal_path} starts at {file_start}")
        start_time, step_minutes = file_start, file_step
    if step_minutes is None or start_time is None:
        examples = {"step_minutes": 60, "start_time": "2024-01-01T00:00"}
        missing = {"step_minutes": step_minutes, "start_time": start_time}
        raise MissingOptionsError(
            signal_path,
            "has no timestamps, so its step length and the time of its first step must be given",
            {k: examples[k] for k, v in missing.items() if v is None},
        )
    step_minutes = check_step_minutes(step_minutes)
    if graph_url is not None and graph_path is None:
        raise ValueError("generic: graph_url= needs graph_path= (where to put the graph file)")
    adjacency = None
    if graph_path is not None:
        adjacency = read_given_graph(
            graph_path, graph_url, raw.shape[1], weight=graph_weight, node_ids=columns
        )
    reason = (
        "no null_value given: only NaN is missing"
        if null_value is None
        else f"null_value={null_value!r} set by the caller"
    )
    if gaps:
        reason += f"; {gaps} absent time steps inserted as NaN rows"
    values, missing = mark_missing(raw, null_value, reason=reason)
    return SpatioTemporalSeries(
        name=series_name,
        values=values,
        missing=missing,
        steps_per_day=steps_per_day_of(step_minutes),
        start_time=np.datetime64(start_time, "m"),
        step_minutes=int(step_minutes),
        adjacency=adjacency,
        default_split=default_split,
        node_ids=tuple(columns) if columns is not None else None,
        source=f"signal {signal_path}; graph {graph_path}; null_value {null_value}",
    )


def _timestamps(names: list[str] | None) -> pd.DatetimeIndex | None:
    """``names`` parsed as timestamps when there are at least two and every one parses, else
    None."""
    if names is None or len(names) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stamps = pd.to_datetime(pd.Index(names), errors="coerce", format="mixed")
        except (ValueError, TypeError, OverflowError):
            return None
    return None if stamps.isna().any() else pd.DatetimeIndex(stamps)


def _check_orientation(
    raw: np.ndarray, index: pd.Index | None, columns: list[str] | None, path: Path
) -> None:
    """Refuses a file that may be ``(N, T)`` where ``(T, N)`` is expected, naming ``transpose=``."""
    steps, sensors = raw.shape
    swapped = f"(T, N) = ({sensors}, {steps})"
    if index is None and _timestamps(columns) is not None:
        assert columns is not None
        raise DataFileError(
            f"{path}: its {sensors} column names look like timestamps ({columns[0]!r}, "
            f"{columns[1]!r}, ...), so it seems to hold one row per sensor and one column per "
            f"step, (N, T) = ({steps}, {sensors}). Pass transpose=True to read it as {swapped} "
            "with those timestamps, or transpose=False to keep the rows as time steps"
        )
    if index is None and sensors > steps:
        raise DataFileError(
            f"{path}: read as (T, N) it holds {steps} steps of {sensors} sensors: more sensors "
            "than steps, so it may be (N, T) with one row per sensor. Pass transpose=True to read "
            f"it as {swapped}, or transpose=False if it really holds {steps} steps of "
            f"{sensors} sensors"
        )
